"""The filter contract: one idea per filter, composed in order by configuration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

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
