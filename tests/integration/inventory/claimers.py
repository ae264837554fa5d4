"""A claimer process for the concurrency tests: its own engine and Placer (view and scheduler)."""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from kubenova.operator import inventory as inv
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import PlacementRequest


@dataclass(frozen=True)
class Job:
    """What one claimer places: these uids, each with `resources`, into `group`."""

    url: str
    uids: list[str]
    resources: inv.Resources
    group: inv.ServerGroupRef | None = None


def run_claimer(
    job: Job, start: Barrier, results: Queue[list[tuple[str, str | None, str]]]
) -> None:
    """Place every uid, after all claimers are ready; report (uid, host or None, message)."""
    engine = inv.make_engine(job.url)
    placer = Placer(engine)
    placer.view.hosts()  # every claimer starts from the same (soon stale) picture
    outcomes: list[tuple[str, str | None, str]] = []
    start.wait()
    for uid in job.uids:
        consumer = inv.Consumer(uid, f"vm-{uid}", "demo")
        request = PlacementRequest(consumer, job.resources, group=job.group)
        result = placer.place(request)
        if isinstance(result, inv.Claim):
            outcomes.append((uid, result.host, ""))
        else:
            outcomes.append((uid, None, result.message))
    engine.dispose()
    results.put(outcomes)
