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


class Placer:
    """Schedules and claims; tells listeners when capacity is given back."""

    def __init__(self, engine: Engine, config: SchedulerConfig | None = None) -> None:
        self.engine = engine
        self.scheduler = Scheduler(config or SchedulerConfig())
        self.view = HostView(engine)
        self._lock = threading.Lock()
        self.on_release: Callable[[], None] = lambda: None

    def place(self, request: PlacementRequest) -> inv.Claim | NoValidHost:
        with self._lock:
            try:
                return place(self.engine, request, self.view, self.scheduler)
            except inv.QuotaExceeded as exceeded:
                # Like a full cluster: the Instance waits, and is tried again when a
                # claim is released (in its project or anywhere).
                return NoValidHost(exceeded.message)

    def claim_on(self, request: PlacementRequest, host: str) -> inv.Claim:
        """Claim on `host` (repairing a lost claim); ClaimRefused if it no longer fits."""
        with self._lock:
            claim = inv.claim(self.engine, request.consumer, host, request.resources, request.group)
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
        """A host's record changed in the database: re-read it before the next decision."""
        with self._lock:
            self.view.refresh([name])
