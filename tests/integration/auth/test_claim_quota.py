"""Without the webhook the claim itself holds the quota, for Instances and Volumes alike."""

from __future__ import annotations

from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from tests.builders import a_flavor, a_project, a_volume, an_image, an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.auth.conftest import apply, kubectl_json, unique
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def scheduled(cluster: ClusterAccess, namespace: str, kind: str = "instances") -> dict[str, str]:
    """Name -> Scheduled condition message, for the placed ones and the refused."""
    listing = kubectl_json(cluster, "get", kind, "-n", namespace) or {"items": []}
    out = {}
    for item in listing["items"]:
        for entry in (item.get("status") or {}).get("conditions", []):
            if entry["type"] == "Scheduled":
                out[item["metadata"]["name"]] = f"{entry['status']}: {entry['message']}"
    return out


def test_the_claim_refuses_instances_over_the_project_quota_and_retries_on_release(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
) -> None:
    project = unique("claim")
    apply(apiserver, a_flavor("q.1", vcpus=1, memory=128, disk=1), an_image("test-image"))
    apply(apiserver, a_project(project, quota={"instances": 2}))
    eventually(
        lambda: kubectl_json(apiserver, "get", "namespace", project), what="project namespace"
    )
    hosts.add("h-q", memory_mib=8192)
    apply(apiserver, *[an_instance(f"vm{i}", project, flavor="q.1") for i in range(4)])

    def settled() -> dict[str, str] | None:
        states = scheduled(apiserver, project)
        return states if len(states) == 4 else None

    states = eventually(settled, timeout=30, what="every Instance scheduled or refused")
    placed = sorted(name for name, state in states.items() if state.startswith("True"))
    waiting = {name: state for name, state in states.items() if state.startswith("False")}
    assert len(placed) == 2, states
    assert set(waiting.values()) == {
        f"False: quota exceeded in project {project}: instances 2 + 1 > 2"
    }
    # Freeing one place lets exactly one waiting Instance in.
    apiserver.kubectl(
        "patch", "instance", placed[0], "-n", project, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}',
    )  # fmt: skip
    apiserver.kubectl("delete", "instance", placed[0], "-n", project)

    def one_more_placed() -> bool:
        states = scheduled(apiserver, project)
        return sorted(s.split(":")[0] for s in states.values()) == ["False", "True", "True"]

    eventually(one_more_placed, timeout=30, what="a waiting Instance placed after the release")
    engine = inv.make_engine(operator.database_url)
    try:
        assert quotas.usage(engine, project).instances == 2
    finally:
        engine.dispose()
    for name in scheduled(apiserver, project):
        apiserver.kubectl(
            "patch", "instance", name, "-n", project, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip
    apiserver.kubectl("delete", "instances", "--all", "-n", project)
    apiserver.kubectl("delete", "project", project, "--wait=false")


def test_the_claim_refuses_volumes_over_the_project_quota(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
) -> None:
    # No webhook runs here (the `operator` fixture serves none): only the claim stands
    # between a tenant and more volumes than the project may hold.
    project = unique("volq")
    apply(apiserver, a_project(project, quota={"volumes": 1, "volumeGiB": 10}))
    eventually(
        lambda: kubectl_json(apiserver, "get", "namespace", project), what="project namespace"
    )
    hosts.add("h-vq", disk_gib=100, services=("volume",))
    apply(apiserver, a_volume("first", project, sizeGiB=2))
    eventually(
        lambda: scheduled(apiserver, project, "volumes").get("first", "").startswith("True"),
        timeout=30,
        what="the first volume placed",
    )
    apply(apiserver, a_volume("second", project, sizeGiB=2))

    def second_refused() -> dict[str, Any] | None:
        body = kubectl_json(apiserver, "get", "volume", "second", "-n", project) or {}
        conditions = (body.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == "Scheduled"), None)

    condition = eventually(second_refused, timeout=30, what="the second volume refused")
    assert (condition["status"], condition["reason"]) == ("False", "QuotaExceeded")
    assert condition["message"] == f"quota exceeded in project {project}: volumes 1 + 1 > 1"
    second = kubectl_json(apiserver, "get", "volume", "second", "-n", project)
    assert "host" not in (second.get("status") or {})
    engine = inv.make_engine(operator.database_url)
    try:
        assert quotas.usage(engine, project) == inv.QuotaAmounts(volumes=1, volume_gib=2)
        assert inv.find_claim(engine, second["metadata"]["uid"]) is None
    finally:
        engine.dispose()
    for name in ("first", "second"):
        apiserver.kubectl(
            "patch", "volume", name, "-n", project, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}',
        )  # fmt: skip
    apiserver.kubectl("delete", "volumes", "--all", "-n", project)
    apiserver.kubectl("delete", "project", project, "--wait=false")
