"""Hosts without enough free local disk (after the disk overcommit ratio) are removed."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter, count
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class DiskFilter(HostFilter):
    name = "disk"

    def applies(self, request: PlacementRequest) -> bool:
        return request.resources.disk_gb > 0

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return hosts.free_disk_gb >= request.resources.disk_gb

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        most = max([0, *(host.free_disk_gb for host in removed)])
        return (
            f"{count(removed, 'lacks', 'lack')} disk "
            f"(need {request.resources.disk_gb} GiB, max free {most} GiB)"
        )
