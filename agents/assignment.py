"""What the operator decided about an object's host, as an agent may trust it.

An agent finds its work with a field selector on `status.host`: the operator's decision
itself (status is a subresource project roles cannot write, and agents cannot change
`status.host`). When an object leaves its watch (DELETED: deleted, or status.host changed)
the agent reads it again before destroying anything: a watch event is not the truth, and a
disk or a domain goes only when the object is really gone, being deleted, or placed on
another host by the operator.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from kubenova.kube import KubeClient, NotFound, ResourceKind
from kubenova.kube.meta import Body, deleting, key_of, uid_of
from kubenova.kube.watch import list_pages

log = logging.getLogger(__name__)


def decided_host(body: Body) -> str | None:
    """The host the operator placed the object on (its status), None before it did."""
    host = (body.get("status") or {}).get("host")
    return str(host) if host else None


def placed_here(body: Body, host: str) -> bool:
    """The operator's status.host names `host` (what the agent's field selector asks for)."""
    return decided_host(body) == host


class Whereabouts(enum.Enum):
    """Where an object that left an agent's watch really is."""

    GONE = "gone"  # 404, or the name now belongs to another object (another uid)
    DELETING = "deleting"  # deletionTimestamp set: tear down through the deletion path
    MOVED = "moved"  # the operator's status places it on another host (or on none here)
    STILL_HERE = "still here"  # the fresh read places it here: nothing may be destroyed


@dataclass(frozen=True)
class Recheck:
    whereabouts: Whereabouts
    body: Body | None  # the fresh body, None when gone

    @property
    def may_destroy(self) -> bool:
        return self.whereabouts in (Whereabouts.GONE, Whereabouts.MOVED)


def _status_host(body: Body) -> frozenset[str] | None:
    host = decided_host(body)
    return None if host is None else frozenset({host})


async def recheck(
    client: KubeClient,
    kind: ResourceKind,
    key: str,
    uid: str,
    host: str,
    *,
    decided: Callable[[Body], Collection[str] | None] = _status_host,
) -> Recheck:
    """Read `key` (namespace/name) again and say whether object `uid` still belongs to `host`.

    `decided` reads the hosts the operator's status assigns the object to (None: it has
    not decided anything yet); by default status.host. API errors other than 404
    propagate: the caller retries rather than destroying on a guess.
    """
    namespace, _, name = key.rpartition("/")
    try:
        body = await client.get(kind, name, namespace or None)
    except NotFound:
        return Recheck(Whereabouts.GONE, None)
    if body["metadata"].get("uid") != uid:
        return Recheck(Whereabouts.GONE, None)
    if deleting(body):
        return Recheck(Whereabouts.DELETING, body)
    hosts = decided(body)
    if hosts is not None and host not in hosts:
        return Recheck(Whereabouts.MOVED, body)
    return Recheck(Whereabouts.STILL_HERE, body)


async def keys_by_uid(client: KubeClient, kind: ResourceKind) -> dict[str, str]:
    """uid -> namespace/name of every object of `kind` there is now, read fresh.

    What a host keeps on disk (a backing file, a bridge) names its object by uid or by
    what the operator wrote into its status, not by key, and an object that left the
    watch is not in the watch's cache: an orphan sweep reads everything once, then
    `recheck`s each candidate by key. Taken after the candidates were collected, the list
    also holds any object created meanwhile, so nothing new is mistaken for an orphan.
    """
    return {
        uid_of(item): key_of(item)
        async for page in list_pages(client, kind)  # a page at a time: only keys are kept
        for item in page["items"]
        if item.get("metadata", {}).get("uid")
    }
