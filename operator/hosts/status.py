"""Writes the operator's part of a Host's status (its `Ready` condition and `allocated`, what
placements claimed there): only what changed, at a bounded rate per host.

Every write wakes every watcher of Hosts (each agent and the operator itself), so a Host's
status is written when a reader would see a difference and, per host, at most once per
`min_interval` seconds with the newest verdict and fill; a flip between Ready and NotReady
is written at once, because fencing and users act on it. Everything else (fills, a
host's first verdict) also shares one bucket of `max_rate` writes per second across all
hosts: a drain of many placements, or an operator judging 1,000 new hosts, then costs the
apiserver a bounded trickle instead of a write per host competing with the placements.
While placements are waiting (`busy`), even that trickle steps aside: such writes are
parked and go when the backlog is placed, `busy_rate` of them per second meanwhile, so a
drain's apiserver and event loop (each write comes back as a Host event) serve
placements. (The placer reads verdicts and fills from memory, never from these writes.)

The monitor judges (on host events, lease events and its periodic check) and reads the
inventory's claims per host (each lease check); this writer only marks the host dirty. One
host is written by one worker at a time and compared with our own last write
(`LastWrites`): judgements of one host arriving together, or a watch event that predates
our write, cost no second write of the same status.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Host
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.meta import Body, generation_of, uid_of
from kubenova.kube.objects import LastWrites, apply_status
from kubenova.operator.resources import Resources
from kubenova.wellknown import OPERATOR_MANAGER
from kubenova.workqueue import WorkQueue

HOSTS = kubenova_kind(Host)
READY = "Ready"
# Seconds between two writes of one host's status that do not flip Ready: a change of reason,
# message or observedGeneration waits at most this long, merged with whatever follows it.
MIN_WRITE_INTERVAL = 10.0
# Writes per second, over all hosts, of what is not a flip (as many may go at once).
MAX_WRITE_RATE = 25.0
# Writes per second of parked hosts (no flip) while placements are waiting: bounded, so a
# host's fill or first verdict is never held back for ever by a busy operator.
BUSY_WRITE_RATE = 1.0
WORKERS = 4


@dataclass(frozen=True)
class Verdict:
    """The monitor's judgement of one host: alive or not, and why."""

    alive: bool
    message: str

    @property
    def reason(self) -> str:
        return "HeartbeatOK" if self.alive else "HeartbeatLost"


class HostStatusWriter:
    """Per host, the newest verdict to publish; written by a keyed work queue."""

    def __init__(
        self,
        client: KubeClient,
        *,
        min_interval: float = MIN_WRITE_INTERVAL,
        max_rate: float = MAX_WRITE_RATE,
        busy_rate: float = BUSY_WRITE_RATE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.min_interval = min_interval
        self.max_rate = max_rate
        self.busy_rate = busy_rate
        self.clock = clock
        # Are placements waiting? (The runtime points it at the Instance work queue.)
        self.busy: Callable[[], bool] = lambda: False
        self._parked: dict[str, None] = {}  # hosts whose write waits for `busy` to end, in order
        self._released: set[str] = set()  # let out of the park: written at their turn
        self._unparking: asyncio.Task[None] | None = None
        self._next_turn = float("-inf")  # the earliest time of the next turn given out
        self._turns: dict[str, float] = {}  # host -> the time of its turn, while waiting
        self._verdicts: dict[str, Verdict] = {}
        self._allocated: dict[str, Body] = {}  # host -> status.allocated to publish
        self._uids: dict[str, str] = {}
        self._written_at: dict[str, float] = {}  # our clock at a host's last write
        self._written = LastWrites()
        self._queue: WorkQueue[str] = WorkQueue(
            self._write, workers=WORKERS, name="host-status", component="operator"
        )

    def start(self) -> None:
        self._queue.start()
        self._unparking = asyncio.create_task(self._unpark_forever(), name="host-status-park")

    async def stop(self) -> None:
        if self._unparking is not None:
            self._unparking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._unparking
            self._unparking = None
        await self._queue.stop()

    def unpark(self) -> None:
        """Let parked hosts go to their turn: all once placements stop waiting, else
        `busy_rate` a second (called every second)."""
        if not self._parked:
            return
        count = len(self._parked) if not self.busy() else max(1, round(self.busy_rate))
        for name in list(self._parked)[:count]:
            del self._parked[name]
            self._released.add(name)
            self._queue.mark(name)

    async def _unpark_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.unpark()

    async def drained(self, timeout: float = 30.0) -> None:
        await self._queue.drained(timeout)

    def publish(self, name: str, body: Body, verdict: Verdict) -> None:
        """Make `verdict` the host's status soon (at once if it flips Ready)."""
        if self._verdicts.get(name) == verdict and self._queue.body(name) is body:
            # Handed over already, and whatever waits (a turn, the park) calls the queue
            # back itself: the periodic check of 1,000 unchanged hosts costs no reconciles.
            return
        self._verdicts[name] = verdict
        self._queue.put(name, body)

    def publish_allocated(self, name: str, body: Body, claimed: Resources) -> None:
        """Make `claimed` the host's `status.allocated` soon (within the write interval)."""
        allocated = {
            "vcpus": claimed.vcpus,
            "memoryMiB": claimed.memory_mb,
            "diskGiB": claimed.disk_gb,
        }
        if self._allocated.get(name) == allocated:
            return  # known, and written or on its way: a periodic check costs nothing
        self._allocated[name] = allocated
        self._queue.put(name, body)

    def forget(self, name: str) -> None:
        """The Host is gone: nothing more to write for it."""
        self._verdicts.pop(name, None)
        self._allocated.pop(name, None)
        self._queue.put(name, None)

    def desired(self, name: str, body: Body) -> tuple[cond.Condition, cond.Condition | None]:
        """The Ready condition to publish, and the one the server holds as far as we know."""
        verdict = self._verdicts[name]
        previous = self._written.newest_status(body).get("conditions")
        entry = cond.condition(
            READY,
            verdict.alive,
            verdict.reason,
            verdict.message,
            generation=generation_of(body),
            previous=previous,
        )
        return entry, cond.find(previous, READY)

    def _slot(self, name: str) -> float:
        """0 when a write of `name` may go now, else the seconds until its turn.

        Each host waiting gets its own turn, `1 / max_rate` after the one before (as many
        as `max_rate` go at once after a quiet second): a thousand hosts waiting are
        called back once each at their turn, not polled until a token happens to be free.
        """
        now = self.clock()
        turn = self._turns.get(name)
        if turn is None:
            turn = max(self._next_turn, now - 1.0 + 1 / self.max_rate)
            self._next_turn = turn + 1 / self.max_rate
        if turn <= now:
            self._turns.pop(name, None)
            return 0.0
        self._turns[name] = turn
        return turn - now

    async def _write(self, name: str, body: Body | None) -> float | None:
        if body is None or name not in self._verdicts:
            self._written_at.pop(name, None)
            self._turns.pop(name, None)
            self._parked.pop(name, None)
            self._released.discard(name)
            uid = self._uids.pop(name, None)
            if uid:
                self._written.forget(uid)
            return None
        entry, current = self.desired(name, body)
        held = self._written.newest_status(body).get("allocated")
        # Every apply carries both fields: one the apply left out would be removed.
        allocated = self._allocated.get(name, held)
        if cond.same(current, entry) and allocated == held:
            self._released.discard(name)
            return None
        flips = current is not None and current.get("status") != entry["status"]
        wait = self._written_at.get(name, float("-inf")) + self.min_interval - self.clock()
        if not flips and wait > 0:
            return wait  # the queue calls us again then, with the newest verdict and fill
        if not flips and name not in self._released and self.busy():
            self._turns.pop(name, None)  # a turn given before: taken again once let out
            self._parked[name] = None
            return None  # `unpark` marks it again, with the newest verdict and fill
        if not flips and (wait := self._slot(name)) > 0:
            return wait
        status: Body = {"conditions": [entry]}
        if allocated is not None:
            status["allocated"] = allocated
        try:
            written = await apply_status(self.client, HOSTS, body, status, manager=OPERATOR_MANAGER)
        except NotFound:
            return None
        self._written_at[name] = self.clock()
        self._turns.pop(name, None)  # a flip may have gone before its turn
        self._parked.pop(name, None)  # a flip carries the parked fill with it
        self._released.discard(name)
        self._uids[name] = uid_of(written)
        self._written.remember(uid_of(written), written, status)
        return None
