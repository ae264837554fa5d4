"""The operator's handle on placement: one warm HostView and Scheduler, safe across threads.

`place` decides on the in-memory view, then claims in the database with the request's steps
(addresses, attachments) in one transaction. A claim that loses a race (another claimer
took the room, or a group member landed first) corrects the view from what the database
said and tries the next candidate. The database has the last word, so racing placements in
many processes never overcommit a host or break a hard group policy. `claim_on` claims on
a host already decided (repairing a lost claim).

Group commit: placements that arrive while a batch is being committed wait for it, then
are decided one at a time (the view is not thread-safe) and claimed together in one write
transaction (one fsync), each in its own SAVEPOINT so a refused one leaves the others in.
`place_soon` queues from the event loop: one executor job commits the queue and answers
each batch in one wake-up of the loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from kubenova.errors import UserError
from kubenova.operator import inventory as inv
from kubenova.operator.placement.host_view import HostView
from kubenova.operator.placement.tickets import Outcome, Ticket, settle
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
# Placements per transaction: enough to amortise the fsync, few enough that the write
# lock (all of SQLite's) is held for milliseconds, not seconds.
MAX_BATCH = 64
RACE_RETRIES = 5
BATCH_ATTEMPTS = 3


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
        self._lock = threading.Lock()  # held by the thread committing a batch
        self._queue_lock = threading.Lock()
        self._queue: list[Ticket] = []
        self._changed: set[str] = set()  # hosts to re-read before the next decision
        self._draining = False  # an executor job commits what `place_soon` queued
        # Per server group uid, where its members are, as the batch's transaction sees it:
        # read once per batch and kept up to date by the batch's own claims, so a backlog
        # of one group's members is not a query of all its members per decision.
        self._members: dict[str, dict[str, int]] = {}
        self.on_release: Callable[[], None] = lambda: None

    def place(
        self, request: PlacementRequest, steps: Sequence[inv.ClaimStep] = ()
    ) -> inv.Claim | NoValidHost:
        """Choose a host for `request` and claim it with its steps; idempotent per consumer uid.

        Raises the UserError a step refused with (then nothing is claimed).
        """
        ticket = Ticket(request, steps)
        self._run([ticket])
        if isinstance(ticket.outcome, UserError):
            raise ticket.outcome
        assert ticket.outcome is not None
        return ticket.outcome

    async def place_soon(
        self, request: PlacementRequest, steps: Sequence[inv.ClaimStep] = ()
    ) -> inv.Claim | NoValidHost:
        """`place` from the event loop, holding no thread while it waits (see `tickets`)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[inv.Claim | NoValidHost] = loop.create_future()
        with self._queue_lock:
            self._queue.append(Ticket(request, steps, waiter=waiter))
            start, self._draining = not self._draining, True
        if start:
            loop.run_in_executor(None, self._drain)
        return await waiter

    def place_all(
        self, requests: Sequence[tuple[PlacementRequest, Sequence[inv.ClaimStep]]]
    ) -> list[Outcome]:
        """Place a backlog, MAX_BATCH per transaction; each request's outcome, in order."""
        tickets = [Ticket(request, steps) for request, steps in requests]
        self._run(tickets)
        return [t.outcome for t in tickets if t.outcome is not None]

    def claim_on(
        self, request: PlacementRequest, host: str, steps: Sequence[inv.ClaimStep] = ()
    ) -> inv.Claim:
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
                steps=steps,
            )
            if claim.created:
                self.view.claimed(claim)
            return claim

    def evacuate(
        self, request: PlacementRequest, away_from: str, steps: Sequence[inv.ClaimStep] = ()
    ) -> tuple[inv.Claim | None, inv.Claim] | NoValidHost:
        """Move the consumer's claim off the fenced `away_from` to a host the scheduler
        picks (filters and group policy apply; `away_from` never), with its steps, in one
        transaction: (the claim as it was if it moved, the claim now). See `inv.move_in`.
        """
        with self._lock:
            self._catch_up()
            try:
                with inv.write_transaction(self.engine) as connection:
                    outcome = _evacuate(self, connection, request, away_from, steps)
            except Exception:
                self.view.refresh()  # the view may count what was rolled back
                raise
            if not isinstance(outcome, NoValidHost):
                before, after = outcome
                if before is not None:
                    self.view.released(before)
                if after.created:
                    self.view.claimed(after)
            return outcome

    def resize(self, request: PlacementRequest) -> tuple[inv.Claim, inv.Claim] | NoValidHost:
        """Swap the consumer's claim for `request.resources` on its own host, in one
        transaction (see `inv.resize_in`): (the claim before, the claim now), or NoValidHost
        saying why the host has no room for it (the old claim stays as it was). Raises
        QuotaExceeded (nothing written) and NothingToResize."""
        with self._lock:
            self._catch_up()
            try:
                with inv.write_transaction(self.engine) as connection:
                    before, after = inv.resize_in(
                        connection,
                        request.consumer,
                        request.resources,
                        floating_ips=request.floating_ips,
                    )
            except inv.InsufficientCapacity as refused:
                self.view.update(refused.snapshot)
                return NoValidHost(f"no room on its host for the growth: {refused}")
            if after.created:
                self.view.released(before)
                self.view.claimed(after)
            return before, after

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
        with self._queue_lock:
            self._changed.add(name)

    # -- group commit ------------------------------------------------------------------------

    def _run(self, tickets: list[Ticket]) -> None:
        """Queue the tickets; whoever holds the lock commits everything queued meanwhile."""
        with self._queue_lock:
            self._queue.extend(tickets)
        with self._lock:
            while not all(t.done for t in tickets):
                with self._queue_lock:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self._commit(batch)
        for ticket in tickets:
            if ticket.error is not None:
                raise ticket.error

    def _drain(self) -> None:
        """Commit batches until the queue is empty (`place_soon`'s executor job)."""
        while True:
            with self._lock:
                with self._queue_lock:
                    batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                    if not batch:
                        self._draining = False
                        return
                self._commit(batch)

    def _commit(self, batch: list[Ticket]) -> None:
        try:
            self._catch_up()
            for _attempt in range(BATCH_ATTEMPTS):
                try:
                    self._commit_once(batch)
                    break
                except OperationalError as exc:
                    # A batch holds the locks of many claims, taken in the order they were
                    # decided, so it can deadlock with another writer on PostgreSQL (which
                    # aborts one of the two): nothing of it was kept; decide it again.
                    self._forget(batch, exc)
        except Exception as exc:  # handed to every waiter of the batch
            self._forget(batch, exc)
        finally:
            for ticket in batch:  # answered whatever happened: none waits for ever
                ticket.done = True
            settle(batch)

    def _commit_once(self, batch: list[Ticket]) -> None:
        self._members = {}  # a new transaction sees what others committed meanwhile
        with inv.write_transaction(self.engine) as connection:
            for ticket in batch:
                ticket.outcome, ticket.error = None, None
                try:
                    ticket.outcome = self._decide_and_claim(connection, ticket)
                except DBAPIError:
                    raise  # the transaction itself may be broken: nothing is kept
                except Exception as exc:  # re-raised in its own caller
                    ticket.error = exc  # its SAVEPOINT is rolled back; the rest goes on

    def _forget(self, batch: list[Ticket], error: Exception) -> None:
        """Nothing of the batch was written, but the view counted its claims: reload it."""
        self.view.outdate()
        for ticket in batch:
            ticket.outcome, ticket.error = None, error

    def _decide_and_claim(self, connection: Connection, ticket: Ticket) -> Outcome:
        try:
            return self._place(connection, ticket.request, ticket.steps)
        except inv.QuotaExceeded as exceeded:
            # Like a full cluster: the Instance waits, and is tried again when a claim
            # is released (in its project or anywhere).
            return NoValidHost(exceeded.message)
        except UserError as refused:
            return refused  # a step's: its SAVEPOINT is rolled back, the batch goes on

    def _place(
        self, connection: Connection, request: PlacementRequest, steps: Sequence[inv.ClaimStep]
    ) -> inv.Claim | NoValidHost:
        lost = 0
        for _ in range(MAX_ROUNDS):
            if (group := request.group) is not None:
                # Read in the batch's transaction: members placed earlier in it count.
                if group.uid not in self._members:
                    self._members[group.uid] = inv.member_hosts(connection, group.uid)
                request = request.with_group_hosts(self._members[group.uid])
            decision = self.scheduler.schedule(request, self.view.hosts())
            if isinstance(decision, NoValidHost):
                if self.view.refresh_if_older(TRUST_REFUSAL_FOR, connection):
                    continue
                # A retry of a consumer placed earlier must find its claim, not a full cluster.
                existing = inv.find_claim(connection, request.consumer.uid)
                if existing is None:
                    return decision
                return self._claim(connection, request, steps, existing.host)
            for host in decision.candidates:
                try:
                    return self._claim(connection, request, steps, host)
                except inv.InsufficientCapacity as refused:
                    self.view.update(refused.snapshot)
                    lost += 1
                except inv.ServerGroupConflict:
                    lost += 1  # the claim re-checks the group: an alternate may still do
                    if request.group is not None:  # another replica's member: read again
                        self._members.pop(request.group.uid, None)
                except inv.UnknownHost:
                    self.view.refresh([host], bind=connection)
        return NoValidHost(
            f"gave up after {MAX_ROUNDS} rounds: {lost} claims lost races to other claimers"
        )

    def _claim(
        self,
        connection: Connection,
        request: PlacementRequest,
        steps: Sequence[inv.ClaimStep],
        host: str,
    ) -> inv.Claim:
        """The one way a placement's claim is written: in its SAVEPOINT, then in the view."""
        for attempt in range(RACE_RETRIES):
            try:
                with inv.savepoint(connection):
                    claim = inv.claim_in(
                        connection,
                        request.consumer,
                        host,
                        request.resources,
                        request.group,
                        floating_ips=request.floating_ips,
                        steps=steps,
                    )
                break
            except IntegrityError:
                # A racing replica claimed this consumer first (the retry finds its claim),
                # or a step's random pick (a MAC) collided.
                if attempt == RACE_RETRIES - 1:
                    raise
        if claim.created:
            self.view.claimed(claim)
            members = None if request.group is None else self._members.get(request.group.uid)
            if members is not None:
                members[host] = members.get(host, 0) + 1
        return claim

    def _catch_up(self) -> None:
        with self._queue_lock:
            changed, self._changed = self._changed, set()
        if not changed:
            return
        if len(changed) > BULK_REFRESH:
            self.view.refresh()  # one load and one rebuild beat many single inserts
        else:
            self.view.refresh(changed)


def _evacuate(
    placer: Placer,
    connection: Connection,
    request: PlacementRequest,
    away_from: str,
    steps: Sequence[inv.ClaimStep],
) -> tuple[inv.Claim | None, inv.Claim] | NoValidHost:
    """`Placer.evacuate`'s decisions inside its transaction (a lost race tries the next host)."""
    existing = inv.find_claim(connection, request.consumer.uid)
    if existing is not None and existing.host != away_from:
        # Moved already (a retry after a crash before the hand-over): nothing to decide,
        # and deciding again would count the Instance itself as a member where it is.
        return inv.move_in(
            connection,
            request.consumer,
            away_from,
            existing.host,
            resources=request.resources,
            group=request.group,
            steps=steps,
        )
    for _ in range(MAX_ROUNDS):
        if request.group is not None:
            request = request.with_group_hosts(inv.member_hosts(connection, request.group.uid))
        decision = placer.scheduler.schedule(request, placer.view.hosts())
        if isinstance(decision, NoValidHost):
            if placer.view.refresh_if_older(TRUST_REFUSAL_FOR, connection):
                continue
            return decision
        candidates = [host for host in decision.candidates if host != away_from]
        if not candidates:
            return NoValidHost(f"no host other than {away_from} passes the filters")
        for host in candidates:
            try:
                with connection.begin_nested():
                    return inv.move_in(
                        connection,
                        request.consumer,
                        away_from,
                        host,
                        resources=request.resources,
                        group=request.group,
                        steps=steps,
                    )
            except inv.InsufficientCapacity as refused:
                placer.view.update(refused.snapshot)
            except inv.ServerGroupConflict:
                continue
            except inv.UnknownHost:
                placer.view.refresh([host], bind=connection)
    return NoValidHost(f"gave up after {MAX_ROUNDS} rounds of claims lost to other claimers")
