"""What the scheduler is asked to place, and the per-host state it decides on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from kubenova.operator.resources import Consumer, Resources, ServerGroupRef


@dataclass(frozen=True, slots=True)
class PlacementRequest:
    """One consumer to place: its resources and the constraints from its spec."""

    consumer: Consumer
    resources: Resources
    availability_zone: str | None = None
    host: str | None = None  # set by an admin to force one host (the filters still apply)
    group: ServerGroupRef | None = None
    floating_ips: int = 0  # charged to the project's quota with the claim
    # host name -> members of `group` already placed there (filled in by `place`)
    group_hosts: Mapping[str, int] = field(default_factory=dict)

    def with_group_hosts(self, group_hosts: Mapping[str, int]) -> PlacementRequest:
        """The same request, knowing where the group's members are now."""
        return replace(self, group_hosts=dict(group_hosts))


@dataclass(frozen=True, slots=True)
class HostState:
    """A host as the scheduler sees it: state, and what is free after overcommit.

    Built from the inventory's rows by `kubenova.operator.placement.host_view`.
    """

    name: str
    availability_zone: str
    ready: bool
    schedulable: bool
    free_vcpus: int
    free_memory_mb: int
    free_disk_gb: int
    generation: int = 0
    compute: bool = True  # the host's agent runs the compute service (can run Instances)

    def after_claim(self, resources: Resources) -> HostState:
        """This host once `resources` are allocated on it."""
        return replace(
            self,
            free_vcpus=self.free_vcpus - resources.vcpus,
            free_memory_mb=self.free_memory_mb - resources.memory_mb,
            free_disk_gb=self.free_disk_gb - resources.disk_gb,
        )
