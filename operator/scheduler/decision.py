"""The scheduler's answer: a chosen host (with alternates to try) or NoValidHost."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Chosen:
    """The best host, then the next best ones to try if claiming it loses a race."""

    host: str
    alternates: tuple[str, ...] = ()

    @property
    def candidates(self) -> tuple[str, ...]:
        return (self.host, *self.alternates)


@dataclass(frozen=True, slots=True)
class NoValidHost:
    """No host passed every filter; `message` says how many each filter removed, and why."""

    message: str
    removed: Mapping[str, int] = field(default_factory=dict)  # filter name -> hosts removed

    def __str__(self) -> str:
        return self.message


Decision = Chosen | NoValidHost
