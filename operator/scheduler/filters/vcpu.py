"""Hosts without enough free vCPUs (after the CPU overcommit ratio) are removed."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter, count
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class VcpuFilter(HostFilter):
    name = "vcpu"

    def applies(self, request: PlacementRequest) -> bool:
        return request.resources.vcpus > 0

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return hosts.free_vcpus >= request.resources.vcpus

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        most = max([0, *(host.free_vcpus for host in removed)])
        return (
            f"{count(removed, 'lacks', 'lack')} vCPUs "
            f"(need {request.resources.vcpus}, max free {most})"
        )
