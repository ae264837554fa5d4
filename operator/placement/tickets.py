"""A placement waiting for its group commit, and how a waiter on an event loop hears of it.

A thread that calls `Placer.place` waits on the group-commit lock itself. An event loop's
waiter (`Placer.place_soon`) holds no thread: its ticket carries a future, and whoever
commits the batch hands every outcome of the batch back to that loop in one wake-up, so a
drain of many placements costs the loop a few wake-ups per batch, not a thread hand-off
(an executor job, a future, a self-pipe write) per placement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from kubenova.errors import UserError
from kubenova.operator import inventory as inv
from kubenova.operator.scheduler import NoValidHost, PlacementRequest

Outcome = inv.Claim | NoValidHost | UserError


@dataclass
class Ticket:
    """One placement waiting for its batch; `outcome` or `error` once the batch is done."""

    request: PlacementRequest
    steps: Sequence[inv.ClaimStep]
    outcome: Outcome | None = None
    error: BaseException | None = None
    done: bool = False
    waiter: asyncio.Future[inv.Claim | NoValidHost] | None = None  # on its event loop


def settle(batch: Sequence[Ticket]) -> None:
    """Tell the event-loop waiters of a committed batch their outcomes: one call per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Ticket]] = {}
    for ticket in batch:
        if ticket.waiter is not None:
            by_loop.setdefault(ticket.waiter.get_loop(), []).append(ticket)
    for loop, tickets in by_loop.items():
        # A closed loop has nobody waiting any more (the claims stand: they are idempotent).
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, tickets)


def _resolve(tickets: list[Ticket]) -> None:
    for ticket in tickets:
        waiter = ticket.waiter
        if waiter is None or waiter.done():  # cancelled: its reconcile was abandoned
            continue
        if ticket.error is not None:
            waiter.set_exception(ticket.error)
        elif isinstance(ticket.outcome, UserError):
            waiter.set_exception(ticket.outcome)
        elif ticket.outcome is None:
            waiter.set_exception(RuntimeError("the placement's batch ended without an outcome"))
        else:
            waiter.set_result(ticket.outcome)
