"""The iSCSI disk a compute host plugs: initiator name, CHAP secret usage, free device names."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from kubenova.agents.compute.attacher import free_target
from kubenova.agents.compute.chap_secrets import secret_usage
from kubenova.agents.compute.domain_xml import build_volume_disk_xml
from kubenova.agents.compute.spec import DiskAttachment, IscsiAuth, IscsiVolume


def test_the_disk_logs_in_with_the_hosts_initiator_name_and_the_volume_secret() -> None:
    volume = IscsiVolume(
        volume_id="data",
        host="10.0.0.5",
        port=3260,
        iqn="iqn.2010-10.io.kubenova:volume-1",
        lun=1,
        auth=IscsiAuth("volume-1", secret_usage("1")),
        initiator="iqn.2010-10.io.kubenova:host.compute-1",
    )
    disk = ET.fromstring(build_volume_disk_xml(DiskAttachment(volume, "vdb")))
    source = disk.find("source")
    assert source is not None
    assert source.get("name") == "iqn.2010-10.io.kubenova:volume-1/1"
    assert source.find("initiator/iqn").get("name") == "iqn.2010-10.io.kubenova:host.compute-1"  # type: ignore[union-attr]
    assert disk.find("auth/secret").get("usage") == "kubenova-volume-1"  # type: ignore[union-attr]


def test_without_an_initiator_name_qemu_picks_its_own() -> None:
    volume = IscsiVolume("data", "10.0.0.5", 3260, "iqn.x:y", 1)
    disk = ET.fromstring(build_volume_disk_xml(DiskAttachment(volume, "vdb")))
    assert disk.find("source/initiator") is None


def test_free_targets_skip_the_root_disk_the_seed_and_what_is_taken() -> None:
    assert free_target(set()) == "vdb"
    assert free_target({"vdb", "vdc"}) == "vdd"
    taken = {f"vd{c}" for c in "bcdefghijklmnopqrstuvwxy"}
    assert free_target(taken) == "vdaa"  # vdz is the cloud-init seed
