"""Without the webhook the claim itself holds the quota; unclaimed reservations are swept."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient, load_config
from kubenova.operator import inventory as inv
from kubenova.operator.controllers.projects import drop_unclaimed_reservations
from kubenova.operator.inventory import quotas
from tests.builders import a_flavor, a_project, an_image, an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.auth.conftest import apply, kubectl_json, unique
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def scheduled(cluster: ClusterAccess, namespace: str) -> dict[str, str]:
    """Instance name -> Scheduled condition message, for the placed ones and the refused."""
    listing = kubectl_json(cluster, "get", "instances", "-n", namespace) or {"items": []}
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


def test_reservations_no_object_took_up_are_dropped(
    apiserver: ClusterAccess, crds_installed: list[str], inventory_url: str
) -> None:
    namespace = unique("sweep")
    apiserver.kubectl("create", "namespace", namespace)
    apply(apiserver, a_flavor("q.1", vcpus=1, memory=128, disk=1), an_image("test-image"))
    apply(apiserver, an_instance("real", namespace, flavor="q.1"))
    real_uid = kubectl_json(apiserver, "get", "instance", "real", "-n", namespace)["metadata"][
        "uid"
    ]
    engine = inv.make_engine(inventory_url)
    amounts = inv.QuotaAmounts.for_instance(inv.Resources(1, 128, 1))
    for uid, name in ((real_uid, "real"), ("refused-later", "ghost")):
        quotas.reserve(engine, inv.Consumer(uid, name, namespace), amounts, dry_run=False)

    async def sweep(grace: timedelta) -> list[str]:
        async with KubeClient(load_config(str(apiserver.kubeconfig))) as client:
            return await drop_unclaimed_reservations(engine, client, grace)

    try:
        assert asyncio.run(sweep(timedelta(minutes=5))) == []  # still young: kept
        assert asyncio.run(sweep(timedelta(seconds=-1))) == ["refused-later"]
        assert [c.consumer_uid for c in quotas.list_charges(engine, namespace)] == [real_uid]
    finally:
        engine.dispose()
        apiserver.kubectl("delete", "instance", "real", "-n", namespace, check=False)
