"""What the operator publishes per attachment, and the names it gives."""

from __future__ import annotations

from typing import Any

from kubenova.operator.inventory.volumes import AttachmentRecord
from kubenova.operator.volumes.attachments import attachment_entry
from kubenova.operator.volumes.naming import chap_secret_name, initiator_iqn

RECORD = AttachmentRecord("vol-uid", "vm-uid", "tenant", "vm", "compute-1")
HOST = {"status": {"underlayIP": "10.0.0.7", "storageMAC": "02:00:00:00:00:07"}}


def an_instance(*volumes: str, plugged: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "vm", "namespace": "tenant"},
        "spec": {"volumes": [{"volume": v} for v in volumes]},
        "status": {"volumes": [{"volume": v, "device": d} for v, d in (plugged or {}).items()]},
    }


def test_wanted_and_not_plugged_is_attaching_with_the_hosts_identities() -> None:
    assert attachment_entry("data", RECORD, an_instance("data"), HOST) == {
        "instance": "vm",
        "host": "compute-1",
        "state": "Attaching",
        "initiator": "iqn.2010-10.io.kubenova:host.compute-1",
        "address": "10.0.0.7",
        "mac": "02:00:00:00:00:07",
    }


def test_plugged_is_attached_with_its_device() -> None:
    entry = attachment_entry("data", RECORD, an_instance("data", plugged={"data": "vdc"}), None)
    assert (entry["state"], entry["device"]) == ("Attached", "vdc")
    assert "address" not in entry


def test_dropped_from_the_spec_but_still_plugged_is_detaching() -> None:
    entry = attachment_entry("data", RECORD, an_instance(plugged={"data": "vdb"}), None)
    assert entry["state"] == "Detaching"


def test_names() -> None:
    assert initiator_iqn("compute-1") == "iqn.2010-10.io.kubenova:host.compute-1"
    assert chap_secret_name("data", "u") == "data-chap"
    assert chap_secret_name("x" * 250, "u-1") == "volume-u-1-chap"
