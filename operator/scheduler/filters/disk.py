"""Hosts without enough free local disk (after the disk overcommit ratio) are removed."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter, count
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class DiskFilter(HostFilter):
    name = "disk"

    def applies(self, request: PlacementRequest) -> bool:
        return request.resources.disk_gb > 0

    def host_passes(self, host: HostState, request: PlacementRequest) -> bool:
        return host.free_disk_gb >= request.resources.disk_gb

    def filter_hosts(
        self, hosts: Sequence[HostState], request: PlacementRequest
    ) -> list[HostState]:
        need = request.resources.disk_gb
        return [host for host in hosts if host.free_disk_gb >= need]

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        most = max([0, *(host.free_disk_gb for host in removed)])
        return (
            f"{count(removed, 'lacks', 'lack')} disk "
            f"(need {request.resources.disk_gb} GiB, max free {most} GiB)"
        )
