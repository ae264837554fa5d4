"""Resize through the operator and a compute agent (processes, on the real apiserver; libvirt's
test driver as hypervisor): the new flavor is claimed on the Instance's host in one
transaction, the agent redefines the shut-off domain, a resize that does not fit is refused
with the old size kept, resizePolicy: Restart resizes a running guest, and an operator
killed between the claim and the status write finishes the resize on restart."""

from __future__ import annotations

from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from tests.builders import a_flavor, an_instance
from tests.e2e.test_lifecycle_fake import patch_spec
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import apply, catalog, condition, get, wait_ready
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def sized(
    cluster: ClusterAccess, namespace: str, name: str, vcpus: int, memory: int, phase: str
) -> dict[str, Any]:
    """The Instance once the agent reports its domain with that size, in that phase."""

    def probe() -> dict[str, Any] | None:
        status = (get(cluster, namespace, name) or {}).get("status") or {}
        domain = status.get("domain") or {}
        if (domain.get("vcpus"), domain.get("memoryMiB"), status.get("phase")) == (
            vcpus,
            memory,
            phase,
        ):
            return status
        return None

    return eventually(probe, timeout=60, what=f"{name} {vcpus} vCPUs {memory} MiB {phase}")


def test_resize_on_its_host_stopped_refused_and_restarted(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    inventory_url: str,
) -> None:
    small = catalog(apiserver, memory=256)
    apply(
        apiserver,
        a_flavor("t.resize-big", vcpus=2, memory=512, disk=2),
        a_flavor("t.resize-huge", vcpus=1, memory=4096, disk=2),
    )
    agents.start("rsz-a", capacity="vcpus=4,memoryMiB=1024,diskGiB=100")
    wait_ready(apiserver, "rsz-a")
    apply(apiserver, an_instance("vm", namespace, flavor=small))
    status = sized(apiserver, namespace, "vm", 1, 256, "Running")
    assert status["resources"] == {"vcpus": 1, "memoryMiB": 256, "diskGiB": 1}
    engine = inv.make_engine(inventory_url)
    uid = get(apiserver, namespace, "vm")["metadata"]["uid"]  # type: ignore[index]

    # Stopped and resized in one patch: the agent stops it, then resizes the domain.
    patch_spec(apiserver, namespace, "vm", {"powerState": "Stopped", "flavor": "t.resize-big"})
    status = sized(apiserver, namespace, "vm", 2, 512, "Stopped")
    assert status["resources"] == {"vcpus": 2, "memoryMiB": 512, "diskGiB": 2}
    resized = condition({"status": status}, "Resized")
    assert resized["status"] == "True", resized
    assert "resized to 2 vCPUs, 512 MiB, 2 GiB on host rsz-a" in resized["message"]
    claim = inv.find_claim(engine, uid)
    assert claim is not None
    assert (claim.host, claim.resources) == ("rsz-a", inv.Resources(2, 512, 2))

    # No room on its host (and no other host yet): refused, the old size kept.
    patch_spec(apiserver, namespace, "vm", {"flavor": "t.resize-huge"})

    def refused() -> dict[str, Any] | None:
        entry = condition(get(apiserver, namespace, "vm"), "Resized")
        return entry if entry.get("reason") == "NoValidHost" else None

    entry = eventually(refused, what="resize refused")
    assert entry["status"] == "False"
    assert "it keeps 2 vCPUs, 512 MiB, 2 GiB" in entry["message"], entry
    assert inv.find_claim(engine, uid) == claim
    assert (get(apiserver, namespace, "vm") or {})["status"]["resources"]["memoryMiB"] == 512

    # Back to the size it has, started; then resized while running (resizePolicy Restart).
    patch_spec(apiserver, namespace, "vm", {"flavor": "t.resize-big"})
    eventually(
        lambda: condition(get(apiserver, namespace, "vm"), "Resized").get("status") == "True",
        what="refusal cleared",
    )
    patch_spec(apiserver, namespace, "vm", {"powerState": "Running"})
    sized(apiserver, namespace, "vm", 2, 512, "Running")
    patch_spec(apiserver, namespace, "vm", {"resizePolicy": "Restart", "flavor": small})
    sized(apiserver, namespace, "vm", 1, 256, "Running")
    claim = inv.find_claim(engine, uid)
    assert claim is not None
    assert claim.resources == inv.Resources(1, 256, 1)

    # kill -9 of the operator between the claim's commit and the status write: the
    # restarted operator finds the claim of the new size and writes the status once.
    patch_spec(apiserver, namespace, "vm", {"powerState": "Stopped"})
    sized(apiserver, namespace, "vm", 1, 256, "Stopped")
    operator.kill()
    patch_spec(apiserver, namespace, "vm", {"flavor": "t.resize-big"})
    with inv.write_transaction(engine) as connection:
        inv.resize_in(connection, inv.Consumer(uid, "vm", namespace), inv.Resources(2, 512, 2))
    operator.start()
    sized(apiserver, namespace, "vm", 2, 512, "Stopped")
    assert inv.host_usage(engine)["rsz-a"] == inv.Resources(2, 512, 2)  # claimed once
    engine.dispose()
