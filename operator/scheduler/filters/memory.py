"""Hosts without enough free memory (after the RAM overcommit ratio) are removed."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter, count
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class MemoryFilter(HostFilter):
    name = "memory"

    def applies(self, request: PlacementRequest) -> bool:
        return request.resources.memory_mb > 0

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return hosts.free_memory_mb >= request.resources.memory_mb

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        most = max([0, *(host.free_memory_mb for host in removed)])
        return (
            f"{count(removed, 'lacks', 'lack')} memory "
            f"(need {request.resources.memory_mb} MiB, max free {most} MiB)"
        )
