"""Hosts an admin disabled (Host spec.schedulable false) take no new placements."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class SchedulableFilter(HostFilter):
    name = "schedulable"

    def host_passes(self, host: HostState, request: PlacementRequest) -> bool:
        return host.schedulable

    def filter_hosts(
        self, hosts: Sequence[HostState], request: PlacementRequest
    ) -> list[HostState]:
        return [host for host in hosts if host.schedulable]

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} disabled by an admin"
