"""In-memory copies of the objects the operator looks up but does not reconcile.

Flavors, Images and ServerGroups are watched (`watches`) and kept here so that scheduling an
Instance costs no API reads. Whoever waits for one of them to appear registers interest;
the catalog tells the Instance queue when something it waited for arrives.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

from kubenova.kube.meta import Body

Key = tuple[str, str]  # (kind, "namespace/name" or "name")


class Catalog:
    """Latest bodies by kind and key, with wake-ups for waiters."""

    def __init__(self) -> None:
        self._objects: dict[str, dict[str, Body]] = defaultdict(dict)
        self._waiters: dict[Key, set[str]] = defaultdict(set)
        self.on_arrival: Callable[[set[str]], None] = lambda keys: None
        # What `filed()` calls wait for, each with the future to finish once all came.
        self._awaited: list[tuple[set[Key], asyncio.Future[None]]] = []

    def put(self, kind: str, key: str, body: Body | None) -> None:
        if body is None:
            self._objects[kind].pop(key, None)
            return
        self._objects[kind][key] = body
        for missing, done in self._awaited:
            missing.discard((kind, key))
            if not missing and not done.done():
                done.set_result(None)
        waiters = self._waiters.pop((kind, key), None)
        if waiters:
            self.on_arrival(waiters)

    def get(self, kind: str, key: str) -> Body | None:
        return self._objects[kind].get(key)

    async def filed(self, wanted: Iterable[Key]) -> None:
        """Return once every (kind, key) of `wanted` has been filed (at once if all are)."""
        missing = {(kind, key) for kind, key in wanted if self.get(kind, key) is None}
        if not missing:
            return
        entry = (missing, asyncio.get_running_loop().create_future())
        self._awaited.append(entry)
        try:
            await entry[1]
        finally:
            self._awaited.remove(entry)

    def wait_for(self, kind: str, key: str, waiter: str) -> None:
        """Wake `waiter` (an Instance key) when `kind`/`key` appears or changes."""
        self._waiters[(kind, key)].add(waiter)

    def items(self, kind: str) -> list[Body]:
        return list(self._objects[kind].values())
