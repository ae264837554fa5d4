"""The chart grants the dashboard exactly the rules `kubenova dev up` and the tests use."""

from __future__ import annotations

from pathlib import Path

import yaml

from kubenova.dashboard import rbac

TEMPLATE = Path(__file__).resolve().parents[3] / "charts/kubenova/templates/dashboard-rbac.yaml"


def test_the_chart_and_the_code_grant_the_same_rules() -> None:
    text = TEMPLATE.read_text()
    # the ClusterRole's rules hold no template directive: plain YAML between rules: and ---
    block = text.split("kind: ClusterRole\n", 1)[1].split("rules:\n", 1)[1].split("---", 1)[0]
    assert "{{" not in block
    assert yaml.safe_load(block) == rbac.rules()


def test_the_dashboard_may_impersonate_only_its_group_and_no_service_account() -> None:
    rules = rbac.rules()
    impersonation = [r for r in rules if "impersonate" in r["verbs"]]
    assert {res for r in impersonation for res in r["resources"]} == {"users", "groups"}
    [groups] = [r for r in impersonation if r["resources"] == ["groups"]]
    assert groups["resourceNames"] == ["kubenova:dashboard"]
    others = [r for r in rules if r not in impersonation]
    assert others == [
        {"apiGroups": ["kubenova.io"], "resources": ["projects"], "verbs": ["get", "list"]}
    ]
