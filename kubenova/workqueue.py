"""A keyed work queue for level-triggered reconcilers (client-go's workqueue, in asyncio).

Watch events only *mark* a key dirty and remember the newest body; workers reconcile a key
with the newest body there is. Newest by resourceVersion, as client-go's informers keep
it: a body older than the one held (an event of an earlier write handed on late, a list
served from a stale cache) never replaces it. One key is never reconciled by two workers
at once, a key marked while it is being worked on is reconciled once more afterwards, and
a handler asks for a retry by returning a delay in seconds. Bursts of events for one
object collapse into one reconcile. A handler that raises is retried with backoff; a
temporary error (see kubenova.errors) is logged without its traceback, as it says all
there is to say.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from kubenova.errors import KubenovaError
from kubenova.kube.meta import Body, resource_version
from kubenova.metrics import RECONCILE_SECONDS, RECONCILES

log = logging.getLogger(__name__)

K = TypeVar("K")
# The body is None once the object is gone.
Handler = Callable[[K, Body | None], Awaitable[float | None]]

MAX_BACKOFF = 300.0


def older(body: Body | None, held: Body | None) -> bool:
    """Is `body` an older state of the object than the `held` one?

    resourceVersions are opaque to clients by the API conventions, but the apiserver's are
    etcd revisions: integers that grow with every write, compared as such for one object
    by client-go too. When either does not parse, the body that arrives later wins. None
    (the object is gone) is never older, and anything replaces a held None (created again).
    """
    if body is None or held is None:
        return False
    version, seen = resource_version(body), resource_version(held)
    return version is not None and seen is not None and version < seen


class WorkQueue(Generic[K]):
    """Deduplicating, per-key serialised queue with retry backoff."""

    def __init__(
        self,
        handler: Handler[K],
        *,
        workers: int = 4,
        name: str = "queue",
        component: str = "kubenova",
    ) -> None:
        self._handler = handler
        self._workers = workers
        self._name = name
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._active: set[K] = set()
        self._dirty: set[K] = set()
        self._bodies: dict[K, Body | None] = {}
        self._failures: dict[K, int] = {}
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        # The metric children, looked up once: `labels()` per reconcile shows in profiles.
        self._reconciles = {
            result: RECONCILES.labels(component, name, result)
            for result in ("ok", "retry", "error")
        }
        self._seconds = RECONCILE_SECONDS.labels(component, name)

    # -- producers ---------------------------------------------------------------------------

    def put(self, key: K, body: Body | None) -> None:
        """Remember `body` as the newest state of `key` (unless an even newer one is held:
        see `older`) and schedule a reconcile."""
        if not older(body, self._bodies.get(key)):
            self._bodies[key] = body
        self.mark(key)

    def remember(self, key: K, body: Body) -> None:
        """Keep `body` as the newest state of a known `key` without a reconcile (the echo
        of the handler's own write: what it would do with it is done)."""
        held = self._bodies.get(key)
        if held is not None and not older(body, held):
            self._bodies[key] = body

    def mark(self, key: K) -> None:
        """Schedule a reconcile of `key` with the newest body already known."""
        if key not in self._bodies:
            return
        timer = self._timers.pop(key, None)
        if timer:
            timer.cancel()
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def mark_after(self, key: K, delay: float) -> None:
        """Reconcile `key` again in `delay` seconds (unless marked sooner)."""
        old = self._timers.pop(key, None)
        if old:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)

    def body(self, key: K) -> Body | None:
        return self._bodies.get(key)

    def keys(self) -> list[K]:
        return list(self._bodies)

    def __len__(self) -> int:
        return len(self._queued) + len(self._active)

    # -- workers -----------------------------------------------------------------------------

    def start(self) -> None:
        for number in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"{self._name}-{number}"))

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def drained(self, timeout: float = 30.0) -> None:
        """Wait until nothing is queued or being worked on (tests, shutdown)."""
        async with asyncio.timeout(timeout):
            while self._queued or self._active:
                await asyncio.sleep(0.01)

    def _observe(self, started: float, ok: bool, retry: float | None) -> None:
        result = "error" if not ok else ("retry" if retry is not None else "ok")
        self._reconciles[result].inc()
        self._seconds.observe(time.perf_counter() - started)

    def _fire(self, key: K) -> None:
        self._timers.pop(key, None)
        self.mark(key)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._active.add(key)
            body = self._bodies.get(key)
            retry: float | None
            ok = False
            started = time.perf_counter()
            try:
                retry = await self._handler(key, body)
                ok = True
                self._failures.pop(key, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                retry = min(MAX_BACKOFF, 0.2 * 2**failures)
                if isinstance(exc, KubenovaError) and exc.temporary:
                    log.warning(
                        "%s: reconciling %s failed (%d): %s; retry in %.1fs",
                        self._name,
                        key,
                        failures,
                        exc,
                        retry,
                    )
                else:
                    log.exception(
                        "%s: reconciling %s failed (%d); retry in %.1fs",
                        self._name,
                        key,
                        failures,
                        retry,
                    )
            finally:
                self._active.discard(key)
                self._observe(started, ok, retry if ok else None)
            gone = body is None and key in self._bodies and self._bodies[key] is None
            if ok and gone and retry is None:
                self._bodies.pop(key, None)  # gone and handled: forget it
                self._failures.pop(key, None)
            if key in self._dirty:
                self._dirty.discard(key)
                self.mark(key)
            elif retry is not None and key in self._bodies:
                self.mark_after(key, retry)
