"""The hand-over of an Instance to a host's agent: the finalizers it carries first, and what
every later status apply of ours must keep of it."""

from __future__ import annotations

from kubenova.api.v1alpha1 import Instance
from kubenova.kube import KubeClient, NotFound, ResourceKind, kubenova_kind
from kubenova.kube.meta import Body, resource_version, uid_of
from kubenova.kube.objects import ensure_metadata
from kubenova.wellknown import HANDOVER_FINALIZERS

INSTANCES = kubenova_kind(Instance)
SCHEDULED = "Scheduled"
READY = "Ready"  # the compute agent's condition, which the operator overrides at times
RESIZED = "Resized"  # a resize's: claimed, refused, or moving to a host with room
EVACUATED = "Evacuated"  # False while waiting (go-ahead, room), True once rebuilt elsewhere
DELETED = "Deleted"  # False while a deletion waits for the host to be fenced
# The conditions of the operator's own status applies: what each later apply of ours keeps.
OPERATOR_CONDITIONS = (SCHEDULED, RESIZED, EVACUATED, DELETED)


async def ensure_finalizers(client: KubeClient, kind: ResourceKind, body: Body) -> Body | None:
    """Make the object carry both finalizers; no write when it does (the usual case).

    The mutating webhook adds them at creation; an object created before it, or while it
    was off, gets them here. They go before the status write that names a host (the commit
    point): an agent must never run something whose deletion nobody waits for. Returns
    the newest body, or None when the object was deleted meanwhile (its DELETED event then
    releases what was claimed).
    """
    try:
        updated = await ensure_metadata(client, kind, body, finalizers=HANDOVER_FINALIZERS)
    except NotFound:
        return None
    return updated or body


class Echoes:
    """The resourceVersions our hand-overs got, per uid, until their watch events come back.

    The hand-over does with the apply's answer what a reconcile of its echo would do, so the
    echo is kept as the newest body but not reconciled (one reconcile per placement saved).
    """

    def __init__(self) -> None:
        self._expected: dict[str, int] = {}

    def expect(self, written: Body) -> None:
        if (version := resource_version(written)) is not None:
            self._expected[uid_of(written)] = version

    def came_back(self, body: Body) -> bool:
        """Is this MODIFIED event the echo of our hand-over? Any event at or past it ends
        the wait (an echo that beat the apply's answer was reconciled as usual)."""
        uid = uid_of(body)
        expected, seen = self._expected.get(uid), resource_version(body)
        if expected is None or seen is None or seen < expected:
            return False
        del self._expected[uid]
        return seen == expected

    def forget(self, uid: str) -> None:
        self._expected.pop(uid, None)


def status_host(body: Body) -> str | None:
    """The host our own status write handed the Instance to (status is ours, not the user's)."""
    host = (body.get("status") or {}).get("host")
    return str(host) if host else None


def still_handed_over(body: Body, host: str, status: Body) -> Body:
    """`status` plus what our earlier writes hold (host, addresses, resources, and our
    conditions: Scheduled, and Resized, Evacuated or Deleted if shown).

    Our status writes are server-side applies by one field manager: a field the apply
    leaves out is removed. Dropping status.host would take the Instance out of its agent's
    watch and make it look never handed over; dropping Resized (a floating IP's write,
    say) would erase why a resize waits. The agent's conditions are not ours to carry.
    """
    current = body.get("status") or {}
    kept: Body = {"host": host}
    for field in ("addresses", "resources", "observedGeneration"):
        if current.get(field) is not None:
            kept[field] = current[field]
    written = list(status.get("conditions", []))
    replaced = {entry["type"] for entry in written}
    ours = [
        entry
        for entry in current.get("conditions") or []
        if entry.get("type") in OPERATOR_CONDITIONS and entry.get("type") not in replaced
    ]
    return kept | status | {"conditions": ours + written}
