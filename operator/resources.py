"""Resource classes and amounts, the placement vocabulary shared by inventory and scheduler."""

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
class Overcommit:
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
