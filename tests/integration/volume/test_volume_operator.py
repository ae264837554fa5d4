"""Volumes through the real operator and apiserver, with a volume host agent on the fake driver.

The compute side is played by the test (SimulatedHosts heart-beat; the test reports what
an attacher would have plugged), so these tests pin the operator's and the volume agent's
half: placement, identities, CHAP Secret, attachments, phases, deletion held until detached.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubenova.agents.volume.fake import FakeExportDaemon, FakeExportDriver
from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from tests.builders import a_flavor, a_volume, an_image, an_instance
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import wait_ready
from tests.integration.volume.cluster import (
    apply,
    condition,
    drop_agent_finalizer,
    get,
    report_plugged,
    secret_data,
    status,
    volume_gone,
    volume_in_phase,
)
from tests.support.hosts import SimulatedHosts
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


@pytest.fixture
def daemon() -> FakeExportDaemon:
    return FakeExportDaemon()


@pytest.fixture
def store_host(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    daemon: FakeExportDaemon,
    tmp_path: Path,
) -> Iterator[VolumeAgent]:
    """Host store-1 runs the volume service (fake export daemon, real files)."""
    hosts.add("store-1", services=("volume",), disk_gib=50)
    agent = VolumeAgent(
        apiserver.kubeconfig,
        "store-1",
        {"iscsi": FakeExportDriver("iscsi", daemon, location="10.0.0.5:3260")},
        tmp_path / "store-1",
    )
    yield agent
    agent.stop()


def test_a_volume_is_placed_exported_and_available(
    apiserver: ClusterAccess,
    hosts: SimulatedHosts,
    store_host: VolumeAgent,
    daemon: FakeExportDaemon,
    volume_namespace: str,
    inventory_url: str,
) -> None:
    hosts.add("compute-1", services=("compute",), disk_gib=500)
    apply(apiserver, a_volume("data", volume_namespace, sizeGiB=10))
    body = volume_in_phase(apiserver, volume_namespace, "data", "Available")
    meta, st = body["metadata"], status(body)
    uid = meta["uid"]
    assert st["host"] == "store-1"  # the only host running the volume service
    assert "kubenova.io/host" not in (meta.get("labels") or {})  # status.host is the hand-over
    assert set(meta["finalizers"]) == {"kubenova.io/operator", "kubenova.io/agent"}
    assert st["target"] == {
        "iqn": f"iqn.2010-10.io.kubenova:volume-{uid}",
        "lun": 1,
        "chapSecret": "data-chap",
        "portal": "10.0.0.5:3260",
    }
    assert condition(body, "Scheduled")["status"] == "True"
    assert condition(body, "Ready")["reason"] == "Exported"
    assert st["observedGeneration"] == meta["generation"]
    credentials = secret_data(apiserver, volume_namespace, "data-chap")
    assert credentials["username"] == f"volume-{uid}"
    assert len(credentials["password"]) == 16
    assert daemon.credentials[st["target"]["iqn"]] == credentials["username"]
    assert store_host.store.size(uid) == 10 << 30
    engine = inv.make_engine(inventory_url)
    claim = inv.find_claim(engine, uid)
    assert claim is not None
    assert (claim.host, claim.resources) == ("store-1", inv.Resources(disk_gb=10))
    assert vol.find_target(engine, uid) == vol.TargetIdentity(
        uid, "store-1", "iscsi", iqn=st["target"]["iqn"], lun=1
    )
    events = apiserver.kubectl("get", "events", "-n", volume_namespace, "-o", "json").stdout
    assert "placed on host store-1" in events
    assert "exported as iqn.2010-10.io.kubenova" in events


def test_no_volume_host_says_why_then_places_when_one_comes(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    volume_namespace: str,
) -> None:
    hosts.add("compute-1", services=("compute",))
    wait_ready(apiserver, "compute-1")  # else the refusal may still count 0 hosts
    apply(apiserver, a_volume("later", volume_namespace, sizeGiB=5))
    body = volume_in_phase(apiserver, volume_namespace, "later", "Pending")
    scheduled = condition(body, "Scheduled")
    assert scheduled["reason"] == "NoValidHost"
    assert scheduled["message"] == "1 host: 1 do not run the volume service"
    hosts.add("store-9", services=("volume",), disk_gib=4)
    eventually(
        lambda: (
            "1 lack disk (need 5 GiB, max free 4 GiB)"
            in condition(get(apiserver, "volume", volume_namespace, "later"), "Scheduled")[
                "message"
            ]
        ),
        what="the refusal to name the small volume host",
    )
    hosts.add("store-10", services=("volume",), disk_gib=20)
    eventually(
        lambda: (
            status(get(apiserver, "volume", volume_namespace, "later")).get("host") == "store-10"
        ),
        what="placement once a host with room registers",
    )


def test_the_availability_zone_is_honoured(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    volume_namespace: str,
) -> None:
    hosts.add("store-a", services=("volume",), zone="zone-a", disk_gib=500)
    hosts.add("store-b", services=("volume",), zone="zone-b", disk_gib=50)
    apply(apiserver, a_volume("zoned", volume_namespace, sizeGiB=1, availabilityZone="zone-b"))
    eventually(
        lambda: (
            status(get(apiserver, "volume", volume_namespace, "zoned")).get("host") == "store-b"
        ),
        what="placement in zone-b although zone-a has more room",
    )


def instance_with(name: str, namespace: str, *volumes: str) -> dict[str, object]:
    return an_instance(
        name,
        namespace,
        flavor="v.tiny",
        volumes=[{"volume": v} for v in volumes],
        placement={"host": "compute-1"},
    )


@pytest.fixture
def compute_host(apiserver: ClusterAccess, hosts: SimulatedHosts) -> str:
    hosts.add("compute-1", services=("compute",), disk_gib=500)
    apply(apiserver, a_flavor("v.tiny", vcpus=1, memory=128, disk=1), an_image("test-image"))
    return "compute-1"


def attachments(cluster: ClusterAccess, namespace: str, name: str) -> list[dict[str, object]]:
    return list(status(get(cluster, "volume", namespace, name)).get("attachments") or [])


@pytest.mark.usefixtures("compute_host")
def test_attach_and_detach_walk_through_the_phases(
    apiserver: ClusterAccess,
    store_host: VolumeAgent,
    daemon: FakeExportDaemon,
    volume_namespace: str,
) -> None:
    ns = volume_namespace
    apply(apiserver, a_volume("disk", ns, sizeGiB=1))
    volume_in_phase(apiserver, ns, "disk", "Available")
    apply(apiserver, instance_with("vm", ns, "disk"))
    body = volume_in_phase(apiserver, ns, "disk", "Attaching")
    assert attachments(apiserver, ns, "disk") == [
        {
            "instance": "vm",
            "host": "compute-1",
            "state": "Attaching",
            "initiator": "iqn.2010-10.io.kubenova:host.compute-1",
        }
    ]
    iqn = status(body)["target"]["iqn"]
    eventually(lambda: daemon.exports[iqn].acl == ("iqn.2010-10.io.kubenova:host.compute-1",))
    eventually(
        lambda: status(get(apiserver, "volume", ns, "disk")).get("admittedHosts") == ["compute-1"]
    )
    allowed = condition(get(apiserver, "instance", ns, "vm"), "VolumesAllowed")
    assert (allowed["status"], allowed["message"]) == ("True", "allowed: disk")
    report_plugged(apiserver, ns, "vm", {"disk": "vdb"})
    volume_in_phase(apiserver, ns, "disk", "InUse")
    assert attachments(apiserver, ns, "disk")[0]["device"] == "vdb"
    apply(apiserver, instance_with("vm", ns))  # the user detaches
    volume_in_phase(apiserver, ns, "disk", "Detaching")
    assert daemon.exports[iqn].acl != ()  # still admitted: the guest still has it
    report_plugged(apiserver, ns, "vm", {})  # the attacher unplugged it
    body = volume_in_phase(apiserver, ns, "disk", "Available")
    assert status(body).get("attachments", []) == []
    assert status(body).get("admittedHosts", []) == []
    eventually(lambda: daemon.exports[iqn].acl == ())


@pytest.mark.usefixtures("compute_host", "store_host")
def test_a_single_attach_volume_is_refused_to_a_second_instance(
    apiserver: ClusterAccess, volume_namespace: str
) -> None:
    ns = volume_namespace
    apply(apiserver, a_volume("solo", ns), a_volume("shared", ns, multiAttach=True))
    volume_in_phase(apiserver, ns, "solo", "Available")
    volume_in_phase(apiserver, ns, "shared", "Available")
    apply(apiserver, instance_with("first", ns, "solo", "shared"))
    volume_in_phase(apiserver, ns, "solo", "Attaching")
    apply(apiserver, instance_with("second", ns, "solo", "shared"))

    def refused() -> dict[str, object] | None:
        found = condition(get(apiserver, "instance", ns, "second"), "VolumesAllowed")
        return found if found.get("status") == "False" else None

    refusal = eventually(refused, what="the second Instance refused")
    assert refusal["reason"] == "VolumeInUse"
    assert "volume solo is attached to first" in str(refusal["message"])
    assert "multiAttach: true" in str(refusal["message"])
    assert [a["instance"] for a in attachments(apiserver, ns, "solo")] == ["first"]
    eventually(
        lambda: (
            sorted(str(a["instance"]) for a in attachments(apiserver, ns, "shared"))
            == ["first", "second"]
        ),
        what="both Instances on the multi-attach volume",
    )


@pytest.mark.usefixtures("compute_host", "store_host")
def test_a_missing_volume_is_allowed_once_it_exists(
    apiserver: ClusterAccess, volume_namespace: str
) -> None:
    ns = volume_namespace
    apply(apiserver, instance_with("early", ns, "not-yet"))

    def reason() -> str:
        return str(
            condition(get(apiserver, "instance", ns, "early"), "VolumesAllowed").get("reason")
        )

    eventually(lambda: reason() == "VolumeNotFound", what="VolumeNotFound")
    apply(apiserver, a_volume("not-yet", ns))
    eventually(lambda: reason() == "Allowed", what="allowed once the volume exists and is placed")
    volume_in_phase(apiserver, ns, "not-yet", "Attaching")


@pytest.mark.usefixtures("compute_host")
def test_deleting_an_attached_volume_waits_until_it_is_detached(
    apiserver: ClusterAccess,
    store_host: VolumeAgent,
    daemon: FakeExportDaemon,
    volume_namespace: str,
    inventory_url: str,
) -> None:
    ns = volume_namespace
    apply(apiserver, a_volume("held", ns, sizeGiB=2))
    uid = volume_in_phase(apiserver, ns, "held", "Available")["metadata"]["uid"]
    apply(apiserver, instance_with("vm", ns, "held"))
    report_plugged(apiserver, ns, "vm", {"held": "vdb"})
    volume_in_phase(apiserver, ns, "held", "InUse")
    apiserver.kubectl("delete", "volume", "held", "-n", ns, "--wait=false")
    body = volume_in_phase(apiserver, ns, "held", "Deleting")
    blocked = condition(body, "Ready")
    assert blocked["reason"] == "DeletionBlocked"
    assert "detached from vm" in blocked["message"]
    eventually(
        lambda: (
            "DeletionBlocked" in apiserver.kubectl("get", "events", "-n", ns, "-o", "json").stdout
        ),
        what="a DeletionBlocked event",
    )
    assert store_host.store.exists(uid)
    apply(apiserver, instance_with("late", ns, "held"))
    eventually(
        lambda: (
            condition(get(apiserver, "instance", ns, "late"), "VolumesAllowed").get("reason")
            == "VolumeDeleting"
        ),
        what="no new attachment to a volume being deleted",
    )
    apply(apiserver, instance_with("vm", ns))
    report_plugged(apiserver, ns, "vm", {})
    volume_gone(apiserver, ns, "held")
    assert not store_host.store.exists(uid)
    assert daemon.exports == {}
    engine = inv.make_engine(inventory_url)
    assert inv.find_claim(engine, uid) is None
    assert vol.find_target(engine, uid) is None
    assert vol.attachments_of(engine, uid) == []
    assert get(apiserver, "secret", ns, "held-chap") is None


@pytest.mark.usefixtures("compute_host", "store_host")
def test_deleting_the_instance_withdraws_its_attachments(
    apiserver: ClusterAccess, volume_namespace: str, inventory_url: str
) -> None:
    ns = volume_namespace
    apply(apiserver, a_volume("kept", ns))
    volume_in_phase(apiserver, ns, "kept", "Available")
    apply(apiserver, instance_with("vm", ns, "kept"))
    report_plugged(apiserver, ns, "vm", {"kept": "vdb"})
    volume_in_phase(apiserver, ns, "kept", "InUse")
    apiserver.kubectl("delete", "instance", "vm", "-n", ns, "--wait=false")
    eventually(lambda: get(apiserver, "instance", ns, "vm") is not None)
    drop_agent_finalizer(apiserver, "instance", ns, "vm")  # the domain is gone
    body = volume_in_phase(apiserver, ns, "kept", "Available")
    assert status(body).get("attachments", []) == []
    engine = inv.make_engine(inventory_url)
    assert vol.attachments_of(engine, body["metadata"]["uid"]) == []
