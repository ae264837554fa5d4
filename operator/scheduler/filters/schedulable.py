"""Hosts an admin disabled (Host spec.schedulable false) take no new placements."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class SchedulableFilter(HostFilter):
    name = "schedulable"

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return hosts.schedulable

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} disabled by an admin"
