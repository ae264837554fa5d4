"""The placement vocabulary the scheduler and the inventory share: plain values, no SQL.

Resource classes and amounts, overcommit ratios, who consumes, and server groups with
their policies. The inventory stores these and the scheduler decides on them; this module
imports neither, so the scheduler stays free of the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ResourceClass(enum.StrEnum):
    """A kind of countable host resource, named as in OpenStack Placement."""

    VCPU = "VCPU"
    MEMORY_MB = "MEMORY_MB"
    DISK_GB = "DISK_GB"


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of each resource class: a request, a capacity or a usage."""

    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def __getitem__(self, resource_class: ResourceClass) -> int:
        if resource_class is ResourceClass.VCPU:
            return self.vcpus
        if resource_class is ResourceClass.MEMORY_MB:
            return self.memory_mb
        return self.disk_gb

    def items(self) -> list[tuple[ResourceClass, int]]:
        """(class, amount) pairs in a fixed order, zero amounts included."""
        return [
            (ResourceClass.VCPU, self.vcpus),
            (ResourceClass.MEMORY_MB, self.memory_mb),
            (ResourceClass.DISK_GB, self.disk_gb),
        ]

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus + other.vcpus,
            self.memory_mb + other.memory_mb,
            self.disk_gb + other.disk_gb,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.vcpus - other.vcpus,
            self.memory_mb - other.memory_mb,
            self.disk_gb - other.disk_gb,
        )

    @classmethod
    def from_amounts(cls, amounts: dict[ResourceClass, int]) -> Resources:
        """Build from a class -> amount mapping; missing classes count as zero."""
        return cls(
            amounts.get(ResourceClass.VCPU, 0),
            amounts.get(ResourceClass.MEMORY_MB, 0),
            amounts.get(ResourceClass.DISK_GB, 0),
        )


@dataclass(frozen=True, slots=True)
class OvercommitRatios:
    """Allocation ratio per resource class: capacity = floor(total * ratio)."""

    vcpu: float = 1.0
    memory: float = 1.0
    disk: float = 1.0

    def capacity(self, total: Resources) -> Resources:
        """What may be allocated on a host whose physical totals are `total`."""
        return Resources(
            int(total.vcpus * self.vcpu),
            int(total.memory_mb * self.memory),
            int(total.disk_gb * self.disk),
        )


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
