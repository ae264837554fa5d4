"""Render the API models into CustomResourceDefinitions (the YAML under crds/).

pydantic emits JSON Schema with $refs, anyOf-null for optionals and titles; Kubernetes wants
a *structural* OpenAPI v3 schema: everything inlined, one type per node, no nulls. This module
does that translation and nothing else, so `crds/` is always a pure function of `kubenova.api`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from kubenova.api.v1alpha1 import ALL_RESOURCES, GROUP, VERSION, Resource
from kubenova.api.v1alpha1.meta import PrinterColumn

Schema = dict[str, Any]

# Keys of pydantic's JSON Schema that have no place in a CRD schema.
_DROPPED_KEYS = {"title", "$defs", "additionalProperties"}


def _merge(base: Schema, overlay: Schema) -> Schema:
    """Overlay sibling keys (description, default, rules) on a resolved $ref target."""
    merged = dict(base)
    for key, value in overlay.items():
        if key == "x-kubernetes-validations" and key in merged:
            merged[key] = [*merged[key], *value]
        else:
            merged[key] = value
    return merged


def structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Return `node` inlined and cleaned into a structural schema."""
    node = dict(node)
    if "$ref" in node:
        target = defs[node.pop("$ref").rsplit("/", 1)[-1]]
        node = _merge(structural(target, defs), node)
    for combinator in ("allOf", "anyOf", "oneOf"):
        if combinator in node:
            branches = [b for b in node.pop(combinator) if b.get("type") != "null"]
            if len(branches) != 1:
                raise ValueError(f"cannot express {combinator} of {branches} structurally")
            node = _merge(structural(branches[0], defs), node)
    if node.get("default", ...) is None:
        del node["default"]
    additional = node.get("additionalProperties")
    out: Schema = {k: v for k, v in node.items() if k not in _DROPPED_KEYS}
    if "properties" in out:
        out["properties"] = {k: structural(v, defs) for k, v in out["properties"].items()}
    if "items" in out:
        out["items"] = structural(out["items"], defs)
    if isinstance(additional, dict):
        out["additionalProperties"] = structural(additional, defs)
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if "const" in out:
        out["enum"] = [out.pop("const")]
    return out


def openapi_schema(model: type[Resource]) -> Schema:
    """The openAPIV3Schema of one resource's CRD."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    properties: Schema = {
        "apiVersion": {"type": "string", "description": "APIVersion of this object."},
        "kind": {"type": "string", "description": "Kind of this object."},
        "metadata": {"type": "object"},
    }
    required = []
    for name in ("spec", "status"):
        if name in raw["properties"]:
            properties[name] = structural(raw["properties"][name], defs)
            if name in raw.get("required", []):
                required.append(name)
    schema: Schema = {
        "type": "object",
        "description": model.crd.description,
        "properties": properties,
    }
    if required:
        schema["required"] = required
    return schema


def _printer_column(column: PrinterColumn) -> Schema:
    out: Schema = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
    if column.description:
        out["description"] = column.description
    if column.priority:
        out["priority"] = column.priority
    return out


def crd_manifest(model: type[Resource]) -> Schema:
    """The full CustomResourceDefinition for one resource."""
    info = model.crd
    version: Schema = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": openapi_schema(model)},
    }
    if info.has_status:
        version["subresources"] = {"status": {}}
    if info.printer_columns:
        version["additionalPrinterColumns"] = [_printer_column(c) for c in info.printer_columns]
    if info.selectable_fields:
        version["selectableFields"] = [{"jsonPath": p} for p in info.selectable_fields]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{info.plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kubenova"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced" if info.namespaced else "Cluster",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": list(info.categories),
            },
            "versions": [version],
        },
    }


HEADER = "# Generated by `kubenova crds render` from kubenova/api; do not edit.\n"


def render_all() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    return {
        f"{model.crd.plural}.{GROUP}.yaml": HEADER
        + yaml.safe_dump(crd_manifest(model), sort_keys=False, width=100)
        for model in ALL_RESOURCES
    }


def write(directory: Path) -> list[Path]:
    """Write every CRD into `directory`, removing stale kubenova CRD files."""
    directory.mkdir(parents=True, exist_ok=True)
    rendered = render_all()
    for stale in directory.glob(f"*.{GROUP}.yaml"):
        if stale.name not in rendered:
            stale.unlink()
    written = []
    for name, text in rendered.items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def drift(directory: Path) -> list[str]:
    """Unified diffs between `directory` and what would be rendered now (empty when fresh)."""
    rendered = render_all()
    diffs = []
    present = {p.name for p in directory.glob(f"*.{GROUP}.yaml")}
    for name in sorted(present - rendered.keys()):
        diffs.append(f"{name}: stale file, no such resource any more\n")
    for name, text in rendered.items():
        path = directory / name
        current = path.read_text() if path.exists() else ""
        if current != text:
            diffs.append(
                "".join(
                    difflib.unified_diff(
                        current.splitlines(keepends=True),
                        text.splitlines(keepends=True),
                        fromfile=f"crds/{name} (on disk)",
                        tofile=f"crds/{name} (from kubenova/api)",
                    )
                )
            )
    return diffs
