"""The destination XML of a live migration (pure): the instance's files move to the target's
directory, nothing else does, and the overlay's backing chain is left to the target."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from kubenova.agents.compute.domain_xml import (
    DomainFiles,
    DomainSettings,
    DomainType,
    build_domain_xml,
)
from kubenova.agents.compute.migration import destination_xml, job_progress, published_endpoint
from kubenova.agents.compute.spec import (
    CloudInitSeed,
    DiskAttachment,
    DomainSpec,
    IscsiAuth,
    IscsiVolume,
    RootDisk,
)
from kubenova.api.v1alpha1 import Host

SOURCE = Path("/var/lib/a/instances/kubenova-u1")
TARGET = Path("/var/lib/b/instances/kubenova-u1")


SOURCE_IQN = "iqn.2026-01.io.kubenova:host.node-1"
TARGET_IQN = "iqn.2026-01.io.kubenova:host.node-2"
VOLUME = IscsiVolume(
    volume_id="data", host="192.0.2.5", port=3260, iqn="iqn.2026-01.io.kubenova:vol.v1",
    lun=1, auth=IscsiAuth("chap-user", "kubenova-volume-v1"), initiator=SOURCE_IQN,
)  # fmt: skip


def source_xml(volumes: tuple[DiskAttachment, ...] = ()) -> str:
    spec = DomainSpec(
        uid="u1", namespace="t", name="vm", vcpus=1, memory_mib=128,
        root_disk=RootDisk(Path("/var/cache/images/base.qcow2")),
        seed=CloudInitSeed(instance_id="i-1", hostname="vm"),
        volumes=volumes,
    )  # fmt: skip
    files = DomainFiles(SOURCE / "console.log", SOURCE / "disk.qcow2", SOURCE / "seed.iso")
    root = ET.fromstring(build_domain_xml(spec, DomainSettings(DomainType.QEMU), files))
    # What libvirt adds to a running domain's XML: the overlay's backing chain.
    disk = root.find("./devices/disk")
    assert disk is not None
    backing = ET.SubElement(disk, "backingStore", type="file")
    ET.SubElement(backing, "source", file="/var/cache/images/base.qcow2")
    return ET.tostring(root, encoding="unicode")


def test_every_file_of_the_instance_moves_to_the_target_directory() -> None:
    moved = destination_xml(source_xml(), SOURCE, TARGET)
    root = ET.fromstring(moved)
    files = [s.get("file") for s in root.findall("./devices/disk/source")]
    assert files == [str(TARGET / "disk.qcow2"), str(TARGET / "seed.iso")]
    logs = {s.get("path") for s in root.findall("./devices/*/source[@path]")}
    assert logs == {str(TARGET / "console.log")}
    assert str(SOURCE) not in moved


def test_the_backing_chain_is_left_to_the_targets_own_overlay() -> None:
    moved = destination_xml(source_xml(), SOURCE, TARGET)
    assert "backingStore" not in moved
    assert "/var/cache/images/base.qcow2" not in moved


def test_a_path_that_only_shares_a_prefix_is_not_moved() -> None:
    sibling = source_xml().replace(str(SOURCE / "seed.iso"), f"{SOURCE}-other/seed.iso")
    moved = destination_xml(sibling, SOURCE, TARGET)
    assert f"{SOURCE}-other/seed.iso" in moved


def test_job_statistics_become_progress() -> None:
    progress = job_progress(
        {"type": 2, "data_total": 1000, "data_remaining": 250, "memory_iteration": 2}
    )
    assert (progress.data_total, progress.data_remaining, progress.memory_iteration) == (
        1000, 250, 2,
    )  # fmt: skip
    assert job_progress({"type": 0}).data_total is None


def test_a_host_publishes_its_libvirtd_for_peers_only_when_one_can_reach_it() -> None:
    instances = Path("/var/lib/kubenova/instances")
    assert published_endpoint("qemu:///system", "10.0.0.7", instances) == {
        "libvirtURI": "qemu+tcp://10.0.0.7/system",
        "address": "10.0.0.7",
        "instancesDir": "/var/lib/kubenova/instances",
    }
    assert published_endpoint("qemu:///system", None, instances) is None
    assert published_endpoint("test:///default", "10.0.0.7", instances) is None
    private = "qemu+unix:///system?socket=/tmp/kn-a/libvirt-sock"
    assert published_endpoint(private, "127.0.0.1", instances) == {
        "libvirtURI": private,
        "address": "127.0.0.1",
        "instancesDir": "/var/lib/kubenova/instances",
    }
    # What the agent publishes is what the Host's schema accepts.
    Host.model_validate(
        {"spec": {}, "status": {"migration": published_endpoint("qemu:///system", "h", instances)}}
    )


def test_iscsi_disks_log_in_from_the_target_with_its_own_initiator_name() -> None:
    xml = source_xml((DiskAttachment(VOLUME, "vdb"),))
    moved = ET.fromstring(destination_xml(xml, SOURCE, TARGET, {SOURCE_IQN: TARGET_IQN}))
    (disk,) = [d for d in moved.findall("./devices/disk") if d.get("type") == "network"]
    source = disk.find("source")
    assert source is not None
    assert source.get("name") == f"{VOLUME.iqn}/1"  # the same LUN, the same CHAP secret
    assert [i.get("name") for i in source.findall("initiator/iqn")] == [TARGET_IQN]
    auth = disk.find("auth/secret")
    assert auth is not None
    assert auth.get("usage") == "kubenova-volume-v1"
    # Without a mapping (no volume, or its target entry not published) nothing is renamed.
    kept = ET.fromstring(destination_xml(xml, SOURCE, TARGET))
    assert [i.get("name") for i in kept.iter("iqn")] == [SOURCE_IQN]
