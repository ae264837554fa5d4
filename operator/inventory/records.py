"""Plain values passed in and out of the inventory: hosts, consumers, groups, claims."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from kubenova.operator.inventory.resources import Overcommit, Resources


@dataclass(frozen=True, slots=True)
class HostRecord:
    """What a host offers, as its Host resource and agent report it."""

    name: str
    capacity: Resources
    overcommit: Overcommit = field(default_factory=Overcommit)
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
class Consumer:
    """Who holds an allocation: a Kubernetes object, identified by its uid."""

    uid: str
    name: str
    namespace: str = ""
    kind: str = "Instance"


class GroupPolicy(enum.StrEnum):
    """Server-group policies; the hard ones are enforced by the claim itself."""

    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti-affinity"
    SOFT_AFFINITY = "soft-affinity"
    SOFT_ANTI_AFFINITY = "soft-anti-affinity"

    @property
    def is_hard(self) -> bool:
        return self in (GroupPolicy.AFFINITY, GroupPolicy.ANTI_AFFINITY)


@dataclass(frozen=True, slots=True)
class ServerGroupRef:
    """The server group a consumer joins when it is claimed."""

    uid: str
    name: str
    policy: GroupPolicy
    namespace: str = ""


@dataclass(frozen=True, slots=True)
class Claim:
    """A consumer's allocations on one host. `created` is False when a retry found them."""

    consumer_uid: str
    host: str
    resources: Resources
    created: bool = True
