"""The operator's handle on placement: one warm HostView and Scheduler, safe across threads.

`place` decides on the in-memory view, then claims in the database. If the claim loses a
race (another claimer took the room, or a group member landed first) the view is
corrected from what the database said and the next candidate is tried, then the request
is scheduled again. `claim_on` claims on a host already decided (repairing a lost
claim). Both claim through `_claim`, the one path that writes a claim and keeps the view
in step with it. The database has the last word, so racing placements in many processes
never overcommit a host or break a hard group policy.

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
from kubenova.operator.placement.host_view import HostView
from kubenova.operator.scheduler import NoValidHost, PlacementRequest, Scheduler, SchedulerConfig

# More changed hosts than this (e.g. a cluster's hosts arriving at start-up) are taken
# in by reloading the whole view once.
BULK_REFRESH = 16
# Every lost race is another claimer's success, so losing cannot go on for ever; the
# bound only guards against a bug. Claimers deciding on equal views pick the same host,
# so under a burst of N racing claimers one can lose about N times per placement.
MAX_ROUNDS = 100
# A NoValidHost computed on a view younger than this is trusted; older views are
# reloaded first, so capacity released by other replicas is seen.
TRUST_REFUSAL_FOR = 1.0


class Placer:
    """Schedules and claims; tells listeners when capacity is given back.

    Keep one per process: building it instantiates the filters, and its view is loaded
    from every host on first use. `view` and `scheduler` may be handed in (a benchmark
    times its own scheduler; a test may age a view).
    """

    def __init__(
        self,
        engine: Engine,
        config: SchedulerConfig | None = None,
        *,
        view: HostView | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler or Scheduler(config or SchedulerConfig())
        self.view = view or HostView(engine)
        self._lock = threading.Lock()
        self._changed: set[str] = set()  # hosts to re-read before the next decision
        self.on_release: Callable[[], None] = lambda: None

    def place(self, request: PlacementRequest) -> inv.Claim | NoValidHost:
        """Choose a host for `request` and claim it; idempotent per consumer uid."""
        with self._lock:
            self._catch_up()
            try:
                return self._place(request)
            except inv.QuotaExceeded as exceeded:
                # Like a full cluster: the Instance waits, and is tried again when a
                # claim is released (in its project or anywhere).
                return NoValidHost(exceeded.message)

    def claim_on(self, request: PlacementRequest, host: str) -> inv.Claim:
        """Claim on `host` (repairing a lost claim); ClaimRefused if it no longer fits."""
        with self._lock:
            self._catch_up()
            return self._claim(request, host)

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

    def _place(self, request: PlacementRequest) -> inv.Claim | NoValidHost:
        lost = 0
        for _ in range(MAX_ROUNDS):
            if request.group is not None:
                request = request.with_group_hosts(inv.member_hosts(self.engine, request.group.uid))
            decision = self.scheduler.schedule(request, self.view.hosts())
            if isinstance(decision, NoValidHost):
                if self.view.refresh_if_older(TRUST_REFUSAL_FOR):
                    continue
                # A retry of a consumer placed earlier must find its claim, not a full cluster.
                return inv.find_claim(self.engine, request.consumer.uid) or decision
            for host in decision.candidates:
                try:
                    return self._claim(request, host)
                except inv.InsufficientCapacity as refused:
                    self.view.update(refused.snapshot)
                    lost += 1
                except inv.ServerGroupConflict:
                    lost += 1  # the claim re-checks the group: an alternate may still do
                except inv.UnknownHost:
                    self.view.refresh([host])
        return NoValidHost(
            f"gave up after {MAX_ROUNDS} rounds: {lost} claims lost races to other claimers"
        )

    def _claim(self, request: PlacementRequest, host: str) -> inv.Claim:
        """The one way a claim is written: in the database, then counted in the view."""
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

    def _catch_up(self) -> None:
        if not self._changed:
            return
        if len(self._changed) > BULK_REFRESH:
            self.view.refresh()  # one load and one rebuild beat many single inserts
        else:
            self.view.refresh(self._changed)
        self._changed.clear()
