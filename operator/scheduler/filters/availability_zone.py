"""A request naming an availability zone only lands on hosts of that zone."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class AvailabilityZoneFilter(HostFilter):
    name = "availability-zone"

    def applies(self, request: PlacementRequest) -> bool:
        return request.availability_zone is not None

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return np.asarray(hosts.zone == request.availability_zone, dtype=np.bool_)

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} outside availability zone {request.availability_zone}"
