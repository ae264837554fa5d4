"""IPAM in the real inventory (SQLite and PostgreSQL): segments, fixed IPs, floating IPs."""

from __future__ import annotations

import ipaddress
import re
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.networks import floating, gateways, ports, registry, segments
from kubenova.operator.networks.errors import (
    AddressUnavailable,
    CidrOverlap,
    PoolExhausted,
    SegmentRangeExhausted,
)
from kubenova.operator.networks.records import NetworkRecord, network_record
from kubenova.operator.networks.settings import Range
from tests.integration.inventory.conftest import add_hosts


def a_record(cidr: str = "10.0.0.0/24", namespace: str = "tenant-a", **spec: str) -> NetworkRecord:
    body = {
        "metadata": {
            "uid": str(uuid.uuid4()),
            "namespace": namespace,
            "name": "n-" + cidr.replace("/", "-"),
        },
        "spec": {"mode": "vxlan", "cidr": cidr, **spec},
    }
    return network_record(body)


def registered(engine: Engine, *args: str, **spec: str) -> NetworkRecord:
    record = a_record(*args, **spec)
    registry.register(engine, record)
    return record


def test_overlapping_cidrs_are_refused_within_a_project_only(engine: Engine) -> None:
    registered(engine, "10.0.0.0/16")
    with pytest.raises(
        CidrOverlap, match=r"10.0.5.0/24 overlaps Network n-10.0.0.0-16 \(10.0.0.0/16\)"
    ):
        registered(engine, "10.0.5.0/24")
    registered(engine, "10.1.0.0/24")  # disjoint: fine
    registered(engine, "10.0.5.0/24", namespace="tenant-b")  # another project: fine


def test_registering_twice_is_a_no_op(engine: Engine) -> None:
    record = registered(engine)
    registry.register(engine, record)
    assert registry.is_registered(engine, record.uid)


def test_segment_ids_are_unique_lowest_first_and_exhaust_clearly(engine: Engine) -> None:
    ranges = (Range(100, 101), Range(200, 200))
    nets = [registered(engine, f"10.{i}.0.0/24") for i in range(4)]
    got = [segments.allocate(engine, n.uid, "vlan", ranges) for n in nets[:3]]
    assert got == [100, 101, 200]
    assert segments.allocate(engine, nets[0].uid, "vlan", ranges) == 100  # idempotent
    with pytest.raises(SegmentRangeExhausted, match=r"100-101, 200-200\) is in use"):
        segments.allocate(engine, nets[3].uid, "vlan", ranges)
    # VNIs are another id space: value 100 is free there
    assert segments.allocate(engine, nets[3].uid, "vxlan", ranges) == 100
    assert registry.unregister(engine, nets[1].uid) == 0  # the network goes, its id with it
    fresh = registered(engine, "10.9.0.0/24")
    assert segments.allocate(engine, fresh.uid, "vlan", ranges) == 101


def test_fixed_ips_skip_reserved_addresses_and_are_kept_per_instance(engine: Engine) -> None:
    net = registered(engine, "10.0.0.0/29")  # hosts .1-.6, gateway .1
    first = ports.allocate(engine, net, "vm-1")
    assert first.ip == "10.0.0.2"
    assert re.fullmatch(r"52:54:00(:[0-9a-f]{2}){3}", first.mac)
    assert ports.allocate(engine, net, "vm-1") == first  # rescheduled or retried: the same
    taken = [ports.allocate(engine, net, f"vm-{i}").ip for i in range(2, 6)]
    assert taken == ["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    with pytest.raises(PoolExhausted, match=r"every address of 10.0.0.0/29 is in use"):
        ports.allocate(engine, net, "vm-6")
    assert ports.release(engine, "vm-3") == [net.uid]
    assert ports.allocate(engine, net, "vm-6").ip == "10.0.0.4"  # vm-3's, freed, comes back


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("10.0.1.5", r"10.0.1.5 is outside Network .* \(10.0.0.0/24\)"),
        ("10.0.0.1", r"10.0.0.1 is the gateway"),
        ("10.0.0.0", r"10.0.0.0 is the network address"),
        ("10.0.0.255", r"10.0.0.255 is the broadcast address"),
        ("10.0.0.7", r"10.0.0.7 .* is already in use"),
    ],
)
def test_a_requested_ip_is_given_only_if_free_and_inside(
    engine: Engine, requested: str, message: str
) -> None:
    net = registered(engine)
    assert ports.allocate(engine, net, "holder", "10.0.0.7").ip == "10.0.0.7"
    with pytest.raises(AddressUnavailable, match=message):
        ports.allocate(engine, net, "asker", requested)


def test_concurrent_allocations_never_share_an_address(engine: Engine) -> None:
    net = registered(engine, "10.0.0.0/26")
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda i: ports.allocate(engine, net, f"vm-{i}"), range(40)))
    assert len({p.ip for p in got}) == 40
    assert len({p.mac for p in got}) == 40
    assert all(ipaddress.IPv4Address(p.ip) in net.cidr for p in got)


def test_floating_ips_come_from_the_pool_once_and_go_with_the_instance(engine: Engine) -> None:
    net = registered(engine)
    pool = (ipaddress.IPv4Address("198.51.100.10"), ipaddress.IPv4Address("198.51.100.11"))
    a = ports.allocate(engine, net, "a")
    assert floating.allocate(engine, pool, net.uid, "a", a.ip) == "198.51.100.10"
    assert floating.allocate(engine, pool, net.uid, "a", a.ip) == "198.51.100.10"
    assert floating.allocate(engine, pool, net.uid, "b", "10.0.0.3") == "198.51.100.11"
    with pytest.raises(PoolExhausted, match=r"every floating IP of the pool"):
        floating.allocate(engine, pool, net.uid, "c", "10.0.0.4")
    with pytest.raises(PoolExhausted, match=r"floating IPs are not configured"):
        floating.allocate(engine, None, net.uid, "c", "10.0.0.4")
    views = {v.consumer_uid: v for v in ports.ports_of(engine, net.uid)}
    assert views["a"].floating_ip == "198.51.100.10"
    ports.release(engine, "a")
    assert floating.allocate(engine, pool, net.uid, "c", "10.0.0.4") == "198.51.100.10"


def test_a_placed_instance_associates_and_releases_floating_ips_with_its_charge(
    engine: Engine,
) -> None:
    add_hosts(engine, "node-f", vcpus=8, memory_mb=8192, disk_gb=10)
    quotas.set_limits(engine, "tenant-a", "tenant-a", inv.QuotaLimits(floating_ips=1))
    one, two = registered(engine, "10.0.0.0/24"), registered(engine, "10.0.1.0/24")
    pool = (ipaddress.IPv4Address("198.51.100.10"), ipaddress.IPv4Address("198.51.100.12"))
    vm, other = (inv.Consumer(f"uid-{n}", n, "tenant-a") for n in ("vm", "other"))
    for consumer in (vm, other):
        inv.claim(engine, consumer, "node-f", inv.Resources(1, 128, 1))
        ports.allocate(engine, one, consumer.uid)
    ports.allocate(engine, two, vm.uid)

    def charged() -> int:
        return quotas.usage(engine, "tenant-a").floating_ips

    assert floating.follow(engine, pool, vm, [(one.uid, True), (two.uid, False)]) == {
        one.uid: "198.51.100.10"
    }
    assert charged() == 1
    # idempotent per (Instance, network): the same address, charged once
    assert floating.follow(engine, pool, vm, [(one.uid, True), (two.uid, False)]) == {
        one.uid: "198.51.100.10"
    }
    assert charged() == 1
    # a second one goes over the project's quota: refused, nothing written
    with pytest.raises(inv.QuotaExceeded, match=r"floatingIPs 0 \+ 2 > 1"):
        floating.follow(engine, pool, vm, [(one.uid, True), (two.uid, True)])
    with pytest.raises(inv.QuotaExceeded, match=r"floatingIPs 1 \+ 1 > 1"):
        floating.follow(engine, pool, other, [(one.uid, True)])
    assert [v.floating_ip for v in ports.ports_of(engine, two.uid)] == [None]
    assert charged() == 1
    # a release is never refused, even with the quota lowered below what is held
    quotas.set_limits(engine, "tenant-a", "tenant-a", inv.QuotaLimits(floating_ips=0))
    assert floating.follow(engine, pool, vm, [(one.uid, False), (two.uid, False)]) == {}
    assert charged() == 0
    assert floating.count_used(engine) == 0


def test_a_network_with_nics_is_not_unregistered(engine: Engine) -> None:
    net = registered(engine)
    ports.allocate(engine, net, "vm")
    assert registry.unregister(engine, net.uid) == 1
    ports.release(engine, "vm")
    assert registry.unregister(engine, net.uid) == 0
    assert not registry.is_registered(engine, net.uid)


def test_gateway_hosts_are_network_hosts_spread_and_kept(engine: Engine) -> None:
    resources = inv.Resources(8, 8192, 100)
    inv.upsert_host(engine, inv.HostRecord("compute-1", resources))
    assert gateways.assign(engine, registered(engine, "10.0.0.0/24")) is None
    for name in ("net-1", "net-2"):
        inv.upsert_host(engine, inv.HostRecord(name, resources, services=("network",)))
    a = registered(engine, "10.1.0.0/24")
    b = registered(engine, "10.2.0.0/24")
    assert {gateways.assign(engine, a), gateways.assign(engine, b)} == {"net-1", "net-2"}
    inv.set_host_ready(engine, gateways.assign(engine, a) or "", False)
    assert gateways.assign(engine, a) == gateways.assign(engine, a)  # kept while NotReady
    # another project's network with the same CIDR goes to the other host
    twin = registered(engine, "10.1.0.0/24", namespace="tenant-b")
    inv.set_host_ready(engine, "net-1", True)
    inv.set_host_ready(engine, "net-2", True)
    assert gateways.assign(engine, twin) != gateways.assign(engine, a)


def test_addresses_of_instances_without_a_claim_are_released_as_leaked(engine: Engine) -> None:
    inv.upsert_host(engine, inv.HostRecord("h1", inv.Resources(8, 8192, 100)))
    net = registered(engine)
    inv.claim(engine, inv.Consumer("kept", "kept", "tenant-a"), "h1", inv.Resources(1, 128, 1))
    kept = ports.allocate(engine, net, "kept")
    ports.allocate(engine, net, "gone")  # its claim was released behind the hooks' back
    pool = (ipaddress.IPv4Address("198.51.100.10"), ipaddress.IPv4Address("198.51.100.10"))
    floating.allocate(engine, pool, net.uid, "gone", "10.0.0.3")
    assert ports.release_orphans(engine, net.uid) == ["10.0.0.3"]
    assert [v.ip for v in ports.ports_of(engine, net.uid)] == [kept.ip]
    assert floating.allocate(engine, pool, net.uid, "kept", kept.ip) == "198.51.100.10"
