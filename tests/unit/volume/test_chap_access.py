"""Which host may read which CHAP Secret: the export host and the attached hosts only."""

from __future__ import annotations

from typing import Any

from kubenova.operator.volumes.chap_access import plan, readers, role, role_binding


def a_placed_volume(
    name: str, host: str | None, *attached: str, secret: str | None = "auto"
) -> dict[str, Any]:
    status: dict[str, Any] = {"attachments": [{"instance": f"vm-{h}", "host": h} for h in attached]}
    if host:
        status["host"] = host
    if secret:
        status["target"] = {"chapSecret": f"{name}-chap" if secret == "auto" else secret}
    return {"metadata": {"name": name}, "status": status}


def test_the_export_host_and_every_attached_host_read_a_volume_secret() -> None:
    assert readers(a_placed_volume("v", "store", "c1", "c2")) == {"store", "c1", "c2"}


def test_grants_are_per_host_and_name_each_secret() -> None:
    volumes = [
        a_placed_volume("v1", "store", "c1"),
        a_placed_volume("v2", "store"),
        a_placed_volume("aoe", "store", "c2", secret=None),  # AoE: no CHAP Secret
        a_placed_volume("pending", None),  # not placed: no one reads it yet
    ]

    assert plan(volumes) == {"store": ["v1-chap", "v2-chap"], "c1": ["v1-chap"]}


def test_a_role_grants_get_on_the_named_secrets_to_one_agent_only() -> None:
    made = role("h1", "ns", ["a-chap"])
    bound = role_binding("h1", "ns")

    assert made["metadata"]["name"] == bound["metadata"]["name"] == "kubenova-chap-h1"
    assert made["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["a-chap"], "verbs": ["get"]}
    ]
    assert bound["roleRef"]["name"] == "kubenova-chap-h1"
    assert [s["name"] for s in bound["subjects"]] == ["kubenova:agent:h1"]
