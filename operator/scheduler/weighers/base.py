"""The weigher contract: a raw score per host; the scheduler normalises and multiplies.

As in Nova, each weigher's raw scores are scaled to 0..1 across the candidate hosts and
multiplied by the weigher's configured multiplier, then summed; the highest total wins.
A positive multiplier prefers high raw scores, a negative one low scores (spread vs pack).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from kubenova.operator.scheduler.request import HostState, PlacementRequest


class HostWeigher(ABC):
    """Scores hosts that passed the filters; higher raw score x positive multiplier wins."""

    name: ClassVar[str]
    default_multiplier: ClassVar[float] = 1.0

    def applies(self, request: PlacementRequest) -> bool:
        """False when the weigher has no opinion on this request (it is skipped)."""
        return True

    @abstractmethod
    def weigh(self, host: HostState, request: PlacementRequest) -> float:
        """The raw score of one host."""

    def weigh_all(self, hosts: Sequence[HostState], request: PlacementRequest) -> list[float]:
        """Raw scores of every host, in order; weighers override this with a comprehension."""
        return [self.weigh(host, request) for host in hosts]
