"""A live migration that cannot go on ends Failed with its reason, once, and rolls back
(issue 18): the real apiserver and operator, two simulated hosts whose agents this test
plays through the status fields they own.

A target that never reports TargetPrepared fails the migration after the operator's
bounded wait (`KUBENOVA_MIGRATION_PREPARE_TIMEOUT`, short here); a source that finds the
guest on neither host reports `GuestNotFound`, and the migration ends Failed with it. Both
free the target's claim, leave the instance on its source and stay Failed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubenova import conditions as cond
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from kubenova.operator.migrations.registration import PREPARE_TIMEOUT_ENV, prepare_timeout
from tests.builders import an_instance, manifest
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.integration.operator.test_scheduling import apply, catalog, get, scheduled
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

PREPARE_SECONDS = 3.0


@pytest.fixture
def quick_operator(
    apiserver: ClusterAccess, crds_installed: list[str], inventory_url: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    """The operator with a short wait for a target to prepare."""
    clean_slate(apiserver)
    process = OperatorProcess(
        log_path=tmp_path / "operator.log",
        env=os.environ | {PREPARE_TIMEOUT_ENV: str(PREPARE_SECONDS)},
        kubeconfig=apiserver.kubeconfig,
        database_url=inventory_url,
    )
    process.start()
    yield process
    process.stop()


def imig(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "instancemigration", name, "-n", namespace, "-o", "json")
    body: dict[str, Any] = json.loads(out.stdout)
    return body


def report(cluster: ClusterAccess, namespace: str, name: str, entry: dict[str, Any]) -> None:
    """What an agent writes: one more condition in the migration's status."""
    conditions = imig(cluster, namespace, name).get("status", {}).get("conditions") or []
    conditions = [c for c in conditions if c["type"] != entry["type"]] + [entry]
    patch = json.dumps({"status": {"conditions": conditions}})
    cluster.kubectl("patch", "instancemigration", name, "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", patch)  # fmt: skip


def in_phase(cluster: ClusterAccess, namespace: str, name: str, phase: str) -> dict[str, Any]:
    return eventually(
        lambda: (b := imig(cluster, namespace, name)).get("status", {}).get("phase") == phase
        and b,
        timeout=30, interval=0.1, what=f"{name} {phase}",
    )  # fmt: skip


def test_a_migration_that_cannot_go_on_ends_failed_with_its_reason(
    apiserver: ClusterAccess,
    quick_operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    flavor = catalog(apiserver)
    hosts.add("end-a", memory_mib=4096)
    hosts.add("end-b", memory_mib=4096)
    apply(apiserver, an_instance("vm", namespace, flavor=flavor))
    source = scheduled(apiserver, namespace, "vm")["status"]["host"]
    apiserver.kubectl("patch", "instance", "vm", "-n", namespace, "--subresource=status",
                      "--type=merge", "-p", '{"status":{"phase":"Running"}}')  # fmt: skip
    engine = inv.make_engine(inventory_url)

    def claims() -> list[tuple[str, str]]:
        return sorted((c.kind, c.host) for c in list_consumers(engine))

    try:
        # -- nobody prepares the target: Failed after the bounded wait --------------------
        apply(apiserver, manifest("InstanceMigration", "m1", {"instanceName": "vm"}, namespace))
        body = in_phase(apiserver, namespace, "m1", "PreparingTarget")
        target = body["status"]["targetHost"]
        assert target != source
        assert claims() == sorted([("Instance", source), ("InstanceMigration", target)])
        started = time.monotonic()
        body = eventually(lambda: imig(apiserver, namespace, "m1")["status"]["phase"] == "Failed"
                          and imig(apiserver, namespace, "m1"), timeout=30, interval=0.2,
                          what="m1 Failed")  # fmt: skip
        waited = time.monotonic() - started
        ended = cond.find(body["status"]["conditions"], "Succeeded")
        assert ended is not None
        assert (ended["status"], ended["reason"]) == ("False", "TargetNotPrepared")
        assert target in ended["message"]
        assert PREPARE_SECONDS - 1 < waited < PREPARE_SECONDS + 15
        assert claims() == [("Instance", source)]

        # -- the source finds the guest on neither host: Failed with that reason ----------
        apply(apiserver, manifest("InstanceMigration", "m2", {"instanceName": "vm"}, namespace))
        in_phase(apiserver, namespace, "m2", "PreparingTarget")
        report(apiserver, namespace, "m2", cond.condition("TargetPrepared", True, "Prepared", ""))
        in_phase(apiserver, namespace, "m2", "Running")
        message = f"the guest runs on neither {source} nor {target}"
        report(apiserver, namespace, "m2",
               cond.condition("Migrated", False, "GuestNotFound", message))  # fmt: skip
        body = in_phase(apiserver, namespace, "m2", "Failed")
        ended = cond.find(body["status"]["conditions"], "Succeeded")
        assert ended is not None
        assert (ended["status"], ended["reason"]) == ("False", "GuestNotFound")
        assert message in ended["message"]
        assert claims() == [("Instance", source)]
        assert get(apiserver, namespace, "vm")["status"]["host"] == source

        # Final: nothing retries them (the phases and the claims stay as they are).
        time.sleep(PREPARE_SECONDS + 1)
        for name in ("m1", "m2"):
            assert imig(apiserver, namespace, name)["status"]["phase"] == "Failed"
        assert claims() == [("Instance", source)]
        assert "Traceback" not in quick_operator.log()
    finally:
        engine.dispose()
        for name in ("m1", "m2"):
            apiserver.kubectl("delete", "instancemigration", name, "-n", namespace,
                              "--wait=false", check=False)  # fmt: skip


def test_the_prepare_timeout_setting_is_checked() -> None:
    assert prepare_timeout({}) == 300.0
    assert prepare_timeout({PREPARE_TIMEOUT_ENV: "2.5"}) == 2.5
    for bad in ("soon", "0", "-3", "1e9"):
        with pytest.raises(ValueError, match=PREPARE_TIMEOUT_ENV):
            prepare_timeout({PREPARE_TIMEOUT_ENV: bad})
