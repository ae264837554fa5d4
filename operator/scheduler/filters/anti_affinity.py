"""Hard anti-affinity: no two members of a group on one host."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.resources import GroupPolicy
from kubenova.operator.scheduler.filters.base import HostFilter, count, members_mask
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class ServerGroupAntiAffinityFilter(HostFilter):
    name = "server-group-anti-affinity"

    def applies(self, request: PlacementRequest) -> bool:
        group = request.group
        return (
            group is not None
            and group.policy is GroupPolicy.ANTI_AFFINITY
            and bool(request.group_hosts)
        )

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return ~members_mask(hosts, request)

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        assert request.group is not None
        return (
            f"{count(removed, 'already runs', 'already run')} "
            f"a member of server group {request.group.name}"
        )
