"""The operator restarted around Volumes: nothing is rewritten, and what leaked is released."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenova.agents.volume.fake import FakeExportDaemon, FakeExportDriver
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from tests.builders import a_flavor, a_volume, an_image, an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.volume.cluster import apply, get, report_plugged, status, volume_in_phase
from tests.support.hosts import SimulatedHosts
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


@pytest.fixture
def attached(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    volume_namespace: str,
    tmp_path: Path,
) -> Iterator[str]:
    """Volume `disk` attached to Instance `vm` (InUse); yields the namespace."""
    hosts.add("compute-1", services=("compute",), disk_gib=100)
    hosts.add("store-1", services=("volume",), disk_gib=100)
    agent = VolumeAgent(
        apiserver.kubeconfig,
        "store-1",
        {"iscsi": FakeExportDriver("iscsi", FakeExportDaemon())},
        tmp_path / "store-1",
    )
    ns = volume_namespace
    apply(apiserver, a_flavor("r.tiny", vcpus=1, memory=128, disk=1), an_image("test-image"))
    apply(apiserver, a_volume("disk", ns))
    volume_in_phase(apiserver, ns, "disk", "Available")
    apply(apiserver, vm_with(ns, "vm", "disk"))
    report_plugged(apiserver, ns, "vm", {"disk": "vdb"})
    volume_in_phase(apiserver, ns, "disk", "InUse")
    yield ns
    agent.stop()


def vm_with(namespace: str, name: str, *volumes: str) -> dict[str, object]:
    return an_instance(
        name,
        namespace,
        flavor="r.tiny",
        volumes=[{"volume": v} for v in volumes],
        placement={"host": "compute-1"},
    )


def writes_logged(operator: OperatorProcess) -> dict[str, int]:
    found = re.findall(r"api writes: (\{.*\})", operator.log())
    assert found, "the operator logs its write counts when it stops"
    return dict(json.loads(found[-1]))


def test_a_restarted_operator_rewrites_nothing_about_placed_and_attached_volumes(
    apiserver: ClusterAccess, operator: OperatorProcess, attached: str
) -> None:
    before = get(apiserver, "volume", attached, "disk")
    assert before is not None
    operator.kill()
    operator.start()
    time.sleep(5)  # every Volume and Instance event replayed, reconciled
    operator.stop()
    after = get(apiserver, "volume", attached, "disk")
    assert after is not None
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    writes = writes_logged(operator)  # of the restarted process only (the first was killed)
    assert not {k: v for k, v in writes.items() if "volumes" in k or "secrets" in k}, writes


def test_an_instance_deleted_while_the_operator_was_down_gives_its_volume_back(
    apiserver: ClusterAccess, operator: OperatorProcess, attached: str, inventory_url: str
) -> None:
    ns = attached
    operator.kill()
    apiserver.kubectl(
        "patch", "instance", "vm", "-n", ns, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}',
    )  # fmt: skip
    apiserver.kubectl("delete", "instance", "vm", "-n", ns)
    operator.extra_args = ("--audit-interval", "2")
    operator.start()
    body = volume_in_phase(apiserver, ns, "disk", "Available", timeout=40)
    assert status(body).get("attachments", []) == []
    engine = inv.make_engine(inventory_url)
    assert vol.attachments_of(engine, body["metadata"]["uid"]) == []
    assert "volume audit released leaked attachment of " + f"{ns}/vm" in operator.log()
    apply(apiserver, vm_with(ns, "vm2", "disk"))  # free for another Instance again
    eventually(
        lambda: [a["instance"] for a in status(get(apiserver, "volume", ns, "disk")).get(
            "attachments", []
        )] == ["vm2"],
        what="vm2 attached",
    )  # fmt: skip
