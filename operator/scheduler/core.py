"""The pure scheduler: filter, weigh, choose. No database, no clock, no randomness.

Hosts are the rows of a HostTable (sorted by name); each filter answers for every row
at once and each weigher scores every row at once, so a decision on 1,000 hosts takes
tens of microseconds. Ties are broken by host name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubenova.operator.scheduler.config import SchedulerConfig
from kubenova.operator.scheduler.decision import Chosen, Decision, NoValidHost
from kubenova.operator.scheduler.filters import FILTERS, HostFilter
from kubenova.operator.scheduler.host_table import HostTable, Mask
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

    def schedule(
        self, request: PlacementRequest, hosts: HostTable | Sequence[HostState]
    ) -> Decision:
        """The best host for `request`, or NoValidHost saying why there is none."""
        table = hosts if isinstance(hosts, HostTable) else HostTable(hosts)
        alive: Mask = np.ones(len(table), dtype=np.bool_)
        removals: list[tuple[HostFilter, Mask]] = []
        for host_filter in self.filters:
            if not host_filter.applies(request):
                continue
            passed = host_filter.passes(table, request)
            removed = alive & ~passed
            if removed.any():
                removals.append((host_filter, removed))
                alive &= passed
                if not alive.any():
                    break
        candidates = np.flatnonzero(alive)
        if len(candidates) == 0:
            return self._no_valid_host(request, table, removals)
        return self._choose(request, table, candidates)

    def _choose(
        self, request: PlacementRequest, table: HostTable, candidates: np.ndarray
    ) -> Chosen:
        # Normalising a weigher's scores to 0..1 and multiplying is a*score + constant with
        # a = multiplier / (max - min); constants do not change the ranking, so the total
        # is the sum of a*score. Negated, so that the best host is the smallest.
        negated = np.zeros(len(candidates), dtype=np.float64)
        for weigher, multiplier in self.weighers:
            if multiplier == 0 or not weigher.applies(request):
                continue
            raw = weigher.weigh(table, request)[candidates]
            low, high = raw.min(), raw.max()
            if high != low:  # otherwise no opinion among these hosts
                negated -= raw * (multiplier / float(high - low))
        # The best few, level by level: every host at the best weight (first rows first:
        # they are name-sorted), then the next weight, ... A few vector passes, where a
        # sort or np.partition of 10,000 mostly equal weights costs a millisecond.
        wanted = 1 + self.config.alternates
        best: list[int] = []
        level = -np.inf
        while len(best) < wanted:
            worse = negated > level
            if not worse.any():
                break
            level = negated[worse].min()
            best += np.flatnonzero(negated == level)[: wanted - len(best)].tolist()
        names = [table.names[int(candidates[i])] for i in best]
        return Chosen(host=names[0], alternates=tuple(names[1:]))

    @staticmethod
    def _no_valid_host(
        request: PlacementRequest, table: HostTable, removals: list[tuple[HostFilter, Mask]]
    ) -> NoValidHost:
        if len(table) == 0:
            return NoValidHost("0 hosts: no host is registered")
        phrases = [f.describe(table.rows(removed), request) for f, removed in removals]
        removed_by = {f.name: int(removed.sum()) for f, removed in removals}
        hosts = "1 host" if len(table) == 1 else f"{len(table)} hosts"
        return NoValidHost(f"{hosts}: {', '.join(phrases)}", removed_by)


def schedule(
    request: PlacementRequest,
    hosts: HostTable | Sequence[HostState],
    config: SchedulerConfig | None = None,
) -> Decision:
    """One-off `Scheduler(config).schedule(request, hosts)`; keep a Scheduler for hot paths."""
    return Scheduler(config).schedule(request, hosts)
