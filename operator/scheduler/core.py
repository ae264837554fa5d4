"""The pure scheduler: filter, weigh, choose. No database, no clock, no randomness.

Ties are broken by host name, so the same hosts and request always give the same answer.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from kubenova.operator.scheduler.config import SchedulerConfig
from kubenova.operator.scheduler.decision import Chosen, Decision, NoValidHost
from kubenova.operator.scheduler.filters import FILTERS, HostFilter
from kubenova.operator.scheduler.request import HostState, PlacementRequest
from kubenova.operator.scheduler.weighers import WEIGHERS, HostWeigher


class Scheduler:
    """Filters and weighers built once from a configuration; `schedule` decides."""

    def __init__(self, config: SchedulerConfig | None = None) -> None:
        self.config = config or SchedulerConfig()
        self.filters: list[HostFilter] = [FILTERS[name]() for name in self.config.filters]
        self.weighers: list[tuple[HostWeigher, float]] = [
            (WEIGHERS[name](), multiplier) for name, multiplier in self.config.weighers
        ]

    def schedule(self, request: PlacementRequest, hosts: Sequence[HostState]) -> Decision:
        """The best host for `request` among `hosts`, or NoValidHost saying why there is none."""
        survivors: Sequence[HostState] = hosts
        steps: list[tuple[HostFilter, Sequence[HostState], list[HostState]]] = []
        for host_filter in self.filters:
            if not host_filter.applies(request):
                continue
            passed = host_filter.filter_hosts(survivors, request)
            steps.append((host_filter, survivors, passed))
            survivors = passed
            if not survivors:
                return self._no_valid_host(request, len(hosts), steps)
        if not survivors:
            return self._no_valid_host(request, len(hosts), steps)
        return self._choose(request, survivors)

    def _choose(self, request: PlacementRequest, hosts: Sequence[HostState]) -> Chosen:
        # Normalising a weigher's scores to 0..1 and multiplying is a*score + constant with
        # a = multiplier / (max - min); constants do not change the ranking, so the total
        # is just the sum of a*score. Negated here so that smaller sorts first.
        terms: list[tuple[float, list[float]]] = []
        for weigher, multiplier in self.weighers:
            if multiplier == 0 or not weigher.applies(request):
                continue
            raw = weigher.weigh_all(hosts, request)
            low, high = min(raw), max(raw)
            if high != low:  # otherwise no opinion among these hosts
                terms.append((-multiplier / (high - low), raw))
        if not terms:
            negated: list[float] = [0.0] * len(hosts)
        elif len(terms) == 1:
            a, first = terms[0]
            negated = [a * x for x in first]
        else:
            (a, first), (b, second) = terms[0], terms[1]
            negated = [a * x + b * y for x, y in zip(first, second, strict=True)]
            for c, more in terms[2:]:
                negated = [t + c * z for t, z in zip(negated, more, strict=True)]
        # Smallest (-weight, name) first: the heaviest host, ties to the smallest name.
        best = heapq.nsmallest(
            1 + self.config.alternates, zip(negated, [host.name for host in hosts], strict=True)
        )
        return Chosen(host=best[0][1], alternates=tuple(name for _, name in best[1:]))

    @staticmethod
    def _no_valid_host(
        request: PlacementRequest,
        total: int,
        steps: list[tuple[HostFilter, Sequence[HostState], list[HostState]]],
    ) -> NoValidHost:
        if total == 0:
            return NoValidHost("0 hosts: no host is registered")
        phrases: list[str] = []
        removed_by: dict[str, int] = {}
        for host_filter, before, passed in steps:
            kept = {id(host) for host in passed}
            removed = [host for host in before if id(host) not in kept]
            if removed:
                phrases.append(host_filter.describe(removed, request))
                removed_by[host_filter.name] = len(removed)
        hosts = "1 host" if total == 1 else f"{total} hosts"
        return NoValidHost(f"{hosts}: {', '.join(phrases)}", removed_by)


def schedule(
    request: PlacementRequest, hosts: Sequence[HostState], config: SchedulerConfig | None = None
) -> Decision:
    """One-off `Scheduler(config).schedule(request, hosts)`; keep a Scheduler for hot paths."""
    return Scheduler(config).schedule(request, hosts)
