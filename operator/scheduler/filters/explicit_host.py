"""An admin's `placement.host` restricts the choice to that host (other filters still apply)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kubenova.operator.scheduler.filters.base import HostFilter
from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class ExplicitHostFilter(HostFilter):
    name = "explicit-host"

    def applies(self, request: PlacementRequest) -> bool:
        return request.host is not None

    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        return np.asarray(hosts.name == request.host, dtype=np.bool_)

    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        return f"{len(removed)} not the requested host {request.host}"
