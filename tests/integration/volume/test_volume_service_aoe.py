"""An AoE Volume through the real operator: placed with a shelf/slot, exported by vblade to the
MAC of the host it is attached to, read by the userspace AoE client from that host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubenova.agents.volume.driver import AoeTarget
from kubenova.agents.volume.vblade import VbladeDriver, VbladeSettings
from kubenova.devcluster import ClusterAccess
from tests.builders import a_flavor, a_volume, an_image, an_instance
from tests.fixtures.operator import OperatorProcess
from tests.fixtures.tgtd import AoeNetwork
from tests.integration.volume.cluster import (
    apply,
    condition,
    get,
    status,
    volume_gone,
    volume_in_phase,
)
from tests.support.aoe_client import AoeClient, NoAnswer, interface_mac
from tests.support.hosts import SimulatedHosts
from tests.support.volume_agent import VolumeAgent
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.netns]

GIB = 1 << 30


def report_storage_mac(cluster: ClusterAccess, host: str, mac: str) -> None:
    """What the compute host's agent reports about its storage interface."""
    patch = {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Host",
        "metadata": {"name": host},
        "status": {"storageMAC": mac},
    }
    cluster.kubectl(
        "apply", "--server-side", "--field-manager=test-storage-mac", "--subresource=status",
        "-f", "-", input=json.dumps(patch),
    )  # fmt: skip


def test_an_aoe_volume_is_served_only_to_the_attached_hosts_mac(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    aoe_network: AoeNetwork,
    volume_namespace: str,
    tmp_path: Path,
) -> None:
    ns = volume_namespace
    hosts.add("compute-1", services=("compute",), disk_gib=100)
    hosts.add("store-a", services=("volume",), disk_gib=100)
    storage = tmp_path / "store-a"
    vblade = VbladeDriver(
        VbladeSettings(
            interface=aoe_network.server_if,
            storage_dir=storage,
            run_dir=tmp_path / "vblade",
            netns=aoe_network.server_ns,
        )
    )
    agent = VolumeAgent(apiserver.kubeconfig, "store-a", {"aoe": vblade}, storage)
    try:
        apply(apiserver, a_volume("blocks", ns, sizeGiB=1, protocol="aoe"))
        body = volume_in_phase(apiserver, ns, "blocks", "Available")
        target = status(body)["target"]
        assert (target["shelf"], target["slot"], target["interface"]) == (0, 0, "stor0")
        address = AoeTarget(target["shelf"], target["slot"])

        def client(source_mac: str | None = None) -> AoeClient:
            return AoeClient(
                aoe_network.client_if,
                address.shelf,
                address.slot,
                netns=aoe_network.client_ns,
                source_mac=source_mac,
            )

        with client() as aoe, pytest.raises(NoAnswer):
            aoe.identify()  # attached nowhere: exported to no one

        # Attached to an Instance on a host that has not said its storage MAC yet.
        apply(apiserver, a_flavor("aoe.tiny", vcpus=1, memory=128, disk=1), an_image("test-image"))
        apply(
            apiserver,
            an_instance(
                "vm", ns, flavor="aoe.tiny", volumes=[{"volume": "blocks"}],
                placement={"host": "compute-1"},
            ),
        )  # fmt: skip
        eventually(
            lambda: (
                condition(get(apiserver, "volume", ns, "blocks"), "Ready").get("reason")
                == "HostNotAdmitted"
            ),
            what="HostNotAdmitted while compute-1 reports no storageMAC",
        )
        mac = interface_mac(aoe_network.client_if, aoe_network.client_ns)
        report_storage_mac(apiserver, "compute-1", mac)  # the Host change alone is enough
        eventually(
            lambda: (
                status(get(apiserver, "volume", ns, "blocks")).get("admittedHosts") == ["compute-1"]
            ),
            what="compute-1 admitted by its MAC",
        )
        entry = status(get(apiserver, "volume", ns, "blocks"))["attachments"][0]
        assert (entry["instance"], entry["mac"]) == ("vm", mac)
        with client() as aoe:
            assert aoe.identify().size_bytes == GIB
            aoe.write(4096, b"\x77" * 1024)
            assert aoe.read(4096, 1024) == b"\x77" * 1024
        with client(source_mac="02:de:ad:be:ef:01") as outsider, pytest.raises(NoAnswer):
            outsider.identify()

        # Detached (never plugged: no aoe initiator here): vblade stops answering.
        apply(
            apiserver,
            an_instance(
                "vm", ns, flavor="aoe.tiny", placement={"host": "compute-1"},
            ),
        )  # fmt: skip
        volume_in_phase(apiserver, ns, "blocks", "Available")
        with client() as aoe, pytest.raises(NoAnswer):
            aoe.identify()
        uid = body["metadata"]["uid"]
        apiserver.kubectl("delete", "volume", "blocks", "-n", ns, "--wait=false")
        volume_gone(apiserver, ns, "blocks")
        assert not (storage / f"{uid}.raw").exists()
        assert vblade.exports() == []
    finally:
        agent.stop()
