"""The generated CRDs are structural and say what the API models say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova import crdgen
from kubenova.api.v1alpha1 import ALL_RESOURCES, Instance, Volume

REPO = Path(__file__).resolve().parents[2]
INSTANCE_SPEC_RULES = REPO / "charts" / "kubenova" / "policies" / "instance-spec-rules.yaml"


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += walk(child, f"{path}.{name}")
    if "items" in node:
        found += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += walk(node["additionalProperties"], f"{path}{{}}")
    return found


@pytest.mark.parametrize("model", ALL_RESOURCES, ids=lambda m: m.crd.kind)
def test_every_schema_node_is_structural(model: Any) -> None:
    schema = crdgen.openapi_schema(model)
    for path, node in walk(schema):
        assert "type" in node, f"{model.crd.kind}{path} has no type"
        for banned in ("$ref", "anyOf", "allOf", "oneOf", "title", "$defs"):
            assert banned not in node, f"{model.crd.kind}{path} keeps {banned}"
        assert node.get("default", 0) is not None, f"{model.crd.kind}{path} defaults to null"


@pytest.mark.parametrize("model", ALL_RESOURCES, ids=lambda m: m.crd.kind)
def test_every_field_is_documented(model: Any) -> None:
    schema = crdgen.openapi_schema(model)["properties"]["spec"]
    for path, node in walk(schema, ".spec"):
        if path.endswith(("[]", "{}")):
            continue  # list items and map values are described by their field
        assert node.get("description"), f"{model.crd.kind}{path} has no description"


def test_instance_crd_has_the_kubectl_surface() -> None:
    crd = crdgen.crd_manifest(Instance)
    names = crd["spec"]["names"]
    assert names["shortNames"] == ["inst"]
    assert names["categories"] == ["kubenova"]
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:5] == ["Phase", "Host", "IP", "Ready", "Age"]
    conditions = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "conditions"
    ]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def test_immutable_fields_carry_a_transition_rule() -> None:
    spec = crdgen.openapi_schema(Volume)["properties"]["spec"]["properties"]
    for field in ("protocol", "image", "availabilityZone"):
        rules = [r["rule"] for r in spec[field]["x-kubernetes-validations"]]
        assert "self == oldSelf" in rules, field


def test_instance_schema_has_no_cel_rules() -> None:
    """The apiserver runs every CEL rule of a CRD on every status write; the Instance's
    status is written at each placement, so its spec's rules are an admission policy."""
    assert "x-kubernetes-validations" not in json.dumps(crdgen.openapi_schema(Instance))
    policy = next(yaml.safe_load_all(INSTANCE_SPEC_RULES.read_text()))
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["instances"]
    messages = [v["message"] for v in policy["spec"]["validations"]]
    immutable = {m.split()[0] for m in messages if "immutable" in m}
    assert immutable == {"spec.image", "spec.availabilityZone", "spec.placement"}


def test_crds_folder_is_fresh() -> None:
    """CI fails when crds/ drifts from kubenova/api (`kubenova crds render` fixes it)."""
    assert crdgen.drift(REPO / "crds") == []


def test_drift_is_detected(tmp_path: Path) -> None:
    crdgen.write(tmp_path)
    assert crdgen.drift(tmp_path) == []
    victim = tmp_path / "instances.kubenova.io.yaml"
    victim.write_text(victim.read_text().replace("shortNames:\n    - inst", "shortNames: []"))
    (tmp_path / "gone.kubenova.io.yaml").write_text("{}")
    diffs = crdgen.drift(tmp_path)
    assert len(diffs) == 2
    assert any("instances.kubenova.io.yaml" in d for d in diffs)
