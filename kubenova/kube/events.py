"""Kubernetes Events for what a user should see: correlated, rate-limited, written aside.

In the manner of client-go's EventRecorder and EventCorrelator:
- `record` never waits and never writes: it files the occurrence in memory and wakes one
  background writer (WRITERS requests at a time), so a placement's hot path pays a dict
  update, not an API request, and Events never crowd out the writes that matter;
- the same event on the same object again (type, reason, message) is one Event whose
  `count` grows: its first occurrence is created, later ones patch count and
  lastTimestamp — at most once per `repeat_interval`, and repeats that arrive before
  that write cost nothing (it writes the newest count);
- more than AGGREGATE_AFTER distinct messages of one reason on one object within
  AGGREGATE_WINDOW seconds go into one Event "(combined from similar events): <newest>";
- a token bucket per object (`burst`, one token per `refill_seconds`) is the spam filter:
  an occurrence without a token is counted but not written (the next write carries it);
- Normal Events also share one bucket over all objects (`shared_burst`, `shared_rate`
  a second), like the apiserver's EventRateLimit admission of type Server: a drain of
  thousands of placements writes its first Scheduled Events, then a trickle, instead of
  doubling the apiserver's writes. The object's status says the same (`kubectl describe`
  shows its conditions); Warnings are never held back by it.
Events are best effort: a failed write is logged at debug level and not retried, except a
count patch whose Event expired, which creates it again.

What is remembered is bounded, as client-go's correlator caches are (4,096 entries each):
the objects recorded about least recently are forgotten first once more than
`max_objects` are remembered, so a cloud of 10,000 placed Instances does not keep a series
for each for as long as it lives. A forgotten object's next occurrence starts a new Event
(count 1) with a full token bucket, as after client-go's LRU eviction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubenova.conditions import now_rfc3339
from kubenova.errors import ApiError, NotFound

from .client import KubeClient
from .meta import Body
from .paths import CORE_EVENTS

log = logging.getLogger(__name__)

AGGREGATE_AFTER = 10  # distinct messages per (object, type, reason), as client-go
AGGREGATE_WINDOW = 600.0
COMBINED = "(combined from similar events): "
WRITERS = 4
SHARED_BURST = 100  # Normal Events written at once over all objects
SHARED_RATE = 5.0  # and per second after that
MAX_OBJECTS = 4096  # objects remembered at once (client-go's maxLruCacheEntries)
EVICT_SCAN = 64  # oldest objects looked at per record for one to forget

# (object uid, type, reason, message — or COMBINED for the aggregate of many messages)
Key = tuple[str, str, str, str]


@dataclass
class _Series:
    """One Event object: the occurrences of one Key, and what of them is written."""

    involved: dict[str, Any]
    type: str
    reason: str
    message: str
    first: str
    last: str
    count: int = 1
    name: str | None = None  # the Event's name once created
    written_at: float | None = None  # clock() of the last write


@dataclass
class _Bucket:
    tokens: float
    stamp: float

    def take(self, now: float, burst: int, refill_seconds: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.stamp) / refill_seconds)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class EventRecorder:
    """Records core/v1 Events without blocking the caller; `flush()` writes what is left."""

    def __init__(
        self,
        client: KubeClient,
        component: str,
        *,
        enabled: bool = True,
        burst: int = 25,
        refill_seconds: float = 300.0,
        repeat_interval: float = 30.0,
        shared_burst: int = SHARED_BURST,
        shared_rate: float = SHARED_RATE,
        max_objects: int = MAX_OBJECTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._component = component
        self._host = socket.gethostname()
        self.enabled = enabled
        self.burst, self.refill_seconds = burst, refill_seconds
        self.repeat_interval = repeat_interval
        self._clock = clock
        self._series: dict[Key, _Series] = {}
        self._keys: dict[str, set[Key]] = {}  # uid -> its series
        self._messages: dict[tuple[str, str, str], dict[str, float]] = {}  # -> first seen
        self._buckets: dict[str, _Bucket] = {}
        self.max_objects = max_objects
        self._recent: OrderedDict[str, None] = OrderedDict()  # uids, least recent first
        self.shared_burst, self.shared_rate = shared_burst, shared_rate
        self._shared = _Bucket(float(shared_burst), clock())  # Normal Events, all objects
        self._due: dict[Key, float] = {}  # what the writer still writes, from when
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None

    def record(self, body: Body, type_: str, reason: str, message: str) -> None:
        """File an Event about `body` (type Normal or Warning); written in the background."""
        if not self.enabled:
            return
        meta = body["metadata"]
        uid = meta.get("uid", "")
        now = self._clock()
        self._recent[uid] = None
        self._recent.move_to_end(uid)
        if len(self._recent) > self.max_objects:
            self._forget_least_recent(but=uid)
        message = message[:1024]
        key = self._key(uid, type_, reason, message, now)
        shown = message if key[3] != COMBINED else (COMBINED + message)[:1024]
        series = self._series.get(key)
        if series is None:
            stamp = now_rfc3339()
            series = _Series(_involved(body), type_, reason, shown, stamp, stamp)
            self._series[key] = series
            self._keys.setdefault(uid, set()).add(key)
        else:
            series.count += 1
            series.last = now_rfc3339()
            series.message = shown
        if key in self._due:
            return  # its write is still to come and will carry this occurrence
        bucket = self._buckets.setdefault(uid, _Bucket(float(self.burst), now))
        if not bucket.take(now, self.burst, self.refill_seconds):
            return  # the spam filter: counted, written with a later occurrence
        if type_ == "Normal" and not self._shared.take(
            now, self.shared_burst, 1 / self.shared_rate
        ):
            bucket.tokens += 1  # not written: the object's own budget is not spent
            return  # counted, written with a later occurrence if there is one
        due = now if series.written_at is None else series.written_at + self.repeat_interval
        self._due[key] = due
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_forever(), name=self._component)

    def forget(self, uid: str) -> None:
        """The object is gone: drop what is remembered (and not yet written) about it."""
        for key in self._keys.pop(uid, ()):
            self._series.pop(key, None)
            self._due.pop(key, None)
            self._messages.pop(key[:3], None)
        self._buckets.pop(uid, None)
        self._recent.pop(uid, None)

    def remembered(self) -> int:
        """How many objects the recorder remembers something about."""
        return len(self._recent)

    def _forget_least_recent(self, but: str) -> None:
        # An object with a write still due is kept: forgetting it would drop that write.
        # Those are few (the writer drains them), so a short scan finds one that is not.
        for uid in list(itertools.islice(self._recent, EVICT_SCAN)):
            if uid != but and not any(key in self._due for key in self._keys.get(uid, ())):
                self.forget(uid)
                if len(self._recent) <= self.max_objects:
                    return

    async def flush(self) -> None:
        """Write everything still due, now, and stop the writer (at shutdown)."""
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        keys = list(self._due)
        self._due.clear()
        for start in range(0, len(keys), WRITERS):
            await asyncio.gather(*(self._write(k) for k in keys[start : start + WRITERS]))

    def _key(self, uid: str, type_: str, reason: str, message: str, now: float) -> Key:
        seen = self._messages.setdefault((uid, type_, reason), {})
        for old in [m for m, first in seen.items() if now - first > AGGREGATE_WINDOW]:
            del seen[old]
        if message in seen or len(seen) < AGGREGATE_AFTER:
            seen.setdefault(message, now)
            return (uid, type_, reason, message)
        return (uid, type_, reason, COMBINED)

    async def _write_forever(self) -> None:
        while True:
            now = self._clock()
            ready = [key for key, due in self._due.items() if due <= now][:WRITERS]
            if not ready:
                self._wake.clear()
                wait = min(self._due.values()) - now if self._due else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                continue
            for key in ready:
                del self._due[key]
            await asyncio.gather(*(self._write(key) for key in ready))

    async def _write(self, key: Key) -> None:
        series = self._series.get(key)
        if series is None:
            return  # forgotten meanwhile
        namespace = series.involved.get("namespace") or "default"
        try:
            if series.name is None:
                created = await self._client.create(CORE_EVENTS, self._event(series), namespace)
                series.name = created["metadata"]["name"]
            else:
                changes = {"count": series.count, "lastTimestamp": series.last}
                await self._client.patch(
                    CORE_EVENTS, series.name, changes | {"message": series.message}, namespace
                )
        except NotFound:
            series.name = None  # expired (the apiserver's event TTL): made again next time
            return
        except (ApiError, OSError) as exc:  # an Event is best effort, never a failure
            log.debug("event %s for %s not written: %s", series.reason, key[0], exc)
            return
        series.written_at = self._clock()

    def _event(self, series: _Series) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{series.involved['name']}.",
                "namespace": series.involved.get("namespace") or "default",
            },
            "involvedObject": series.involved,
            "type": series.type,
            "reason": series.reason,
            "message": series.message,
            "source": {"component": self._component, "host": self._host},
            "reportingComponent": self._component,
            "reportingInstance": self._host,
            "firstTimestamp": series.first,
            "lastTimestamp": series.last,
            "count": series.count,
        }


def _involved(body: Body) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion"),
        "kind": body.get("kind"),
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
