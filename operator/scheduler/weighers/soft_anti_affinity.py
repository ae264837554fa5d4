"""Soft anti-affinity: prefer hosts with the fewest members of the group, but never refuse."""

from __future__ import annotations

from kubenova.operator.inventory import GroupPolicy
from kubenova.operator.scheduler.request import HostState, PlacementRequest
from kubenova.operator.scheduler.weighers.base import HostWeigher


class SoftAntiAffinityWeigher(HostWeigher):
    name = "soft-anti-affinity"

    def applies(self, request: PlacementRequest) -> bool:
        group = request.group
        return group is not None and group.policy is GroupPolicy.SOFT_ANTI_AFFINITY

    def weigh(self, host: HostState, request: PlacementRequest) -> float:
        return -float(request.group_hosts.get(host.name, 0))
