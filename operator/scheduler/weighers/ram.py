"""Free memory: a positive multiplier spreads instances, a negative one packs them."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.request import HostState, PlacementRequest
from kubenova.operator.scheduler.weighers.base import HostWeigher


class RamWeigher(HostWeigher):
    name = "ram"

    def weigh(self, host: HostState, request: PlacementRequest) -> float:
        return float(host.free_memory_mb)

    def weigh_all(self, hosts: Sequence[HostState], request: PlacementRequest) -> list[float]:
        return [host.free_memory_mb for host in hosts]  # ints: cheaper, compare the same
