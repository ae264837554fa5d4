"""Builders that make scheduler tests read like specs: a_host(...), a_request(...)."""

from __future__ import annotations

from kubenova.operator.resources import Consumer, GroupPolicy, Resources, ServerGroupRef
from kubenova.operator.scheduler import HostState, PlacementRequest


def a_host(
    name: str = "node-1",
    *,
    vcpus: int = 16,
    memory_mb: int = 65536,
    disk_gb: int = 500,
    zone: str = "nova",
    ready: bool = True,
    schedulable: bool = True,
    compute: bool = True,
) -> HostState:
    """A host with that much free after overcommit."""
    return HostState(name, zone, ready, schedulable, vcpus, memory_mb, disk_gb, compute=compute)


def a_request(
    *,
    vcpus: int = 1,
    memory_mb: int = 1024,
    disk_gb: int = 10,
    zone: str | None = None,
    host: str | None = None,
    group_policy: GroupPolicy | None = None,
    group_hosts: dict[str, int] | None = None,
    uid: str = "uid-1",
) -> PlacementRequest:
    group = ServerGroupRef("sg-uid", "web", group_policy) if group_policy else None
    return PlacementRequest(
        consumer=Consumer(uid, "vm-1", "demo"),
        resources=Resources(vcpus, memory_mb, disk_gb),
        availability_zone=zone,
        host=host,
        group=group,
        group_hosts=group_hosts or {},
    )
