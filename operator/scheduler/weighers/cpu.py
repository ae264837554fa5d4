"""Free vCPUs: a positive multiplier spreads instances, a negative one packs them."""

from __future__ import annotations

from kubenova.operator.scheduler.host_table import HostTable
from kubenova.operator.scheduler.request import PlacementRequest
from kubenova.operator.scheduler.weighers.base import HostWeigher, Scores


class CpuWeigher(HostWeigher):
    name = "cpu"

    def weigh(self, hosts: HostTable, request: PlacementRequest) -> Scores:
        return hosts.free_vcpus
