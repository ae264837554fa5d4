"""Plain values the inventory reads and writes: host records, their snapshots, claims.

The vocabulary they are made of (resources, consumers, server groups) is
`kubenova.operator.resources`, shared with the scheduler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubenova.operator.resources import OvercommitRatios, Resources


@dataclass(frozen=True, slots=True)
class HostRecord:
    """What a host offers, as its Host resource and agent report it."""

    name: str
    capacity: Resources
    overcommit: OvercommitRatios = field(default_factory=OvercommitRatios)
    availability_zone: str = "nova"
    ready: bool = True
    schedulable: bool = True
    services: tuple[str, ...] = ("compute",)


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """A host with what is allocated on it, read in one go from the database."""

    record: HostRecord
    used: Resources
    generation: int


@dataclass(frozen=True, slots=True)
class Claim:
    """A consumer's allocations on one host. `created` is False when a retry found them.

    `status` holds what the claim's steps took, as status fields (e.g. `addresses`).
    """

    consumer_uid: str
    host: str
    resources: Resources
    created: bool = True
    status: Mapping[str, Any] = field(default_factory=dict, compare=False)
