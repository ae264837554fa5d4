"""Objects of one kind (in one namespace, or all), chosen by a label or field selector, into a
keyed work queue.

List, then watch from the list's resourceVersion (the client relists after a 410 Gone),
and resync now and then. Nothing outside the selector is ever listed: an agent selects
what is placed on its host. After the first full list has been queued, `on_synced` runs
with the listed objects and `synced` is set; only then does the periodic resync start.
A relist after a 410 has no DELETED events for what vanished meanwhile, and a watch that
stalled until its idle timeout may have missed what happened in between: `relist`
(typically part of a resync) queues what is new or changed and treats what vanished as
deleted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from kubenova.errors import ApiError, KubenovaError
from kubenova.workqueue import Handler, WorkQueue

from .client import KubeClient
from .meta import Body, key_of, resource_version
from .paths import LIST_PAGE, ResourceKind

log = logging.getLogger(__name__)

FIRST_LIST_MAX_DELAY = 30.0

OnSynced = Callable[[list[Body]], Awaitable[Any]]
Resync = Callable[[], Awaitable[Any]]
# What is kept of each body (e.g. `kube.objects.slim`: a cache of 10,000 holds them all).
Transform = Callable[[Body], Body]
# Told of each DELETED event with the object's last state (say, to remember its uid).
OnDeleted = Callable[[str, Body], None]
# Is this MODIFIED event the echo of the handler's own write? Then it is kept, not reconciled.
Echo = Callable[[Body], bool]


def _keep(body: Body) -> Body:
    return body


class ListWatch:
    """One kind, one selector, one keyed work queue; `await run()` until cancelled."""

    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        handler: Handler[str],
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        workers: int = 4,
        name: str = "queue",
        component: str = "kubenova",
        transform: Transform = _keep,
        on_deleted: OnDeleted | None = None,
        echo: Echo | None = None,
    ) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.name = name
        self.transform = transform
        self.on_deleted = on_deleted
        self.echo = echo
        self.queue: WorkQueue[str] = WorkQueue(
            handler, workers=workers, name=name, component=component
        )
        self.synced = asyncio.Event()
        # The pages of a first list read before this watch ran (the operator's prefetch
        # threads): taken by the first list instead of reading it again, once.
        self.prefetched: Future[list[Body]] | None = None

    @classmethod
    def placed_on(
        cls,
        client: KubeClient,
        kind: ResourceKind,
        handler: Handler[str],
        host: str,
        *,
        workers: int,
        what: str,
    ) -> ListWatch:
        """The objects of `kind` the operator placed on `host`; the queue is `what@host`.

        Selected by `status.host` (a selectableField of the CRD): status is written by the
        operator alone, so what an agent is handed is what the operator decided.
        """
        return cls(
            client,
            kind,
            handler,
            field_selector=f"status.host={host}",
            workers=workers,
            name=f"{what}@{host}",
        )

    @property
    def selector(self) -> str:
        """The selectors, for log lines."""
        return ",".join(s for s in (self.label_selector, self.field_selector) if s)

    async def run(
        self,
        on_synced: OnSynced | None = None,
        *,
        resync: Resync | None = None,
        resync_interval: float = 60.0,
        work_after: Awaitable[Any] | None = None,
    ) -> None:
        """Queue the first list, run `on_synced`, then follow the watch until cancelled.

        With `resync`, it runs every `resync_interval` seconds once synced; a pass that
        fails with a KubenovaError or OSError is logged and the next one tried on time.
        With `work_after`, the queue's workers start once it is done: the list (and the
        watch) run meanwhile, so what they queued is there to work on at once.
        """
        if work_after is None:
            self.queue.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                if work_after is not None:
                    tasks.create_task(self._work_after(work_after), name=f"gate-{self.name}")
                tasks.create_task(self._follow(on_synced), name=f"watch-{self.name}")
                if resync is not None:
                    tasks.create_task(
                        self._resync_forever(resync, resync_interval), name=f"resync-{self.name}"
                    )
        finally:
            await self.queue.stop()

    async def _work_after(self, gate: Awaitable[Any]) -> None:
        await gate
        self.queue.start()

    def known(self) -> list[str]:
        """A snapshot of the queue's keys (reconciles may add or drop some meanwhile)."""
        return self.queue.keys()

    def bodies(self) -> list[Body]:
        """The newest body of every object still there."""
        return [body for key in self.known() if (body := self.queue.body(key)) is not None]

    def mark_all(self) -> None:
        """Reconcile every object still there again, with its newest body."""
        for key in self.known():
            if self.queue.body(key) is not None:
                self.queue.mark(key)

    async def relist(self) -> None:
        """List again and catch up with it: what the watch missed (a stall, a relist after
        a 410) is queued if new or changed, and treated as deleted if vanished.

        Page by page: only what changed is kept, so a relist of 10,000 objects never holds
        a second copy of them all."""
        known = set(self.known())
        listed = set()
        list_version: int | None = None
        async for page in self._pages():
            list_version = resource_version(page)
            for item in page["items"]:
                key = key_of(item)
                listed.add(key)
                body = self.queue.body(key)
                if body is None and key in known:
                    continue  # deleted since: the list may predate that DELETED event
                seen = None if body is None else resource_version(body)
                version = resource_version(item)
                if body is None or (seen is not None and version is not None and seen < version):
                    self.queue.put(key, item)
        for key in known - listed:
            body = self.queue.body(key)
            if body is None:
                continue
            # Newer than the list: created after it, not vanished.
            seen = resource_version(body)
            if list_version is not None and seen is not None and seen < list_version:
                self.queue.put(key, None)

    async def _follow(self, on_synced: OnSynced | None) -> None:
        # Without `on_synced`, queued page by page as the list arrives: the workers start
        # on the first page while the next ones are read (2,000 Instances are four pages).
        # With it, queued whole just before it runs, which may take the bodies first.
        listing = await self._first_list(queue_pages=on_synced is None)
        items: list[Body] = listing.get("items", [])
        if on_synced is not None:
            for item in items:
                self.queue.put(key_of(item), item)
            await on_synced(items)
        self.synced.set()
        async for event in self.client.watch(
            self.kind,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            resource_version=listing["metadata"]["resourceVersion"],
        ):
            key = key_of(event.object)
            if event.type == "DELETED":
                if self.on_deleted is not None:
                    self.on_deleted(key, event.object)
                self.queue.put(key, None)
            elif event.type == "MODIFIED" and self.echo is not None and self.echo(event.object):
                self.queue.remember(key, self.transform(event.object))
            else:
                self.queue.put(key, self.transform(event.object))

    async def _resync_forever(self, resync: Resync, interval: float) -> None:
        await self.synced.wait()
        while True:
            await asyncio.sleep(interval)
            try:
                await resync()
            except (KubenovaError, OSError) as exc:
                log.warning("%s: resync failed: %s", self.name, exc)

    async def _list(
        self, queued: set[str] | None = None, pages: AsyncIterator[Body] | None = None
    ) -> Body:
        """The selected objects (or `pages` of them read already), as one listing; with
        `queued`, each page is also put in the queue as it arrives and its keys added to
        `queued`."""
        items: list[Body] = []
        metadata: Body = {}
        async for page in pages or self._pages():
            items += page["items"]
            metadata = page["metadata"]
            if queued is not None:
                for item in page["items"]:
                    key = key_of(item)
                    queued.add(key)
                    self.queue.put(key, item)
        return {"metadata": metadata, "items": items}

    def _pages(self) -> AsyncIterator[Body]:
        return list_pages(
            self.client,
            self.kind,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            transform=self.transform,
        )

    async def _first_list(self, *, queue_pages: bool) -> Body:
        delay = 1.0
        queued: set[str] | None = set() if queue_pages else None
        while True:
            try:
                listing = await self._list(queued, await self._take_prefetched())
            except (ApiError, OSError) as exc:
                log.warning(
                    "listing %s (%s) failed (%s); retrying", self.kind.plural, self.selector, exc
                )
                await asyncio.sleep(delay)
                delay = min(FIRST_LIST_MAX_DELAY, delay * 2)
                continue
            if queued:
                # Queued by an attempt that failed midway, and gone by this complete list
                # (whose resourceVersion the watch starts from: no DELETED event will come).
                for key in queued.difference(key_of(item) for item in listing["items"]):
                    self.queue.put(key, None)
            return listing

    async def _take_prefetched(self) -> AsyncIterator[Body] | None:
        """The prefetched pages, stamped and transformed as `list_pages` does; None when
        there are none (or reading them failed: then this watch lists for itself)."""
        prefetched, self.prefetched = self.prefetched, None
        if prefetched is None:
            return None
        try:
            pages = await asyncio.wrap_future(prefetched)
        except Exception as exc:
            log.info("%s: the prefetched list failed (%s); listing again", self.name, exc)
            return None

        async def stamped() -> AsyncIterator[Body]:
            for page in pages:
                yield _stamped(page, self.kind, self.transform)

        return stamped()


async def list_pages(
    client: KubeClient,
    kind: ResourceKind,
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    transform: Transform = _keep,
    limit: int | None = None,
) -> AsyncIterator[Body]:
    """The selected objects, `limit` (LIST_PAGE by default) at a time (every page from the
    snapshot of the first, at its resourceVersion), each stamped with its apiVersion and
    kind like a watch event (a list's items carry neither) and transformed as its page
    arrives: 10,000 Instances read whole would be held at once, managedFields included.

    Paged also because the apiserver serves a list with a limit from etcd while the kind's
    watch cache is still initialising (just after it started, or a CRD's first request),
    where a list without one is refused (429, retry after 1 s: KEP-4568)."""
    continue_: str | None = None
    while True:
        page = await client.list(
            kind,
            namespace,
            label_selector=label_selector,
            field_selector=field_selector,
            limit=limit or LIST_PAGE,
            continue_=continue_,
        )
        stamped = _stamped(page, kind, transform)
        yield stamped
        if not stamped["metadata"].get("continue"):
            return
        continue_ = stamped["metadata"]["continue"]


async def count_objects(
    client: KubeClient,
    kind: ResourceKind,
    namespace: str | None = None,
    *,
    label_selector: str | None = None,
) -> int:
    """How many objects of `kind` there are, without holding their bodies.

    One object is read and the apiserver's `remainingItemCount` adds the rest; where it
    gives none (a list with a selector), the objects are counted page by page, each page
    dropped once counted. A project's 10,000 Instances listed whole were ~100 MB.
    """
    continue_: str | None = None
    counted = 0
    limit = 1
    while True:
        page = await client.list(
            kind, namespace, label_selector=label_selector, limit=limit, continue_=continue_
        )
        counted += len(page.get("items") or [])
        meta = page.get("metadata") or {}
        if not meta.get("continue"):
            return counted
        if (remaining := meta.get("remainingItemCount")) is not None:
            return counted + int(remaining)
        continue_, limit = meta["continue"], LIST_PAGE


def _stamped(page: Body, kind: ResourceKind, transform: Transform) -> Body:
    """A list page whose items carry their apiVersion and kind, each transformed."""
    items = page.get("items") or []
    for i, item in enumerate(items):
        item.setdefault("apiVersion", kind.api_version)
        item.setdefault("kind", kind.kind)
        items[i] = transform(item)
    return {"metadata": page.get("metadata") or {}, "items": items}
