"""What a component asks of the API server, read from its source: (resource, verb) pairs.

The chart's RBAC is checked against this, so a controller that starts to watch or patch a
new resource fails the chart tests until its rights are added to the chart. It reads the
AST of every module under the component's folder and recognises the calls the code base
makes:

- KubeClient verbs (`client.get/list/watch/create/patch/delete(KIND, ...)`; a server-side
  apply patch creates what is missing, so it needs `create` too) where KIND is a
  kind constant (`INSTANCES = kubenova_kind(Instance)`, or `LEASES`, `SECRETS`, ... of
  kubenova.kube.paths), `kubenova_kind(Model)` inline, or a loop over such models;
- the write helpers of kubenova.kube.objects: apply_status (patch on <plural>/status),
  ensure_metadata and remove_finalizer (patch, and get after a conflict);
- kopf watches `@kopf.on.<cause>(group, version, plural)` (list + watch; admission
  handlers, `kopf.on.validate`/`mutate`, are served, not watched);
- `EventRecorder(...)` (create events, and patch their count);
- a function or class that passes a kind (or a kopf plural) it receives on to any of these
  is resolved at its call sites, whether it is the component's own or the shared kit's
  (`kubenova/kube`, e.g. `ListWatch(client, KIND, ...)` and `ListWatch.placed_on`);
- a function of the shared kit that calls the client with a kind of its own
  (`ensure_namespace`: namespaces get, create) counts at every call site of a component
  module that imports it;
- a loop over a literal table of strings, inline or a module-level constant, feeds a
  kopf plural.

A call it cannot resolve is reported in `unresolved`, so the check fails loudly instead of
silently missing a right.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubenova.api.v1alpha1 import GROUP, Resource
from kubenova.kube import paths

# (resource, verb); resource is `group/plural[/subresource]`, or `plural` in the core group.
Access = tuple[str, str]
# What a call does with the kind it is given: (subresource, verb) pairs.
Effect = tuple[tuple[str, str], ...]

CLIENT_VERBS: dict[str, Effect] = {
    "get": (("", "get"),),
    "list": (("", "list"),),
    "watch": (("", "list"), ("", "watch")),
    "create": (("", "create"),),
    "patch": (("", "patch"),),
    "delete": (("", "delete"),),
}
WRITE_HELPERS: dict[str, Effect] = {
    "apply_status": (("status", "patch"),),
    "ensure_metadata": (("", "patch"), ("", "get")),
    "remove_finalizer": (("", "patch"), ("", "get")),
}
WATCH: Effect = (("", "list"), ("", "watch"))
PATH_CONSTANTS = {
    name: value
    for name, value in vars(paths).items()
    if isinstance(value, paths.ResourceKind) and name.isupper()
}


@dataclass
class CodeAccess:
    """What the code under one folder asks for, and the calls this reader could not resolve."""

    used: dict[Access, list[str]] = field(default_factory=dict)
    unresolved: list[str] = field(default_factory=list)


def resource_name(group: str, plural: str, subresource: str = "") -> str:
    name = f"{group}/{plural}" if group else plural
    return f"{name}/{subresource}" if subresource else name


def _callee(call: ast.Call) -> str:
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    if isinstance(call.func, ast.Name):
        return call.func.id
    return ""


def _is_client(node: ast.expr) -> bool:
    """`client`, `self.client`, `self._client`, `runtime.replica_client`: what our code names
    its KubeClients."""
    if isinstance(node, ast.Name):
        return node.id == "client" or node.id.endswith("_client")
    if isinstance(node, ast.Attribute):
        return node.attr == "client" or node.attr.endswith("_client")
    return False


def _is_kopf_on(call: ast.Call) -> bool:
    """A kopf watch registration (admission handlers, kopf.on.validate/mutate, watch nothing)."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr not in ("validate", "mutate")
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "on"
        and isinstance(func.value.value, ast.Name)
        and func.value.value.id == "kopf"
        and len(call.args) >= 3
    )


def _group(arg: ast.expr) -> str | None:
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.Name) and arg.id == "GROUP":
        return GROUP
    return None


def _argument(call: ast.Call, index: int, keyword: str = "") -> ast.expr | None:
    """The argument at position `index`, or passed by the keyword `keyword`."""
    if index < len(call.args) and not isinstance(call.args[index], ast.Starred):
        return call.args[index]
    return next((k.value for k in call.keywords if keyword and k.arg == keyword), None)


def _kind_call(call: ast.Call) -> tuple[int, Effect] | None:
    """(index of the kind argument, effect) when `call` touches the API with a given kind."""
    name = _callee(call)
    if name in WRITE_HELPERS:
        return 1, WRITE_HELPERS[name]
    if not (
        name in CLIENT_VERBS
        and isinstance(call.func, ast.Attribute)
        and _is_client(call.func.value)
    ):
        return None
    applies = any(
        k.arg == "patch_type" and ast.unparse(k.value).endswith("APPLY_PATCH")
        for k in call.keywords
    )
    if name == "patch" and applies and _argument(call, 99, "subresource") is None:
        return 0, (("", "patch"), ("", "create"))  # server-side apply creates what is missing
    return 0, CLIENT_VERBS[name]


def _imported_model(tree: ast.Module, name: str) -> type[Resource] | None:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    model = getattr(importlib.import_module(node.module), alias.name, None)
                    if isinstance(model, type) and issubclass(model, Resource):
                        return model
    return None


def _kind_constants(tree: ast.Module) -> dict[str, paths.ResourceKind]:
    """Module-level `NAME = kubenova_kind(Model)` and `NAME = ResourceKind(...)` assignments."""
    found: dict[str, paths.ResourceKind] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        kind = None
        if _callee(call) == "kubenova_kind" and call.args and isinstance(call.args[0], ast.Name):
            model = _imported_model(tree, call.args[0].id)
            kind = paths.kubenova_kind(model) if model is not None else None
        elif _callee(call) == "ResourceKind":
            try:
                kind = paths.ResourceKind(*[ast.literal_eval(arg) for arg in call.args])
            except ValueError:
                kind = None
        for target in node.targets:
            if isinstance(target, ast.Name) and kind is not None:
                found[target.id] = kind
    return found


def _kit_functions(tree: ast.Module) -> dict[str, list[Access]]:
    """Module-level functions that call the client with a kind constant of their own."""
    found: dict[str, list[Access]] = {}
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not isinstance(node, ast.Call) or (direct := _kind_call(node)) is None:
                continue
            index, effect = direct
            argument = _argument(node, index)
            name = argument.id if isinstance(argument, ast.Name) else ""
            kind = PATH_CONSTANTS.get(name)
            for subresource, verb in effect if kind is not None else ():
                access = (resource_name(kind.group, kind.plural, subresource), verb)
                found.setdefault(function.name, []).append(access)
    return found


def _imported_from_kit(tree: ast.Module, name: str) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and (node.module or "").startswith("kubenova.kube")
        and any((alias.asname or alias.name) == name for alias in node.names)
        for node in ast.walk(tree)
    )


class _ModuleScan:
    def __init__(
        self,
        path: Path,
        root: Path,
        constants: dict[str, paths.ResourceKind],
        helpers: tuple[dict[str, Helper], set[int]],
        kit: dict[str, list[Access]],
    ) -> None:
        self.path = path
        self.root = root
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.constants = constants | _kind_constants(self.tree)
        self.helpers, self.forwarded = helpers
        self.kit = kit
        self.used: dict[Access, list[str]] = {}
        self.unresolved: list[str] = []

    def where(self, node: ast.AST) -> str:
        return f"{self.path.relative_to(self.root)}:{getattr(node, 'lineno', 0)}"

    def add(self, resource: str, verb: str, node: ast.AST) -> None:
        self.used.setdefault((resource, verb), []).append(self.where(node))

    def scan(self) -> None:
        for node in ast.walk(self.tree):
            if not isinstance(node, ast.Call) or id(node) in self.forwarded:
                continue
            name = _callee(node)
            if _is_kopf_on(node):
                group = _group(node.args[0])
                plural = node.args[2]
                if group is not None and isinstance(plural, ast.Constant):
                    self._apply_plural(group, str(plural.value), WATCH, node)
                else:
                    self.unresolved.append(f"{self.where(node)}: kopf.on{ast.unparse(node)[7:60]}")
            elif name == "EventRecorder":
                self.add("events", "create", node)
                self.add("events", "patch", node)
            elif (direct := _kind_call(node)) is not None:
                self._apply_kind_argument(node, *direct)
            elif name in self.kit and _imported_from_kit(self.tree, name):
                for resource, verb in self.kit[name]:
                    self.add(resource, verb, node)
            if name in self.helpers:
                helper = self.helpers[name]
                argument = _argument(node, helper.index, helper.parameter)
                if helper.group is None:
                    self._apply_kind_argument(node, helper.index, helper.effect, helper.parameter)
                elif argument is not None:
                    for plural in self._strings(argument):
                        self._apply_plural(helper.group, plural, helper.effect, node)

    def _apply_kind_argument(
        self, call: ast.Call, index: int, effect: Effect, keyword: str = ""
    ) -> None:
        argument = _argument(call, index, keyword)
        kinds = self._kinds(argument) if argument is not None else None
        if not kinds:
            self.unresolved.append(f"{self.where(call)}: {ast.unparse(call)[:70]}")
            return
        for kind in kinds:
            for subresource, verb in effect:
                self.add(resource_name(kind.group, kind.plural, subresource), verb, call)

    def _apply_plural(self, group: str, plural: str, effect: Effect, node: ast.AST) -> None:
        for subresource, verb in effect:
            self.add(resource_name(group, plural, subresource), verb, node)

    def _kinds(self, node: ast.expr) -> list[paths.ResourceKind]:
        """The kinds an expression can be: a constant, kubenova_kind(Model), a loop variable."""
        if isinstance(node, ast.Name) and node.id in self.constants:
            return [self.constants[node.id]]
        if isinstance(node, ast.Attribute) and node.attr in self.constants:
            return [self.constants[node.attr]]
        if isinstance(node, ast.Call) and _callee(node) == "kubenova_kind" and node.args:
            models = self._models(node.args[0])
            return [paths.kubenova_kind(model) for model in models]
        return []

    def _models(self, node: ast.expr) -> list[type[Resource]]:
        if not isinstance(node, ast.Name):
            return []
        model = _imported_model(self.tree, node.id)
        if model is not None:
            return [model]
        for loop in ast.walk(self.tree):
            # `for model in (A, B)`, or a comprehension's, over a literal or a module constant
            if (
                isinstance(loop, ast.For | ast.comprehension)
                and isinstance(loop.target, ast.Name)
                and loop.target.id == node.id
                and (models := self._literal_models(loop.iter)) is not None
            ):
                return models
        return []

    def _literal_models(self, node: ast.expr) -> list[type[Resource]] | None:
        """The models a tuple or list of imported model names holds (also through a module
        constant bound to one); None when it is something else."""
        if isinstance(node, ast.Name):
            for statement in self.tree.body:
                if isinstance(statement, ast.Assign):
                    targets = statement.targets
                elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
                    targets = [statement.target]
                else:
                    continue
                if any(isinstance(t, ast.Name) and t.id == node.id for t in targets):
                    assert statement.value is not None
                    return self._literal_models(statement.value)
            return None
        if not isinstance(node, ast.Tuple | ast.List):
            return None
        found = [
            _imported_model(self.tree, item.id) for item in node.elts if isinstance(item, ast.Name)
        ]
        return [model for model in found if model is not None]

    def _strings(self, node: ast.expr) -> list[str]:
        """A string constant, or a loop variable over a literal table of string tuples."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.Name):
            for loop in ast.walk(self.tree):
                if not (isinstance(loop, ast.For) and isinstance(loop.target, ast.Tuple)):
                    continue
                names = [t.id if isinstance(t, ast.Name) else "" for t in loop.target.elts]
                table = self._literal(loop.iter)
                if node.id in names and table is not None:
                    column = names.index(node.id)
                    return [
                        str(row.elts[column].value)
                        for row in table.elts
                        if isinstance(row, ast.Tuple) and isinstance(row.elts[column], ast.Constant)
                    ]
        self.unresolved.append(f"{self.where(node)}: {ast.unparse(node)}")
        return []

    def _literal(self, node: ast.expr) -> ast.Tuple | ast.List | None:
        """A literal tuple or list, written inline or bound to a module-level name."""
        if isinstance(node, ast.Tuple | ast.List):
            return node
        if isinstance(node, ast.Name):
            for statement in self.tree.body:
                if (
                    isinstance(statement, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == node.id for t in statement.targets)
                    and isinstance(statement.value, ast.Tuple | ast.List)
                ):
                    return statement.value
        return None


@dataclass
class Helper:
    """A function or class that passes a parameter on as a kind (or, for kopf, a plural)."""

    index: int  # position of the parameter (self excluded)
    parameter: str
    effect: Effect
    group: str | None = None  # set for kopf registrations: the parameter is a plural


def _helpers(
    tree: ast.Module, known: dict[str, Helper] | None = None
) -> tuple[dict[str, Helper], set[int]]:
    """Functions and classes of a module that forward a parameter as a kind or kopf plural.

    A class counts when its __init__ stores a parameter (`self.kind = kind`) that its
    methods then hand to the client, a function when it hands one to the client or to a
    `known` helper (the shared kit's `list_pages`, ...). Returns name -> Helper, and the
    ids of the calls inside them that use the parameter (resolved at the helpers' call
    sites instead).
    """
    known = known or {}
    helpers: dict[str, Helper] = {}
    forwarded: set[int] = set()

    def note(
        name: str,
        params: list[str],
        parameter: str,
        effect: Effect,
        group: str | None,
        call: ast.Call,
    ) -> None:
        previous = helpers.get(name)
        merged = (previous.effect if previous else ()) + effect
        helpers[name] = Helper(params.index(parameter), parameter, merged, group)
        forwarded.add(id(call))

    def scan_calls(owner: str, body: ast.AST, params: list[str], attrs: dict[str, str]) -> None:
        for node in ast.walk(body):
            if not isinstance(node, ast.Call):
                continue
            if _is_kopf_on(node) and isinstance(node.args[2], ast.Name):
                if node.args[2].id in params and (group := _group(node.args[0])):
                    note(owner, params, node.args[2].id, WATCH, group, node)
            elif (direct := _kind_call(node)) is not None:
                index, effect = direct
                argument = node.args[index] if index < len(node.args) else None
                if isinstance(argument, ast.Name) and argument.id in params:
                    note(owner, params, argument.id, effect, None, node)
                elif (
                    isinstance(argument, ast.Attribute)
                    and isinstance(argument.value, ast.Name)
                    and argument.value.id == "self"
                    and argument.attr in attrs
                ):
                    note(owner, params, attrs[argument.attr], effect, None, node)
            elif (helper := known.get(_callee(node))) is not None and helper.group is None:
                argument = _argument(node, helper.index, helper.parameter)
                if isinstance(argument, ast.Name) and argument.id in params:
                    note(owner, params, argument.id, helper.effect, None, node)

    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            init = next(
                (f for f in node.body if isinstance(f, ast.FunctionDef) and f.name == "__init__"),
                None,
            )
            if init is None:
                continue
            params = [a.arg for a in init.args.args[1:]] + [a.arg for a in init.args.kwonlyargs]
            attrs = {
                target.attr: statement.value.id
                for statement in ast.walk(init)
                if isinstance(statement, ast.Assign)
                and isinstance(statement.value, ast.Name)
                and statement.value.id in params
                for target in statement.targets
                if isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
            }
            if attrs:
                scan_calls(node.name, node, params, attrs)
            if node.name in helpers:
                _alternative_constructors(node, helpers[node.name], note)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            params = [a.arg for a in node.args.args if a.arg != "self"]
            scan_calls(node.name, node, params, {})
    return helpers, forwarded


def _alternative_constructors(cls: ast.ClassDef, helper: Helper, note: Callable[..., None]) -> None:
    """Classmethods that build the class (`cls(client, kind, ...)`) forward its kind too."""
    for method in cls.body:
        if not (
            isinstance(method, ast.FunctionDef)
            and any(
                isinstance(d, ast.Name) and d.id == "classmethod" for d in method.decorator_list
            )
        ):
            continue
        params = [a.arg for a in method.args.args[1:]] + [a.arg for a in method.args.kwonlyargs]
        for call in ast.walk(method):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "cls"
            ):
                continue
            argument = _argument(call, helper.index, helper.parameter)
            if isinstance(argument, ast.Name) and argument.id in params:
                note(method.name, params, argument.id, helper.effect, None, call)


def accesses(folder: Path) -> CodeAccess:
    """Every (resource, verb) the code under `folder` uses, with where each is used."""
    root = folder.parent
    modules = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
    # Kind constants travel between modules (`from ..instances import INSTANCES`).
    constants: dict[str, paths.ResourceKind] = dict(PATH_CONSTANTS)
    for path in modules:
        constants |= _kind_constants(ast.parse(path.read_text()))
    # The shared kit's helpers (ListWatch, ...) act for the component that calls them; its
    # write helpers already have their effect (WRITE_HELPERS: a status patch, not a patch).
    kit_helpers: dict[str, Helper] = {}
    kit: dict[str, list[Access]] = {}
    for path in sorted((root / "kubenova" / "kube").glob("*.py")):
        tree = ast.parse(path.read_text())
        found, _ = _helpers(tree)
        kit_helpers |= {name: h for name, h in found.items() if name not in WRITE_HELPERS}
        kit |= _kit_functions(tree)
    helpers: dict[str, Helper] = dict(kit_helpers)
    forwarded: set[int] = set()
    trees = {path: ast.parse(path.read_text(), filename=str(path)) for path in modules}
    for tree in trees.values():
        found, calls = _helpers(tree, kit_helpers)
        helpers |= found
        forwarded |= calls
    result = CodeAccess()
    for path in modules:
        scan = _ModuleScan(path, root, constants, (helpers, forwarded), kit)
        scan.tree = trees[path]  # the same nodes the forwarded ids refer to
        scan.scan()
        for access, places in scan.used.items():
            result.used.setdefault(access, []).extend(places)
        result.unresolved.extend(scan.unresolved)
    return result
