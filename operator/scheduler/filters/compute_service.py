"""Only hosts whose agent runs the compute service can run Instances (not volume-only hosts)."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class ComputeServiceFilter(HostFilter):
    name = "compute-service"

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return hosts.compute

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} run no compute service"
