"""The Dockerfile, checked statically (Docker cannot run on these machines).

The programs each image must carry are derived from the code, not listed here: every
`shutil.which("prog")` and every argv literal (`["nft", "-f", "-"]`) in a package that
runs processes. Each program is mapped to the Debian package that ships it on this machine
(`dpkg -S`, the same Debian 12 the images are built on), and the image must install exactly
those packages — a new program in the code fails this test until the Dockerfile has it.
"""

from __future__ import annotations

import ast
import functools
import re
import shlex
import shutil
import subprocess
import sysconfig
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROGRAM = re.compile(r"^[a-z][a-z0-9.+_-]*$")
# Always in a Debian image (essential, or needed by apt and python3 themselves).
BASE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
# Tooling that never ships in an image: the dev cluster and its CLI.
NOT_SHIPPED = ("kubenova/devcluster",)


@dataclass
class Stage:
    name: str
    base: str
    args: dict[str, str] = field(default_factory=dict)
    packages: list[str] = field(default_factory=list)
    user: str | None = None
    entrypoint: list[str] = field(default_factory=list)
    copies: list[list[str]] = field(default_factory=list)


def parse_dockerfile(text: str) -> tuple[dict[str, str], dict[str, Stage]]:
    """Global ARGs and the stages, with ARG defaults expanded into apt-get install lines."""
    joined = re.sub(r"\\\n", " ", text)
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    stage: Stage | None = None
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "ARG":
            name, _, default = rest.partition("=")
            target = stage.args if stage else global_args
            target[name] = default.strip('"')
        elif instruction == "FROM":
            base, _, name = rest.partition(" AS ")
            stage = Stage(name.strip(), expand(base.strip(), global_args))
            stages[stage.name] = stage
        elif stage is None:
            continue
        elif instruction == "RUN" and "apt-get install" in rest:
            for command in rest.split("&&"):
                words = shlex.split(expand(command, stage.args))
                if words[:2] == ["apt-get", "install"]:
                    stage.packages += [w for w in words[2:] if not w.startswith("-")]
        elif instruction == "USER":
            stage.user = rest
        elif instruction == "ENTRYPOINT":
            stage.entrypoint = ast.literal_eval(rest)
        elif instruction == "COPY":
            stage.copies.append(rest.split())
    return global_args, stages


def expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), text)


def _parents(tree: ast.AST) -> dict[int, ast.AST]:
    return {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _runs_processes(folder: Path) -> bool:
    return any(
        re.search(r"^\s*(import subprocess|from subprocess|import asyncio)", p.read_text(), re.M)
        and "subprocess" in p.read_text()
        for p in folder.glob("*.py")
    )


def programs_in(*folders: Path) -> dict[str, list[str]]:
    """External programs the code under `folders` runs -> where it names them."""
    found: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            relative = path.relative_to(REPO)
            if "__pycache__" in path.parts or str(relative).startswith(NOT_SHIPPED):
                continue
            tree = ast.parse(path.read_text())
            parents = _parents(tree)
            package_runs = _runs_processes(path.parent)
            for node in ast.walk(tree):
                name = _which_literal(node) or (_argv_head(node, parents) if package_runs else None)
                if name:
                    found.setdefault(name, []).append(f"{relative}:{node.lineno}")  # type: ignore[attr-defined]
    return found


def _which_literal(node: ast.AST) -> str | None:
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "which"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return node.args[0].value
    return None


def _argv_head(node: ast.AST, parents: dict[int, ast.AST]) -> str | None:
    """`["prog", "arg", ...]` handed to a call, returned or assigned: an argv in the making."""
    if not (isinstance(node, ast.List | ast.Tuple) and len(node.elts) >= 2):
        return None
    head = node.elts[0]
    if not (isinstance(head, ast.Constant) and isinstance(head.value, str)):
        return None
    if not PROGRAM.match(head.value):
        return None
    parent = parents.get(id(node))
    if not isinstance(parent, ast.Call | ast.Return | ast.Assign | ast.AnnAssign | ast.BinOp):
        return None
    return head.value if shutil.which(head.value, path=SEARCH_PATH) else None


def debian_package(program: str) -> str:
    """The Debian package that ships `program` on this machine."""
    path = shutil.which(program, path=SEARCH_PATH)
    if path is None:
        pytest.fail(
            f"{program} is run by the code but not installed here: add its Debian package to "
            "hack/apt-packages.txt",
            pytrace=False,
        )
    return package_of(Path(path))


@functools.cache
def package_of(path: Path) -> str:
    real = path.resolve()
    candidates = [str(path), str(real)]
    for p in (path, real):  # merged /usr: dpkg may know /bin/x for /usr/bin/x
        text = str(p)
        if text.startswith("/usr/"):
            candidates.append(text.removeprefix("/usr"))
        else:
            candidates.append("/usr" + text)
    for candidate in candidates:
        result = subprocess.run(
            ["dpkg", "-S", candidate], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0].split(",")[0].strip()
    pytest.fail(f"no Debian package ships {path} (dpkg -S)", pytrace=False)


def needed_system_libraries() -> dict[str, str]:
    """Shared libraries the venv's compiled extensions link from the system -> their package."""
    site = Path(sysconfig.get_paths()["purelib"])
    ldconfig = subprocess.run(
        ["/sbin/ldconfig", "-p"], capture_output=True, text=True, check=True
    ).stdout
    system = dict(re.findall(r"^\s*(\S+) \(.*\) => (\S+)$", ldconfig, re.M))
    modules = [str(m) for m in site.rglob("*.so") if ".libs" not in m.parent.name]
    dynamic = subprocess.run(
        ["readelf", "-d", *modules], capture_output=True, text=True, check=False
    ).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(.+)\]", dynamic))
    return {soname: package_of(Path(system[soname])) for soname in needed if soname in system}


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    return parsed


def test_images_are_multi_stage_from_a_pinned_base(stages: dict[str, Stage]) -> None:
    assert {"build", "operator", "agent"} <= set(stages)
    for stage in stages.values():
        base = stage.base
        assert "@sha256:" in base or re.search(r":[\w.-]*\d[\w.-]*$", base), (
            f"stage {stage.name} starts from {base}: pin it by digest or an exact version tag"
        )
        assert not base.endswith(":latest")
    assert stages["operator"].base == stages["agent"].base == stages["build"].base


def test_the_operator_runs_as_a_non_root_user(stages: dict[str, Stage]) -> None:
    user = stages["operator"].user
    assert user is not None, "the operator stage needs a USER"
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric uid, so runAsNonRoot can check it"
    assert int(uid) != 0


def test_entry_points_are_the_declared_console_scripts(stages: dict[str, Stage]) -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]

    assert stages["operator"].entrypoint == ["kubenova-operator"]
    assert stages["agent"].entrypoint == ["kubenova-agent"]
    for name in ("kubenova-operator", "kubenova-agent", "kubenova"):
        assert name in scripts  # the chart runs `kubenova db upgrade` in the operator image
    for stage in ("operator", "agent"):
        copied = [c for c in stages[stage].copies if "--from=build" in c]
        assert copied == [["--from=build", "/opt/kubenova", "/opt/kubenova"]]


def test_the_agent_installs_exactly_the_programs_the_code_runs(stages: dict[str, Stage]) -> None:
    programs = programs_in(REPO / "agents", REPO / "kubenova")
    wanted = {debian_package(program) for program in programs}
    listed = set(stages["agent"].args["AGENT_PROGRAMS"].split())

    assert {"qemu-img", "genisoimage"} <= set(programs), programs  # the compute service's
    assert listed == wanted, f"AGENT_PROGRAMS should be {' '.join(sorted(wanted))}: " + ", ".join(
        f"{p} ({debian_package(p)}) at {where[0]}" for p, where in programs.items()
    )
    assert listed <= set(stages["agent"].packages)


def test_the_operator_installs_exactly_the_programs_the_code_runs(
    stages: dict[str, Stage],
) -> None:
    programs = programs_in(REPO / "operator", REPO / "kubenova")
    wanted = {debian_package(program) for program in programs}

    assert set(stages["operator"].args["OPERATOR_PROGRAMS"].split()) == wanted, programs


def test_the_agent_carries_the_libraries_the_extensions_link(stages: dict[str, Stage]) -> None:
    parsed = stages
    libraries = needed_system_libraries()
    wanted = set(libraries.values()) - BASE_PACKAGES

    assert "libvirt.so.0" in libraries  # libvirt-python is built against Debian's libvirt
    assert set(parsed["agent"].args["AGENT_LIBRARIES"].split()) == wanted, libraries
    # The build stage has what building libvirt-python from source needs.
    assert {"libvirt-dev", "pkg-config", "gcc", "python3-dev"} <= set(parsed["build"].packages)


def test_the_operator_never_loads_libvirt() -> None:
    """So its image needs no libvirt0 (import-linter keeps the agents out of it as well)."""
    for path in (REPO / "operator").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("libvirt") for a in node.names), path
            if isinstance(node, ast.ImportFrom):
                assert not (node.module or "").startswith("libvirt"), path


def test_the_build_context_holds_what_the_build_copies(stages: dict[str, Stage]) -> None:
    ignored = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [src for c in stages["build"].copies for src in c[:-1] if not src.startswith("--")]

    assert sorted(sources) == sorted(
        ["pyproject.toml", "requirements.lock", "README.md", "operator", "agents", "kubenova"]
    )
    for source in sources:
        assert (REPO / source).exists(), source
        assert source not in ignored, f".dockerignore drops {source}, which the build copies"
    for heavy in (".git", ".venv", "tests", "**/__pycache__"):
        assert heavy in ignored


def test_no_python_module_run_from_the_repository_root_sees_its_operator_package() -> None:
    """`python3 -m` in WORKDIR /src puts /src first on sys.path, where the repository's
    operator/ hides the standard library's `operator` (ImportError: cannot import 'eq')."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    runs = [line for line in joined.splitlines() if line.strip().upper().startswith("RUN ")]
    module_runs = [
        command
        for run in runs
        for command in run.split("&&")
        if re.search(r"\bpython3?(\.\d+)?\s+(-\w+\s+)*-m\b", command)
    ]
    assert module_runs, "the build stage makes its venv with python3 -m venv"
    for command in module_runs:
        assert re.search(r"\bpython3?\S*\s+(-\w+\s+)*-P\b", command), command.strip()


def test_the_operator_has_a_home_it_can_write(stages: dict[str, Stage]) -> None:
    """Its default inventory is ~/.local/share/kubenova (HOME=/ fails for uid 65532), and
    kopf names itself after the user (getpwuid must know the uid)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    operator = text.split(" AS operator", 1)[1].split(" AS agent", 1)[0]
    home = re.search(r"\bHOME=(\S+)", operator)
    assert home, "the operator stage sets HOME"
    uid = (stages["operator"].user or "").split(":")[0]
    useradd = re.search(rf"useradd [^&]*--uid {uid} [^&]*--home-dir (\S+) --create-home", operator)
    assert useradd, f"the operator stage creates a user for uid {uid} with its home"
    assert useradd.group(1) == home.group(1)
