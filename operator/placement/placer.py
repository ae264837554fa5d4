"""The operator's handle on scheduling: one warm HostView and Scheduler, safe across threads.

Workers place Instances from threads (the database is blocking); the in-memory view is
not thread-safe, so decisions are taken one at a time per process. That costs nothing on
SQLite (claims serialise there anyway) and the claim still re-checks in the database, so
several operator processes stay safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.scheduler import (
    HostView,
    NoValidHost,
    PlacementRequest,
    Scheduler,
    SchedulerConfig,
    place,
)

# More changed hosts than this (e.g. a cluster's hosts arriving at start-up) are taken
# in by reloading the whole view once.
BULK_REFRESH = 16


class Placer:
    """Schedules and claims; tells listeners when capacity is given back."""

    def __init__(self, engine: Engine, config: SchedulerConfig | None = None) -> None:
        self.engine = engine
        self.scheduler = Scheduler(config or SchedulerConfig())
        self.view = HostView(engine)
        self._lock = threading.Lock()
        self._changed: set[str] = set()  # hosts to re-read before the next decision
        self.on_release: Callable[[], None] = lambda: None

    def place(self, request: PlacementRequest) -> inv.Claim | NoValidHost:
        with self._lock:
            self._catch_up()
            try:
                return place(self.engine, request, self.view, self.scheduler)
            except inv.QuotaExceeded as exceeded:
                # Like a full cluster: the Instance waits, and is tried again when a
                # claim is released (in its project or anywhere).
                return NoValidHost(exceeded.message)

    def claim_on(self, request: PlacementRequest, host: str) -> inv.Claim:
        """Claim on `host` (repairing a lost claim); ClaimRefused if it no longer fits."""
        with self._lock:
            self._catch_up()
            claim = inv.claim(
                self.engine,
                request.consumer,
                host,
                request.resources,
                request.group,
                floating_ips=request.floating_ips,
            )
            if claim.created:
                self.view.claimed(claim)
            return claim

    def release(self, uid: str) -> bool:
        """Free the consumer's claim; True if there was one."""
        freed = inv.release(self.engine, uid)
        if freed is None:
            return False
        with self._lock:
            self.view.released(freed)
        return True

    def host_changed(self, name: str) -> None:
        """A host's record changed in the database: re-read it before the next decision.

        Only noted here (cheap, callable from the event loop); the view catches up in the
        worker thread that next decides, with one query for all hosts changed meanwhile.
        """
        with self._lock:
            self._changed.add(name)

    def _catch_up(self) -> None:
        if not self._changed:
            return
        if len(self._changed) > BULK_REFRESH:
            self.view.refresh()  # one load and one rebuild beat many single inserts
        else:
            self.view.refresh(self._changed)
        self._changed.clear()
