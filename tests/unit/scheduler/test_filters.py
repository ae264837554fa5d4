"""Each filter on its own: which hosts pass, when it applies, and how it words removals."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kubenova.operator.resources import GroupPolicy, Resources
from kubenova.operator.scheduler.filters import (
    FILTERS,
    AvailabilityZoneFilter,
    ComputeServiceFilter,
    DiskFilter,
    ExplicitHostFilter,
    HostFilter,
    MemoryFilter,
    ReadyFilter,
    SchedulableFilter,
    ServerGroupAffinityFilter,
    ServerGroupAntiAffinityFilter,
    VcpuFilter,
)
from kubenova.operator.scheduler.host_table import HostTable
from kubenova.operator.scheduler.request import HostState, PlacementRequest
from tests.unit.scheduler.builders import a_host, a_request


def passing(
    host_filter: HostFilter, hosts: list[HostState], request: PlacementRequest
) -> list[str]:
    """Names of the hosts the filter lets through, in name order."""
    table = HostTable(hosts)
    mask = host_filter.passes(table, request)
    assert mask.shape == (len(hosts),)
    return [state.name for state in table.rows(mask)]


def test_ready_filter_removes_hosts_that_are_not_ready() -> None:
    hosts = [a_host("a"), a_host("b", ready=False)]
    assert passing(ReadyFilter(), hosts, a_request()) == ["a"]
    assert ReadyFilter().describe([hosts[1]], a_request()) == "1 not ready"


def test_compute_service_filter_removes_hosts_that_run_no_instances() -> None:
    hosts = [a_host("a", compute=False), a_host("b")]
    assert passing(ComputeServiceFilter(), hosts, a_request()) == ["b"]
    assert ComputeServiceFilter().describe(hosts[:1], a_request()) == "1 run no compute service"


def test_schedulable_filter_removes_disabled_hosts() -> None:
    hosts = [a_host("a", schedulable=False), a_host("b")]
    assert passing(SchedulableFilter(), hosts, a_request()) == ["b"]
    assert SchedulableFilter().describe(hosts[:1], a_request()) == "1 disabled by an admin"


def test_availability_zone_filter_applies_only_when_a_zone_is_asked_for() -> None:
    hosts = [a_host("a", zone="az1"), a_host("b", zone="az2"), a_host("c", zone="az2")]
    assert not AvailabilityZoneFilter().applies(a_request())
    request = a_request(zone="az1")
    assert passing(AvailabilityZoneFilter(), hosts, request) == ["a"]
    assert (
        AvailabilityZoneFilter().describe(hosts[1:], request) == "2 outside availability zone az1"
    )


def test_explicit_host_filter_keeps_only_the_requested_host() -> None:
    hosts = [a_host("a"), a_host("b")]
    assert not ExplicitHostFilter().applies(a_request())
    request = a_request(host="b")
    assert passing(ExplicitHostFilter(), hosts, request) == ["b"]
    assert ExplicitHostFilter().describe(hosts[:1], request) == "1 not the requested host b"


@pytest.mark.parametrize(
    ("host_filter", "field", "wording"),
    [
        (VcpuFilter(), "vcpus", "lack vCPUs (need 4, max free 3)"),
        (MemoryFilter(), "memory_mb", "lack memory (need 4 MiB, max free 3 MiB)"),
        (DiskFilter(), "disk_gb", "lack disk (need 4 GiB, max free 3 GiB)"),
    ],
)
def test_resource_filters_need_room_for_the_whole_request(
    host_filter: HostFilter, field: str, wording: str
) -> None:
    def with_free(name: str, free: int) -> HostState:
        changes: dict[str, Any] = {f"free_{field}": free}
        return replace(a_host(name), **changes)

    hosts = [
        with_free(name, free)
        for name, free in [
            ("exact", 4),
            ("short", 3),
            ("full", 0),
            ("over", -2),  # an overcommit ratio lowered under existing usage
            ("roomy", 100),
        ]
    ]
    request = replace(a_request(), resources=Resources(**{field: 4}))
    assert passing(host_filter, hosts, request) == ["exact", "roomy"]
    assert host_filter.describe(hosts[1:4], request) == f"3 {wording}"


def test_resource_filter_wording_agrees_with_one_host() -> None:
    request = a_request(memory_mb=4096)
    removed = [a_host(memory_mb=2048)]
    assert MemoryFilter().describe(removed, request) == (
        "1 lacks memory (need 4096 MiB, max free 2048 MiB)"
    )


def test_resource_filters_do_not_apply_to_zero_amounts() -> None:
    request = a_request(vcpus=0, memory_mb=0, disk_gb=0)
    assert not VcpuFilter().applies(request)
    assert not MemoryFilter().applies(request)
    assert not DiskFilter().applies(request)


def test_anti_affinity_filter_removes_hosts_running_a_member() -> None:
    hosts = [a_host("a"), a_host("b"), a_host("c")]
    request = a_request(group_policy=GroupPolicy.ANTI_AFFINITY, group_hosts={"a": 1, "c": 2})
    assert passing(ServerGroupAntiAffinityFilter(), hosts, request) == ["b"]
    assert (
        ServerGroupAntiAffinityFilter().describe([hosts[0]], request)
        == "1 already runs a member of server group web"
    )
    assert (
        ServerGroupAntiAffinityFilter().describe([hosts[0], hosts[2]], request)
        == "2 already run a member of server group web"
    )


def test_affinity_filter_keeps_the_groups_host_once_it_has_members() -> None:
    hosts = [a_host("a"), a_host("b")]
    first_member = a_request(group_policy=GroupPolicy.AFFINITY)
    assert not ServerGroupAffinityFilter().applies(first_member)
    request = a_request(group_policy=GroupPolicy.AFFINITY, group_hosts={"b": 3})
    assert passing(ServerGroupAffinityFilter(), hosts, request) == ["b"]
    assert (
        ServerGroupAffinityFilter().describe(hosts[:1], request)
        == "1 not where server group web runs (b)"
    )


@pytest.mark.parametrize("policy", [GroupPolicy.SOFT_AFFINITY, GroupPolicy.SOFT_ANTI_AFFINITY])
def test_hard_group_filters_ignore_soft_policies(policy: GroupPolicy) -> None:
    request = a_request(group_policy=policy, group_hosts={"a": 1})
    assert not ServerGroupAffinityFilter().applies(request)
    assert not ServerGroupAntiAffinityFilter().applies(request)


def test_every_filter_is_registered_under_its_name() -> None:
    assert set(FILTERS) == {
        "ready",
        "compute-service",
        "schedulable",
        "explicit-host",
        "availability-zone",
        "server-group-affinity",
        "server-group-anti-affinity",
        "vcpu",
        "memory",
        "disk",
    }
    assert all(cls.name == name for name, cls in FILTERS.items())
