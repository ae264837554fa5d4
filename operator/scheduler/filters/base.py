"""The filter contract: one idea per filter, composed in order by configuration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from kubenova.operator.scheduler.host_table import HostTable, Mask
from kubenova.operator.scheduler.request import HostState, PlacementRequest


class HostFilter(ABC):
    """Removes the hosts that cannot take a request, and says why in a NoValidHost message."""

    name: ClassVar[str]

    def applies(self, request: PlacementRequest) -> bool:
        """False when the request does not ask for what this filter checks (it is skipped)."""
        return True

    @abstractmethod
    def passes(self, hosts: HostTable, request: PlacementRequest) -> Mask:
        """For every host (one row per host), whether it can take the request."""

    @abstractmethod
    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        """A phrase for the removed hosts, starting with their count: '2 lack memory (...)'."""


def count(removed: Sequence[HostState], one: str, many: str) -> str:
    """'1 lacks' / '2 lack': the count with the verb agreeing."""
    return f"{len(removed)} {one if len(removed) == 1 else many}"


def members_mask(hosts: HostTable, request: PlacementRequest) -> Mask:
    """The hosts that run a member of the request's server group (an index lookup per
    member host, where `np.isin` on the name column compared Python strings per row)."""
    mask: Mask = np.zeros(len(hosts), dtype=np.bool_)
    rows = [i for name in request.group_hosts if (i := hosts.index.get(name)) is not None]
    mask[rows] = True
    return mask
