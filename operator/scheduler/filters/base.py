"""The filter contract: one idea per filter, composed in order by configuration."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from kubenova.operator.scheduler.request import HostState, PlacementRequest


class HostFilter(ABC):
    """Removes the hosts that cannot take a request, and says why in a NoValidHost message."""

    name: ClassVar[str]

    def applies(self, request: PlacementRequest) -> bool:
        """False when the request does not ask for what this filter checks (it is skipped)."""
        return True

    @abstractmethod
    def host_passes(self, host: HostState, request: PlacementRequest) -> bool:
        """Whether `host` can take `request` as far as this filter is concerned."""

    def filter_hosts(
        self, hosts: Sequence[HostState], request: PlacementRequest
    ) -> list[HostState]:
        """The hosts that pass; filters override this with a faster comprehension."""
        return [host for host in hosts if self.host_passes(host, request)]

    @abstractmethod
    def describe(self, removed: Sequence[HostState], request: PlacementRequest) -> str:
        """A phrase for the removed hosts, starting with their count: '2 lack memory (...)'."""


def count(removed: Sequence[HostState], one: str, many: str) -> str:
    """'1 lacks' / '2 lack': the count with the verb agreeing."""
    return f"{len(removed)} {one if len(removed) == 1 else many}"
