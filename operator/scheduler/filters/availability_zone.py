"""A request naming an availability zone only lands on hosts of that zone."""

from __future__ import annotations

from collections.abc import Sequence

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class AvailabilityZoneFilter(HostFilter):
    name = "availability-zone"

    def applies(self, request: PlacementRequest) -> bool:
        return request.availability_zone is not None

    def host_passes(self, host: HostState, request: PlacementRequest) -> bool:
        return host.availability_zone == request.availability_zone

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} outside availability zone {request.availability_zone}"
