"""The metadata that hands an object to its host's agent: both finalizers and the host label."""

from __future__ import annotations

from kubenova.kube import KubeClient, NotFound, ResourceKind
from kubenova.kube.meta import Body
from kubenova.kube.objects import ensure_metadata
from kubenova.wellknown import AGENT_FINALIZER, HOST_LABEL, OPERATOR_FINALIZER


async def mark_handed_over(
    client: KubeClient, kind: ResourceKind, body: Body, host: str
) -> Body | None:
    """Make the object carry both finalizers and `kubenova.io/host=<host>` (one write at most).

    Returns the newest body, or None when the object was deleted meanwhile (its DELETED
    event then releases what was claimed).
    """
    try:
        updated = await ensure_metadata(
            client,
            kind,
            body,
            finalizers=(OPERATOR_FINALIZER, AGENT_FINALIZER),
            labels={HOST_LABEL: host},
        )
    except NotFound:
        return None
    return updated or body
