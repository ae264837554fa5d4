"""Hosts whose agent is not heart-beating (condition Ready false) take nothing."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class ReadyFilter(HostFilter):
    name = "ready"

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return hosts.ready

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} not ready"
