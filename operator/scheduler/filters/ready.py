"""Hosts whose agent is not heart-beating (condition Ready false) take nothing."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class ReadyFilter(HostFilter):
    name = "ready"

    def host_passes(self, host: HostState, request: PlacementRequest) -> bool:
        return host.ready

    def filter_hosts(
        self, hosts: Sequence[HostState], request: PlacementRequest
    ) -> list[HostState]:
        return [host for host in hosts if host.ready]

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} not ready"
