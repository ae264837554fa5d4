"""Choosing a volume host: services, health, zone and disk decide; most free disk wins."""

from __future__ import annotations

from kubenova.operator import inventory as inv
from kubenova.operator.placement.volumes import NoVolumeHost, VolumeRequest, rank


def a_host(
    name: str,
    *,
    disk: int = 100,
    used: int = 0,
    services: tuple[str, ...] = ("volume",),
    zone: str = "nova",
    ready: bool = True,
    schedulable: bool = True,
) -> inv.HostSnapshot:
    record = inv.HostRecord(
        name,
        inv.Resources(8, 8192, disk),
        availability_zone=zone,
        ready=ready,
        schedulable=schedulable,
        services=services,
    )
    return inv.HostSnapshot(record, inv.Resources(disk_gb=used), 0)


def request(size: int = 10, zone: str | None = None) -> VolumeRequest:
    return VolumeRequest("uid-1", "data", "tenant", size, zone)


def test_the_host_with_most_free_disk_comes_first() -> None:
    hosts = [a_host("b", disk=100, used=50), a_host("a", disk=100), a_host("c", disk=100)]
    assert rank(hosts, request()) == ["a", "c", "b"]


def test_every_reason_to_leave_a_host_out_is_counted() -> None:
    hosts = [
        a_host("compute", services=("compute",)),
        a_host("down", ready=False),
        a_host("cordoned", schedulable=False),
        a_host("elsewhere", zone="b"),
        a_host("full", disk=20, used=15),
    ]
    refused = rank(hosts, request(10, zone="nova"))
    assert isinstance(refused, NoVolumeHost)
    assert refused.message == (
        "5 hosts: 1 do not run the volume service, 1 are not ready, 1 are cordoned, "
        "1 are outside availability zone nova, 1 lack disk (need 10 GiB, max free 5 GiB)"
    )


def test_no_hosts_at_all() -> None:
    assert rank([], request()) == NoVolumeHost("0 hosts: no host is registered")


def test_disk_overcommit_counts() -> None:
    host = a_host("thin", disk=10)
    thin = inv.HostSnapshot(
        inv.HostRecord(
            "thin",
            host.record.capacity,
            overcommit=inv.OvercommitRatios(disk=2.0),
            services=("volume",),
        ),
        inv.Resources(),
        0,
    )
    assert rank([thin], request(15)) == ["thin"]
