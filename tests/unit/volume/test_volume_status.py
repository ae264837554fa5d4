"""The volume host agent's status: one phase word and a Ready condition from what it sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.volume import status as vs
from kubenova.agents.volume.driver import Export, IscsiTarget

EXPORT = Export(
    target=IscsiTarget("iqn.x:v"),
    backing=Path("/v.raw"),
    admitted_hosts=("compute-1",),
    location="10.0.0.5:3260",
)


def a_volume(*attachments: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "v", "namespace": "t", "generation": 3}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"attachments": list(attachments)}}


def attached(state: str, host: str = "compute-1") -> dict[str, Any]:
    return {"instance": "vm", "host": host, "state": state}


@pytest.mark.parametrize(
    ("volume", "export", "phase"),
    [
        (a_volume(), None, "Creating"),
        (a_volume(), EXPORT, "Available"),
        (a_volume(attached("Attaching")), EXPORT, "Attaching"),
        (a_volume(attached("Attached")), EXPORT, "InUse"),
        (a_volume(attached("Attached", host="compute-2")), EXPORT, "Attaching"),
        (a_volume(attached("Attached"), attached("Detaching")), EXPORT, "Detaching"),
        (a_volume(attached("Attached"), deleting=True), EXPORT, "Deleting"),
    ],
)
def test_the_phase_summarises_export_and_attachments(
    volume: dict[str, Any], export: Export | None, phase: str
) -> None:
    assert vs.phase_of(volume, export, None) == phase


def test_a_failure_is_phase_error_with_its_reason() -> None:
    failure = vs.Failure("OutOfSpace", "free space on the host")
    status = vs.desired_status(a_volume(), None, failure, "iscsi")
    assert status["phase"] == "Error"
    ready = status["conditions"][0]
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "OutOfSpace",
        "free space on the host",
    )
    assert ready["observedGeneration"] == 3


def test_deleting_while_attached_names_the_instances_to_detach() -> None:
    ready = vs.ready_condition(a_volume(attached("Attached"), deleting=True), None, None, "iscsi")
    assert ready["reason"] == "DeletionBlocked"
    assert "detached from vm" in ready["message"]
    assert "spec.volumes" in ready["message"]


def test_a_host_that_cannot_be_admitted_is_named() -> None:
    volume = a_volume(attached("Attaching", host="compute-9"))
    ready = vs.ready_condition(volume, EXPORT, None, "aoe")
    assert ready["reason"] == "HostNotAdmitted"
    assert "compute-9" in ready["message"]
    assert "storageMAC" in ready["message"]


def test_the_export_location_and_admitted_hosts_are_published() -> None:
    status = vs.desired_status(a_volume(attached("Attached")), EXPORT, None, "iscsi")
    assert status["target"] == {"portal": "10.0.0.5:3260"}
    assert status["admittedHosts"] == ["compute-1"]
    assert status["conditions"][0]["reason"] == "Exported"
    assert not vs.differs(
        status, vs.desired_status(a_volume(attached("Attached")), EXPORT, None, "iscsi")
    )
    assert vs.differs({**status, "phase": "Available"}, status)
