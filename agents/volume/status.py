"""What the volume host's agent says about a Volume: phase, Ready, where it is exported, to whom.

Pure functions of the Volume body and the export the driver reports, so the status is
recomputed from the daemon's truth on every pass and written only when it changed. The
agent owns `phase` (after placement), the `Ready` condition, `target.portal` /
`target.interface`, `admittedHosts` and `observedGeneration`; the operator owns the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubenova import conditions as cond
from kubenova.agents.volume.driver import Export
from kubenova.kube.meta import Body, deleting, generation_of

Status = dict[str, Any]
READY = "Ready"


@dataclass(frozen=True)
class Failure:
    """Why the export is not (fully) there: a condition reason and what to do about it."""

    reason: str
    message: str


def attachments(body: Body) -> list[Body]:
    return list((body.get("status") or {}).get("attachments") or [])


def phase_of(body: Body, export: Export | None, failure: Failure | None) -> str:
    """One word for `kubectl get`: Deleting, Error, Creating, Detaching, Attaching, InUse or
    Available."""
    if deleting(body):
        return "Deleting"
    if failure is not None:
        return "Error"
    if export is None:
        return "Creating"
    states = {entry.get("state") for entry in attachments(body)}
    if "Detaching" in states:
        return "Detaching"
    pending = [e for e in attachments(body) if e.get("host") not in export.admitted_hosts]
    if "Attaching" in states or pending:
        return "Attaching"
    if "Attached" in states:
        return "InUse"
    return "Available"


def ready_condition(
    body: Body, export: Export | None, failure: Failure | None, protocol: str
) -> cond.Condition:
    """Ready: the export is up on this host, with an access list for every attached host."""
    generation = generation_of(body)
    previous = (body.get("status") or {}).get("conditions")
    if failure is not None:
        return cond.condition(
            READY, False, failure.reason, failure.message, generation=generation, previous=previous
        )
    if deleting(body):
        held = [e.get("instance", "?") for e in attachments(body)]
        message = (
            f"deletion waits until the volume is detached from {', '.join(held)}: remove it "
            "from their spec.volumes (or delete them)"
            if held
            else "deleting the export and its file"
        )
        reason = "DeletionBlocked" if held else "Deleting"
        return cond.condition(
            READY, False, reason, message, generation=generation, previous=previous
        )
    if export is None:
        return cond.condition(
            READY, False, "Creating", "creating the backing file and export",
            generation=generation, previous=previous,
        )  # fmt: skip
    missing = [
        e.get("host") for e in attachments(body) if e.get("host") not in export.admitted_hosts
    ]
    if missing:
        message = (
            f"exported over {protocol} at {export.location}, but the access list cannot admit "
            f"host(s) {', '.join(str(m) for m in missing)}: they report no "
            f"{'initiator name/address' if protocol == 'iscsi' else 'storageMAC'}"
        )
        return cond.condition(
            READY, False, "HostNotAdmitted", message, generation=generation, previous=previous
        )
    return cond.condition(
        READY, True, "Exported", f"exported over {protocol} at {export.location}",
        generation=generation, previous=previous,
    )  # fmt: skip


def desired_status(
    body: Body, export: Export | None, failure: Failure | None, protocol: str
) -> Status:
    """The status fields the agent owns, as they should be now."""
    status: Status = {
        "phase": phase_of(body, export, failure),
        "observedGeneration": generation_of(body),
        "conditions": [ready_condition(body, export, failure, protocol)],
        "admittedHosts": list(export.admitted_hosts) if export else [],
    }
    if export is not None:
        key = "portal" if protocol == "iscsi" else "interface"
        status["target"] = {key: export.location}
    return status


def differs(current: Status, desired: Status) -> bool:
    """Would applying `desired` change what a user sees in `current`?"""
    for key in ("phase", "observedGeneration", "admittedHosts"):
        if (current.get(key) or None) != (desired.get(key) or None):
            return True
    target = current.get("target") or {}
    for key, value in (desired.get("target") or {}).items():
        if target.get(key) != value:
            return True
    wanted = desired["conditions"][0]
    return not cond.same(cond.find(current.get("conditions"), READY), wanted)
