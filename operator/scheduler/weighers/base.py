"""The weigher contract: a raw score per host; the scheduler normalises and multiplies.

As in Nova, each weigher's raw scores are scaled to 0..1 across the candidate hosts and
multiplied by the weigher's configured multiplier, then summed; the highest total wins.
A positive multiplier prefers high raw scores, a negative one low scores (spread vs pack).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from kubenova.operator.scheduler.host_table import HostTable
from kubenova.operator.scheduler.request import PlacementRequest

Scores = NDArray[np.int64] | NDArray[np.float64]


class HostWeigher(ABC):
    """Scores hosts; higher raw score x positive multiplier wins."""

    name: ClassVar[str]

    def applies(self, request: PlacementRequest) -> bool:
        """False when the weigher has no opinion on this request (it is skipped)."""
        return True

    @abstractmethod
    def weigh(self, hosts: HostTable, request: PlacementRequest) -> Scores:
        """The raw score of every host (one row per host)."""


def members_per_host(hosts: HostTable, request: PlacementRequest) -> NDArray[np.float64]:
    """How many members of the request's server group each host runs."""
    members = np.zeros(len(hosts), dtype=np.float64)
    for name, count in request.group_hosts.items():
        i = hosts.index.get(name)
        if i is not None:
            members[i] = count
    return members
