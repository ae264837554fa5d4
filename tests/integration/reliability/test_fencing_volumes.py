"""Fencing before reuse, volume side: a single-attach Volume of an Instance deleted on a
NotReady compute host stays attached to it (a second writer would corrupt it) until the
host is fenced. The compute host is simulated (SimulatedHosts heart-beat, the test reports
what its attacher plugged); the volume host's agent runs on the fake export driver.
"""

from __future__ import annotations

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from tests.builders import a_volume, an_instance
from tests.integration.operator.test_scheduling import host_ready
from tests.integration.volume.cluster import (
    apply,
    condition,
    get,
    report_plugged,
    volume_gone,
    volume_in_phase,
)
from tests.integration.volume.test_volume_operator import attachments, instance_with
from tests.support.hosts import SimulatedHosts
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver


def volume_refusal(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, object]:
    def refused() -> dict[str, object] | None:
        found = condition(get(cluster, "instance", namespace, name), "VolumesAllowed")
        return found if found.get("status") == "False" else None

    return eventually(refused, what=f"{name} refused the volume")


@pytest.mark.usefixtures("store_host")
def test_a_volume_of_an_instance_on_an_unfenced_host_is_not_given_to_another(
    apiserver: ClusterAccess,
    hosts: SimulatedHosts,
    compute_host: str,
    volume_namespace: str,
    inventory_url: str,
) -> None:
    ns = volume_namespace
    hosts.add("compute-2", services=("compute",), disk_gib=500)
    apply(apiserver, a_volume("solo", ns))
    volume_in_phase(apiserver, ns, "solo", "Available")
    apply(apiserver, instance_with("first", ns, "solo"))
    report_plugged(apiserver, ns, "first", {"solo": "vdb"})
    solo = volume_in_phase(apiserver, ns, "solo", "InUse")

    hosts.stop_heartbeat(compute_host)  # its agent is gone; its guest may still write
    eventually(lambda: host_ready(apiserver, compute_host) == "False", what="NotReady")
    apiserver.kubectl("delete", "instance", "first", "-n", ns, "--wait=false")
    eventually(
        lambda: (
            condition(get(apiserver, "instance", ns, "first"), "Deleted").get("reason")
            == "HostNotFenced"
        ),
        what="first waits for fencing",
    )
    second = an_instance(
        "second",
        ns,
        flavor="v.tiny",
        volumes=[{"volume": "solo"}],
        placement={"host": "compute-2"},
    )
    apply(apiserver, second)
    refusal = volume_refusal(apiserver, ns, "second")
    assert refusal["reason"] == "VolumeInUse"
    assert "volume solo is attached to first" in str(refusal["message"])
    assert [a["instance"] for a in attachments(apiserver, ns, "solo")] == ["first"]
    engine = inv.make_engine(inventory_url)
    assert len(vol.attachments_of(engine, solo["metadata"]["uid"])) == 1

    apiserver.kubectl(
        "patch", "host", compute_host, "--type=merge", "-p", '{"spec":{"outOfService":true}}'
    )
    eventually(lambda: get(apiserver, "instance", ns, "first") is None, what="first gone")
    eventually(
        lambda: [a["instance"] for a in attachments(apiserver, ns, "solo")] == ["second"],
        what="solo attached to second",
    )


def test_a_volume_deleted_on_an_unfenced_volume_host_keeps_its_target_until_fenced(
    apiserver: ClusterAccess,
    hosts: SimulatedHosts,
    store_host: VolumeAgent,
    volume_namespace: str,
    inventory_url: str,
) -> None:
    """Its export may still answer: the IQN (or AoE address) and disk stay its own."""
    ns = volume_namespace
    apply(apiserver, a_volume("kept", ns))
    uid = volume_in_phase(apiserver, ns, "kept", "Available")["metadata"]["uid"]
    engine = inv.make_engine(inventory_url)
    assert vol.find_target(engine, uid) is not None

    store_host.stop()
    hosts.stop_heartbeat("store-1")
    eventually(lambda: host_ready(apiserver, "store-1") == "False", what="store-1 NotReady")
    apiserver.kubectl("delete", "volume", "kept", "-n", ns, "--wait=false")

    def fence_advice_given() -> bool:
        events = apiserver.kubectl(
            "get", "events", "-n", ns, "--field-selector", "reason=HostNotFenced", "-o", "name"
        ).stdout
        return bool(events.strip())

    eventually(fence_advice_given, what="HostNotFenced event")
    body = get(apiserver, "volume", ns, "kept")
    assert body is not None
    assert "kubenova.io/agent" in body["metadata"]["finalizers"]
    assert vol.find_target(engine, uid) is not None
    assert inv.find_claim(engine, uid) is not None

    apiserver.kubectl(
        "patch", "host", "store-1", "--type=merge", "-p", '{"spec":{"outOfService":true}}'
    )
    volume_gone(apiserver, ns, "kept")
    assert vol.find_target(engine, uid) is None
    assert inv.find_claim(engine, uid) is None
