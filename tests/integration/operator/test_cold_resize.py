"""A resize its host has no room for moves the Instance cold (issue 18, item 4), through the
real apiserver and operator; two simulated hosts whose agents this test plays through the
status fields they own (the agents' half runs on real libvirtds in
tests/integration/compute/test_cold_resize_move.py).

Refused with NoValidHost when no host fits; moved when another does, with the new size
claimed on the target and the project charged the difference once; an operator killed
(-9) between the steps finishes the move without a second claim or migration; a failed
pull rolls back (old claim, old charge, Resized=False says why); the moved Instance keeps
its fixed IP, MAC and floating IP; a live migration waits
while a resize is pending, and a resize waits while a live migration runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenova import conditions as cond
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_flavor, a_network, an_instance, manifest
from tests.e2e.test_lifecycle_fake import patch_spec
from tests.fixtures.operator import OperatorProcess, running_operator
from tests.integration.operator.test_migration_endings import imig, in_phase, report
from tests.integration.operator.test_scheduling import apply, catalog, condition, get, scheduled
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

FLOATING_POOL = "198.51.100.32/28"


@pytest.fixture
def operator(
    apiserver: ClusterAccess, crds_installed: list[str], inventory_url: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator with a floating IP pool (the moved guest has a floating IP)."""
    yield from running_operator(
        apiserver, inventory_url, tmp_path, KUBENOVA_FLOATING_IP_POOL=FLOATING_POOL
    )


BIG = inv.Resources(2, 2048, 2)  # no room on cold-a (1024 MiB x 1.5 overcommit)
SMALL = inv.Resources(1, 256, 1)


def set_phase(cluster: ClusterAccess, namespace: str, name: str, phase: str) -> None:
    """What the host's agent reports of the guest."""
    patch = json.dumps({"status": {"phase": phase}})
    cluster.kubectl("patch", "instance", name, "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", patch)  # fmt: skip


def resized(cluster: ClusterAccess, namespace: str, name: str, reason: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        entry = condition(get(cluster, namespace, name), "Resized")
        return entry if entry.get("reason") == reason else None

    return eventually(probe, timeout=30, interval=0.1, what=f"{name} Resized {reason}")


def migrations(cluster: ClusterAccess, namespace: str) -> dict[str, dict[str, Any]]:
    out = cluster.kubectl("get", "instancemigrations", "-n", namespace, "-o", "json")
    return {b["metadata"]["name"]: b for b in json.loads(out.stdout)["items"]}


def moved_to(cluster: ClusterAccess, namespace: str, name: str, phase: str) -> dict[str, Any]:
    """The migration (made by the operator, so perhaps not there yet) once in `phase`."""

    def probe() -> dict[str, Any] | None:
        body = migrations(cluster, namespace).get(name)
        return body if body and (body.get("status") or {}).get("phase") == phase else None

    return eventually(probe, timeout=30, interval=0.1, what=f"{name} {phase}")


def test_a_resize_without_room_moves_cold_with_one_claim_and_one_charge(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    small = catalog(apiserver, memory=256)
    apply(
        apiserver,
        a_flavor("t.cold-big", vcpus=BIG.vcpus, memory=BIG.memory_mb, disk=BIG.disk_gb),
        a_flavor("t.cold-huge", vcpus=1, memory=16384, disk=2),
    )
    hosts.add("cold-gw", services=("network",), underlay_ip="192.168.57.9")
    hosts.add("cold-a", memory_mib=1024, underlay_ip="192.168.57.1")
    nic = {"network": "cold-net", "floatingIP": True}
    apply(
        apiserver,
        a_network("cold-net", namespace, cidr="10.57.0.0/29"),
        an_instance("vm", namespace, flavor=small, powerState="Stopped", networks=[nic]),
    )
    body = scheduled(apiserver, namespace, "vm")
    assert body["status"]["host"] == "cold-a"
    uid = body["metadata"]["uid"]
    addresses = eventually(
        lambda: (get(apiserver, namespace, "vm") or {})["status"].get("addresses"),
        what="vm's addresses",
    )
    assert addresses[0]["floatingIP"], addresses
    hosts.add("cold-b", memory_mib=4096, underlay_ip="192.168.57.2")
    set_phase(apiserver, namespace, "vm", "Stopped")
    engine = inv.make_engine(inventory_url)

    def claims() -> list[tuple[str, str, inv.Resources]]:
        held = [(c.kind, c.host, inv.find_claim(engine, c.uid)) for c in list_consumers(engine)]
        return sorted((kind, host, claim.resources) for kind, host, claim in held if claim)

    def charged() -> tuple[int, int]:
        usage = quotas.usage(engine, namespace)
        return usage.vcpus, usage.memory_mib

    try:
        # -- no host has room: refused, nothing moves --------------------------------------
        patch_spec(apiserver, namespace, "vm", {"flavor": "t.cold-huge"})
        entry = resized(apiserver, namespace, "vm", "NoValidHost")
        assert "no other host fits it" in entry["message"], entry
        assert "it keeps 1 vCPUs, 256 MiB, 1 GiB" in entry["message"], entry
        assert claims() == [("Instance", "cold-a", SMALL)]
        assert migrations(apiserver, namespace) == {}

        # -- another host has room: one cold migration, the new size claimed there ---------
        patch_spec(apiserver, namespace, "vm", {"flavor": "t.cold-big"})
        generation = get(apiserver, namespace, "vm")["metadata"]["generation"]  # type: ignore[index]
        move = f"resize-{uid}-{generation}"
        body = moved_to(apiserver, namespace, move, "PreparingTarget")
        assert body["spec"] == {"instanceName": "vm", "mode": "Cold"}
        assert (body["status"]["sourceHost"], body["status"]["targetHost"]) == ("cold-a", "cold-b")
        moving = resized(apiserver, namespace, "vm", "Moving")
        assert moving["status"] == "False"
        assert move in moving["message"]
        both = [("Instance", "cold-a", SMALL), ("InstanceMigration", "cold-b", BIG)]
        assert claims() == both
        assert charged() == (BIG.vcpus, BIG.memory_mb)  # the difference, charged once

        # -- kill -9 of the operator between each step: no second claim, no second move -----
        operator.kill()
        report(apiserver, namespace, move, cond.condition("TargetPrepared", True, "Pulled", ""))
        operator.start()
        in_phase(apiserver, namespace, move, "Running")
        assert claims() == both
        assert charged() == (BIG.vcpus, BIG.memory_mb)
        operator.kill()
        report(apiserver, namespace, move, cond.condition("Migrated", True, "Moved", ""))
        operator.start()
        in_phase(apiserver, namespace, move, "Completed")
        entry = resized(apiserver, namespace, "vm", "Resized")
        assert entry["status"] == "True"
        assert "on host cold-b" in entry["message"], entry
        status = get(apiserver, namespace, "vm")["status"]  # type: ignore[index]
        assert status["host"] == "cold-b"
        assert status["resources"] == {"vcpus": 2, "memoryMiB": 2048, "diskGiB": 2}
        assert status["addresses"] == addresses  # fixed IP, MAC and floating IP kept
        assert claims() == [("Instance", "cold-b", BIG)]
        assert charged() == (BIG.vcpus, BIG.memory_mb)
        assert list(migrations(apiserver, namespace)) == [move]

        # -- a pull that fails: back to the old claim and charge, Resized says why ---------
        apply(apiserver, an_instance("vm2", namespace, flavor=small, powerState="Stopped"))
        assert scheduled(apiserver, namespace, "vm2")["status"]["host"] == "cold-a"
        uid2 = get(apiserver, namespace, "vm2")["metadata"]["uid"]  # type: ignore[index]
        set_phase(apiserver, namespace, "vm2", "Stopped")
        patch_spec(apiserver, namespace, "vm2", {"flavor": "t.cold-big"})
        move2 = f"resize-{uid2}-2"
        moved_to(apiserver, namespace, move2, "PreparingTarget")
        assert charged() == (2 * BIG.vcpus, 2 * BIG.memory_mb)
        why = "pulling the overlay failed: the source's disk is unreadable"
        report(apiserver, namespace, move2,
               cond.condition("TargetPrepared", False, "PullFailed", why))  # fmt: skip
        in_phase(apiserver, namespace, move2, "Failed")
        entry = resized(apiserver, namespace, "vm2", "TargetNotPrepared")
        assert why in entry["message"]
        assert "it keeps 1 vCPUs, 256 MiB, 1 GiB" in entry["message"]
        assert claims() == [("Instance", "cold-a", SMALL), ("Instance", "cold-b", BIG)]
        assert charged() == (BIG.vcpus + SMALL.vcpus, BIG.memory_mb + SMALL.memory_mb)

        # -- a live migration waits while a resize of its instance is pending ---------------
        set_phase(apiserver, namespace, "vm2", "Running")
        apply(apiserver, manifest("InstanceMigration", "live", {"instanceName": "vm2"}, namespace))
        eventually(lambda: f"{namespace}/live: waits for the resize" in operator.log(),
                   timeout=30, interval=0.1, what="the live migration waiting")  # fmt: skip
        assert (imig(apiserver, namespace, "live").get("status") or {}).get("phase") is None
        assert claims() == [("Instance", "cold-a", SMALL), ("Instance", "cold-b", BIG)]
        patch_spec(apiserver, namespace, "vm2", {"flavor": small})  # the resize is dropped
        in_phase(apiserver, namespace, "live", "PreparingTarget")

        # -- ... and a resize waits while a live migration of its instance runs -------------
        patch_spec(apiserver, namespace, "vm2", {"flavor": "t.cold-big"})
        time.sleep(1)  # the operator acts within ~0.1 s; nothing may come of it here
        assert sorted(migrations(apiserver, namespace)) == sorted([move, move2, "live"])
        assert claims() == [
            ("Instance", "cold-a", SMALL),
            ("Instance", "cold-b", BIG),
            ("InstanceMigration", "cold-b", SMALL),
        ]
        report(apiserver, namespace, "live",
               cond.condition("TargetPrepared", False, "PrepareFailed", "no"))  # fmt: skip
        in_phase(apiserver, namespace, "live", "Failed")
        generation = get(apiserver, namespace, "vm2")["metadata"]["generation"]  # type: ignore[index]
        moved_to(apiserver, namespace, f"resize-{uid2}-{generation}", "PreparingTarget")

        # -- a running guest moves too when its spec allows a restart (its agent stops it) --
        apply(apiserver, an_instance("vm3", namespace, flavor=small, resizePolicy="Restart"))
        assert scheduled(apiserver, namespace, "vm3")["status"]["host"] == "cold-a"
        uid3 = get(apiserver, namespace, "vm3")["metadata"]["uid"]  # type: ignore[index]
        set_phase(apiserver, namespace, "vm3", "Running")
        patch_spec(apiserver, namespace, "vm3", {"flavor": "t.cold-big"})
        body = moved_to(apiserver, namespace, f"resize-{uid3}-2", "PreparingTarget")
        assert body["spec"]["mode"] == "Cold"
        assert "Traceback" not in operator.log()
    finally:
        engine.dispose()
        for name in migrations(apiserver, namespace):
            apiserver.kubectl("delete", "instancemigration", name, "-n", namespace,
                              "--wait=false", check=False)  # fmt: skip
