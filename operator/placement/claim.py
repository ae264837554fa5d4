"""Schedule and claim together: decide on the in-memory view, then claim in the database.

If the claim loses a race (another claimer took the room, or a group member landed
first) the view is corrected from what the database said and the next candidate is
tried, then the request is scheduled again. The database has the last word, so racing
`place` calls in many processes never overcommit a host or break a hard group policy.
"""

from __future__ import annotations

from sqlalchemy import Engine

from kubenova.operator import inventory
from kubenova.operator.inventory import Claim, InsufficientCapacity, ServerGroupConflict
from kubenova.operator.scheduler.core import Scheduler
from kubenova.operator.scheduler.decision import NoValidHost
from kubenova.operator.scheduler.host_view import HostView
from kubenova.operator.scheduler.request import PlacementRequest

# Every lost race is another claimer's success, so losing cannot go on for ever; the
# bound only guards against a bug. Claimers deciding on equal views pick the same host,
# so under a burst of N racing claimers one can lose about N times per placement.
MAX_ROUNDS = 100
# A NoValidHost computed on a view younger than this is trusted; older views are
# reloaded first, so capacity released by other replicas is seen.
TRUST_REFUSAL_FOR = 1.0


def place(
    engine: Engine,
    request: PlacementRequest,
    view: HostView | None = None,
    scheduler: Scheduler | None = None,
) -> Claim | NoValidHost:
    """Choose a host for `request` and claim it; idempotent per consumer uid.

    Keep one HostView and one Scheduler per process and pass them in: building them
    reads every host and instantiates the filters.
    """
    view = view or HostView(engine)
    scheduler = scheduler or Scheduler()
    lost = 0
    for _ in range(MAX_ROUNDS):
        if request.group is not None:
            request = request.with_group_hosts(inventory.member_hosts(engine, request.group.uid))
        decision = scheduler.schedule(request, view.hosts())
        if isinstance(decision, NoValidHost):
            if view.refresh_if_older(TRUST_REFUSAL_FOR):
                continue
            # A retry of a consumer placed earlier must find its claim, not a full cluster.
            return inventory.find_claim(engine, request.consumer.uid) or decision
        for host in decision.candidates:
            try:
                claim = inventory.claim(
                    engine,
                    request.consumer,
                    host,
                    request.resources,
                    request.group,
                    floating_ips=request.floating_ips,
                )
            except InsufficientCapacity as refused:
                view.update(refused.snapshot)
                lost += 1
                continue
            except ServerGroupConflict:
                lost += 1
                continue  # the claim re-checks the group: an alternate may still do
            except inventory.UnknownHost:
                view.refresh([host])
                continue
            if claim.created:
                view.claimed(claim)
            return claim
    return NoValidHost(
        f"gave up after {MAX_ROUNDS} rounds: {lost} claims lost races to other claimers"
    )
