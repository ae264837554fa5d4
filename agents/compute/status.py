"""The agent's part of an Instance's status, derived purely from what the hypervisor says.

The agent owns `phase` (once the operator has placed the Instance), the `Ready` condition,
`domain`, `console`, `restartedAt` and `observedGeneration`; everything here is a pure
function of the Instance body and a driver `InstanceInfo`, so it is unit-tested without a
cluster or a hypervisor, and `differs` decides whether a write is needed at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubenova import conditions as cond
from kubenova.agents.compute.driver import DomainState, InstanceInfo
from kubenova.kube.meta import generation_of

READY = "Ready"
Status = dict[str, Any]

# The API allows 4096 characters of console tail; a screenful is what a user wants to see.
TAIL_LINES = 25
TAIL_CHARS = 2048
_READ_BYTES = 16384
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class InstanceObservation:
    """The one-word phase and the Ready condition's verdict for an Instance."""

    phase: str
    ready: bool
    reason: str
    message: str


def observe(info: InstanceInfo, wanted: str, note: str = "") -> InstanceObservation:
    """Phase and readiness of a domain in `info.state` when spec.powerState is `wanted`."""
    name = info.domain_name
    state = info.state
    if state == DomainState.RUNNING:
        if wanted == "Stopped":
            return InstanceObservation(
                "Running", False, "Stopping", f"domain {name} is shutting down"
            )
        suffix = f" ({note})" if note else ""
        return InstanceObservation("Running", True, "Running", f"domain {name} is running{suffix}")
    if state == DomainState.SHUTOFF:
        if wanted == "Stopped":
            return InstanceObservation(
                "Stopped",
                False,
                "Stopped",
                f"domain {name} is stopped as spec.powerState asks; set it to Running to start",
            )
        return InstanceObservation(
            "Error", False, "DomainNotRunning", f"domain {name} is off and did not start"
        )
    if state == DomainState.SHUTTING_DOWN:
        return InstanceObservation("Running", False, "Stopping", f"domain {name} is shutting down")
    if state == DomainState.PAUSED:
        return InstanceObservation(
            "Running", False, "Paused", f"domain {name} is paused (suspended by the hypervisor)"
        )
    if state == DomainState.CRASHED:
        return InstanceObservation("Error", False, "DomainCrashed", f"domain {name} crashed")
    return InstanceObservation(
        "Error", False, "DomainStateUnknown", f"libvirt reports no usable state for {name}"
    )


def building(message: str) -> InstanceObservation:
    """Slow work (an image download) is under way before the domain exists."""
    return InstanceObservation("Building", False, "Building", message)


def held(info: InstanceInfo, why: str, wanted: str) -> InstanceObservation:
    """A cold move's source holds the guest shut off (`why`: where it goes). A start asked
    for meanwhile is deferred, not refused nor a reason to roll the move back: the guest
    starts where the move ends (or here again after a roll-back), as spec then says."""
    deferred = "; spec.powerState Running waits for the move's end" if wanted == "Running" else ""
    return InstanceObservation(
        "Stopped", False, "Moving", f"domain {info.domain_name} is held shut off {why}{deferred}"
    )


def failed(reason: str, message: str) -> InstanceObservation:
    """The Instance cannot run as specified, or the hypervisor refused it."""
    return InstanceObservation("Error", False, reason, message)


def desired_status(
    body: dict[str, Any],
    observation: InstanceObservation,
    *,
    info: InstanceInfo | None = None,
    domain_type: str | None = None,
    console_tail: str | None = None,
    restarted_at: str | None = None,
) -> Status:
    """The complete set of status fields the agent owns (an apply omitting one removes it)."""
    generation = generation_of(body)
    previous = (body.get("status") or {}).get("conditions")
    status: Status = {
        "phase": observation.phase,
        "observedGeneration": generation,
        "conditions": [
            cond.condition(
                READY,
                observation.ready,
                observation.reason,
                observation.message,
                generation=generation,
                previous=previous,
            )
        ],
    }
    if info is not None:
        domain: dict[str, Any] = {
            "uuid": info.domain_uuid,
            "name": info.domain_name,
            "vcpus": info.vcpus,
            "memoryMiB": info.memory_mib,
        }
        if domain_type:
            domain["type"] = domain_type
        status["domain"] = domain
        if info.console_log is not None:
            console = {"logPath": str(info.console_log)}
            if console_tail:
                console["tail"] = console_tail
            status["console"] = console
    if restarted_at:
        status["restartedAt"] = restarted_at
    return status


def differs(current: Status, desired: Status, *, compare_tail: bool) -> bool:
    """True when applying `desired` would change what a reader sees in `current`.

    The console tail changes with every line the guest prints; it is compared only when
    asked (periodic resync), otherwise a running guest would cost a write per reconcile.
    """
    for key in ("phase", "observedGeneration", "domain", "restartedAt"):
        if current.get(key) != desired.get(key):
            return True
    old_console = current.get("console") or {}
    new_console = desired.get("console") or {}
    if old_console.get("logPath") != new_console.get("logPath"):
        return True
    if compare_tail and old_console.get("tail") != new_console.get("tail"):
        return True
    for entry in desired["conditions"]:
        if not cond.same(cond.find(current.get("conditions"), entry["type"]), entry):
            return True
    return False


def console_tail(path: Path | None) -> str | None:
    """The last lines of a serial console log, cleaned of control characters."""
    if path is None:
        return None
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - _READ_BYTES))
            data = handle.read()
    except FileNotFoundError:
        return None
    text = _CONTROL.sub("", data.decode("utf-8", errors="replace").replace("\r\n", "\n"))
    tail = "\n".join(text.rstrip("\n").split("\n")[-TAIL_LINES:])
    return tail[-TAIL_CHARS:] or None
