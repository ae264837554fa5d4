"""Hard affinity: once a group has members, the others go to the same host."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.resources import GroupPolicy
from kubenova.operator.scheduler.filters.base import HostFilter, members_mask
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class ServerGroupAffinityFilter(HostFilter):
    name = "server-group-affinity"

    def applies(self, request: PlacementRequest) -> bool:
        group = request.group
        return (
            group is not None and group.policy is GroupPolicy.AFFINITY and bool(request.group_hosts)
        )

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return members_mask(hosts, request)

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        assert request.group is not None
        where = ", ".join(sorted(request.group_hosts))
        return f"{len(removed)} not where server group {request.group.name} runs ({where})"
