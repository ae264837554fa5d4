"""The few writes every kubenova component makes, each shaped to keep one writer per field.

- status: server-side apply on the status subresource under the component's own field
  manager, so conditions (a map keyed by type) and fields written by others are untouched;
- finalizers: added with a merge patch guarded by resourceVersion (409 on a race), removed
  with a JSON patch that first tests the entry, so no one else's finalizer is ever dropped;
- a namespace a component keeps its own objects in, made when a bare cluster lacks it.

`LastWrites` remembers a component's own status writes, so a body in hand that predates
one (a watch event still on its way) is not mistaken for the newest status.
"""

from __future__ import annotations

import logging
from typing import Any

from kubenova.errors import ApiError, Conflict, NotFound

from .client import APPLY_PATCH, JSON_PATCH, KubeClient
from .meta import Body, finalizers_of, ref, resource_version, uid_of
from .paths import NAMESPACES, ResourceKind

log = logging.getLogger(__name__)

CONFLICT_RETRIES = 5


class LastWrites:
    """Per object uid, the status this component last wrote and the resourceVersion it got.

    A body in hand (a queued watch event, a cached copy) may predate our own newest write;
    comparing resourceVersions tells, so a reconciler neither writes the same status twice
    nor decides from a status it has already replaced.
    """

    def __init__(self) -> None:
        self._written: dict[str, tuple[int | None, Body]] = {}

    def remember(self, uid: str, written: Body, status: Body) -> None:
        """`status` was applied; `written` is the object the API server answered with."""
        self._written[uid] = (resource_version(written), status)

    def newest_status(self, body: Body) -> Body:
        """The body's status, or the status we last wrote if the body predates that write."""
        current: Body = body.get("status") or {}
        entry = self._written.get(uid_of(body))
        if entry is None:
            return current
        version, status = entry
        seen = resource_version(body)
        if version is not None and seen is not None and seen < version:
            return status
        return current

    def predates(self, body: Body) -> bool:
        """Whether the body is older than our last write (its event is still on its way)."""
        entry = self._written.get(uid_of(body))
        seen = resource_version(body)
        if entry is None or entry[0] is None or seen is None:
            return False
        return seen < entry[0]

    def last(self, uid: str) -> Body | None:
        """The status we last wrote for `uid` (None: none since this process started)."""
        entry = self._written.get(uid)
        return None if entry is None else entry[1]

    def forget(self, uid: str) -> None:
        self._written.pop(uid, None)


async def apply_status(
    client: KubeClient,
    kind: ResourceKind,
    body: Body,
    status: dict[str, Any],
    *,
    manager: str,
    if_unchanged: bool = False,
) -> Body:
    """Server-side apply `status` as `manager` (forcing: each field has one owner by design).

    `if_unchanged`: only onto the object as `body` shows it (its resourceVersion is the
    precondition; Conflict otherwise), for a write decided from a body that a concurrent
    write of ours may have replaced meanwhile, since an apply drops what it leaves out.
    """
    namespace, name = ref(body)
    metadata: dict[str, Any] = {"name": name, **({"namespace": namespace} if namespace else {})}
    if if_unchanged and (version := (body.get("metadata") or {}).get("resourceVersion")):
        metadata["resourceVersion"] = version
    patch = {
        "apiVersion": kind.api_version,
        "kind": kind.kind,
        "metadata": metadata,
        "status": status,
    }
    return await client.patch(
        kind,
        name,
        patch,
        namespace,
        subresource="status",
        patch_type=APPLY_PATCH,
        field_manager=manager,
        force=True,
    )


async def ensure_metadata(
    client: KubeClient,
    kind: ResourceKind,
    body: Body,
    *,
    finalizers: tuple[str, ...],
) -> Body | None:
    """Add the missing `finalizers` in one write; None when nothing needed changing.

    The write is guarded by the body's resourceVersion; on a conflict the object is read
    again and the change recomputed, so nobody's finalizer is lost.
    """
    for _ in range(CONFLICT_RETRIES):
        try:
            return await _ensure_metadata_once(client, kind, body, finalizers)
        except Conflict:
            namespace, name = ref(body)
            body = await client.get(kind, name, namespace)
    return await _ensure_metadata_once(client, kind, body, finalizers)


async def _ensure_metadata_once(
    client: KubeClient,
    kind: ResourceKind,
    body: Body,
    finalizers: tuple[str, ...],
) -> Body | None:
    present = finalizers_of(body)
    missing = [f for f in finalizers if f not in present]
    if not missing:
        return None
    guard = body["metadata"]["resourceVersion"]  # the write fails (409) if it changed
    patch = {"metadata": {"resourceVersion": guard, "finalizers": present + missing}}
    namespace, name = ref(body)
    return await client.patch(kind, name, patch, namespace)


async def remove_finalizer(
    client: KubeClient, kind: ResourceKind, body: Body, finalizer: str
) -> Body | None:
    """Remove one finalizer if present; a test op makes sure it is the entry we mean."""
    present = finalizers_of(body)
    if finalizer not in present:
        return None
    index = present.index(finalizer)
    patch = [
        {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
        {"op": "remove", "path": f"/metadata/finalizers/{index}"},
    ]
    namespace, name = ref(body)
    try:
        return await client.patch(kind, name, patch, namespace, patch_type=JSON_PATCH)
    except NotFound:
        return None
    except ApiError as exc:
        if exc.status != 422:  # the test failed: someone reordered the list; read again
            raise
        fresh = await client.get(kind, name, namespace)
        return await remove_finalizer(client, kind, fresh, finalizer)


async def ensure_namespace(client: KubeClient, name: str) -> bool:
    """Make namespace `name` unless it exists; True if this call made it.

    It looks before it creates: admission may refuse to create a namespace that exists
    (the operator's may make only project namespaces) before storage could answer 409.
    """
    try:
        await client.get(NAMESPACES, name)
        return False
    except NotFound:
        pass
    manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    try:
        await client.create(NAMESPACES, manifest)
    except Conflict:
        return False  # another replica or agent made it first
    log.info("created namespace %s", name)
    return True
