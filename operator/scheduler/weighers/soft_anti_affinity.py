"""Soft anti-affinity: prefer hosts with the fewest members of the group, but never refuse."""

from __future__ import annotations

from kubenova.operator.resources import GroupPolicy
from kubenova.operator.scheduler.host_table import HostTable
from kubenova.operator.scheduler.request import PlacementRequest
from kubenova.operator.scheduler.weighers.base import HostWeigher, Scores, members_per_host


class SoftAntiAffinityWeigher(HostWeigher):
    name = "soft-anti-affinity"

    def applies(self, request: PlacementRequest) -> bool:
        group = request.group
        return group is not None and group.policy is GroupPolicy.SOFT_ANTI_AFFINITY

    def weigh(self, hosts: HostTable, request: PlacementRequest) -> Scores:
        return -members_per_host(hosts, request)
