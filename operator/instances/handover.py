"""The finalizers an object must carry before the operator's status hands it to an agent."""

from __future__ import annotations

from kubenova.kube import KubeClient, NotFound, ResourceKind
from kubenova.kube.meta import Body
from kubenova.kube.objects import ensure_metadata
from kubenova.wellknown import HANDOVER_FINALIZERS


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
