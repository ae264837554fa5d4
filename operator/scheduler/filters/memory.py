"""Hosts without enough free memory (after the RAM overcommit ratio) are removed."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter, count
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class MemoryFilter(HostFilter):
    name = "memory"

    def applies(self, request: PlacementRequest) -> bool:
        return request.resources.memory_mb > 0

    def host_passes(self, host: HostState, request: PlacementRequest) -> bool:
        return host.free_memory_mb >= request.resources.memory_mb

    def filter_hosts(
        self, hosts: Sequence[HostState], request: PlacementRequest
    ) -> list[HostState]:
        need = request.resources.memory_mb
        return [host for host in hosts if host.free_memory_mb >= need]

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        most = max([0, *(host.free_memory_mb for host in removed)])
        return (
            f"{count(removed, 'lacks', 'lack')} memory "
            f"(need {request.resources.memory_mb} MiB, max free {most} MiB)"
        )
