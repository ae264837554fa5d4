"""Objects labelled `kubenova.io/host=<this host>` into a work queue: list, then watch.

The agent never lists what is not its own. After the first full list has been queued,
`synced` is set (and `on_synced` runs); `drop_vanished` treats objects that disappeared
while a watch relisted as deleted, as the compute service does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubenova.kube import ApiError, KubeClient, ResourceKind
from kubenova.kube.client import Body
from kubenova.kube.objects import key_of
from kubenova.wellknown import HOST_LABEL
from kubenova.workqueue import Handler, WorkQueue

log = logging.getLogger(__name__)


class LabelledWatch:
    """One kind, this host's label selector, one keyed work queue."""

    def __init__(
        self,
        client: KubeClient,
        kind: ResourceKind,
        host: str,
        handler: Handler[str],
        *,
        workers: int = 4,
        name: str = "queue",
    ) -> None:
        self.client = client
        self.kind = kind
        self.selector = f"{HOST_LABEL}={host}"
        self.queue: WorkQueue[str] = WorkQueue(handler, workers=workers, name=name)
        self.synced = asyncio.Event()

    async def run(self, on_synced: Callable[[], Awaitable[Any]] | None = None) -> None:
        """Queue the first list, run `on_synced`, then follow the watch until cancelled."""
        self.queue.start()
        try:
            listing = await self._first_list()
            for item in listing.get("items", []):
                item.setdefault("apiVersion", self.kind.api_version)
                item.setdefault("kind", self.kind.kind)
                self.queue.put(key_of(item), item)
            if on_synced is not None:
                await on_synced()
            self.synced.set()
            async for event in self.client.watch(
                self.kind,
                label_selector=self.selector,
                resource_version=listing["metadata"]["resourceVersion"],
            ):
                key = key_of(event.object)
                self.queue.put(key, None if event.type == "DELETED" else event.object)
        finally:
            await self.queue.stop()

    def known(self) -> list[str]:
        """A snapshot of the queue's keys (reconciles may add or drop some meanwhile)."""
        return self.queue.keys()

    def bodies(self) -> list[Body]:
        """The newest body of every object still there."""
        return [body for key in self.known() if (body := self.queue.body(key)) is not None]

    def mark_all(self) -> None:
        for key in self.known():
            if self.queue.body(key) is not None:
                self.queue.mark(key)

    async def drop_vanished(self) -> None:
        """Objects gone while the watch relisted (no DELETED event): treat them as deleted."""
        listing = await self.client.list(self.kind, label_selector=self.selector)
        listed = {key_of(item) for item in listing.get("items", [])}
        list_version = _version(listing)
        for key in self.known():
            body = self.queue.body(key)
            if body is None or key in listed:
                continue
            seen = _version(body)
            if list_version is not None and seen is not None and seen < list_version:
                self.queue.put(key, None)

    async def _first_list(self) -> Body:
        delay = 1.0
        while True:
            try:
                return await self.client.list(self.kind, label_selector=self.selector)
            except (ApiError, OSError, TimeoutError) as exc:
                log.warning(
                    "listing %s (%s) failed (%s); retrying", self.kind.plural, self.selector, exc
                )
                await asyncio.sleep(delay)
                delay = min(30.0, delay * 2)


def _version(body: Body) -> int | None:
    with contextlib.suppress(KeyError, TypeError, ValueError):
        return int(body["metadata"]["resourceVersion"])
    return None
