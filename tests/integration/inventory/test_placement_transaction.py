"""One transaction per placement, or per batch: a claim takes resources, group membership,
quota, fixed IPs, MACs and floating IPs together or not at all (SQLite and PostgreSQL)."""

from __future__ import annotations

import ipaddress
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.consumers import list_consumers
from kubenova.operator.inventory.models import Allocation, FixedIp, FloatingIp, ServerGroupMember
from kubenova.operator.networks import ports, registry
from kubenova.operator.networks.errors import AddressInUse, PoolExhausted
from kubenova.operator.networks.hook import Nic, NicStep
from kubenova.operator.networks.records import NetworkRecord, network_record
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import NoValidHost, PlacementRequest
from tests.integration.inventory.conftest import add_hosts

POOL = (ipaddress.IPv4Address("198.51.100.10"), ipaddress.IPv4Address("198.51.100.11"))
GROUP = inv.ServerGroupRef("group-uid", "spread", inv.GroupPolicy.ANTI_AFFINITY, "demo")


def a_network(engine: Engine, cidr: str = "10.0.0.0/24") -> NetworkRecord:
    record = network_record(
        {
            "metadata": {"uid": str(uuid.uuid4()), "namespace": "demo", "name": "lan"},
            "spec": {"mode": "vxlan", "cidr": cidr},
        }
    )
    registry.register(engine, record)
    return record


def a_request(n: int, **kwargs: Any) -> PlacementRequest:
    return PlacementRequest(
        inv.Consumer(f"uid-{n}", f"vm-{n}", "demo"), inv.Resources(1, 1024, 10), **kwargs
    )


def nics(network: NetworkRecord, ip: str | None = None, floating: bool = False) -> list[NicStep]:
    return [NicStep((Nic(network, ip, floating),), POOL)]


def count(engine: Engine, column: Any, uid: str) -> int:
    with engine.connect() as connection:
        query = select(func.count()).where(column == uid)
        return int(connection.execute(query).scalar_one())


@pytest.fixture
def commits(engine: Engine) -> Iterator[list[int]]:
    """Every commit on the engine (a transaction's end, so one fsync each)."""
    seen: list[int] = []

    def committed(_connection: Any) -> None:
        seen.append(1)

    event.listen(engine, "commit", committed)
    yield seen
    event.remove(engine, "commit", committed)


def test_a_refused_address_leaves_no_claim_no_membership_no_quota_charge(engine: Engine) -> None:
    add_hosts(engine, "a", "b")
    quotas.set_limits(engine, "demo", "demo", inv.QuotaLimits(instances=10))
    network = a_network(engine, "10.0.0.0/29")  # 5 NIC addresses
    ports.allocate(engine, network, "holder", "10.0.0.3")
    placer = Placer(engine)
    with pytest.raises(AddressInUse, match=r"requested ip 10.0.0.3 of Network lan"):
        placer.place(a_request(1, group=GROUP, floating_ips=1), nics(network, "10.0.0.3", True))
    assert inv.find_claim(engine, "uid-1") is None
    assert count(engine, Allocation.consumer_uid, "uid-1") == 0
    assert count(engine, ServerGroupMember.consumer_uid, "uid-1") == 0
    assert count(engine, FloatingIp.consumer_uid, "uid-1") == 0
    assert quotas.usage(engine, "demo") == quotas.QuotaAmounts()
    assert inv.host_usage(engine) == {"a": inv.Resources(), "b": inv.Resources()}
    # The view was not charged either: the same request with a free address goes through.
    claim = placer.place(a_request(1, group=GROUP, floating_ips=1), nics(network, None, True))
    assert isinstance(claim, inv.Claim)
    assert quotas.usage(engine, "demo").instances == 1


def test_an_exhausted_floating_pool_fails_the_whole_claim(engine: Engine) -> None:
    add_hosts(engine, "a")
    network = a_network(engine)
    placer = Placer(engine)
    for n in (1, 2):
        assert isinstance(placer.place(a_request(n), nics(network, floating=True)), inv.Claim)
    with pytest.raises(PoolExhausted, match=r"every floating IP of the pool"):
        placer.place(a_request(3), nics(network, floating=True))
    assert inv.find_claim(engine, "uid-3") is None
    assert count(engine, FixedIp.consumer_uid, "uid-3") == 0  # its fixed IP rolled back too


def test_a_claim_is_idempotent_per_uid_with_its_addresses(engine: Engine) -> None:
    add_hosts(engine, "a", "b")
    network = a_network(engine)
    first = Placer(engine).place(a_request(1, group=GROUP), nics(network, floating=True))
    assert isinstance(first, inv.Claim)
    addresses = first.status["addresses"]
    assert [(a["network"], a["ip"], a["floatingIP"]) for a in addresses] == [
        ("lan", "10.0.0.2", "198.51.100.10")
    ]
    # A new process (fresh view) retrying after a crash finds the claim and the same NIC.
    again = Placer(engine).place(a_request(1, group=GROUP), nics(network, floating=True))
    assert isinstance(again, inv.Claim)
    assert (again.host, again.created, again.status) == (first.host, False, first.status)
    assert count(engine, Allocation.consumer_uid, "uid-1") == 3  # vCPU, memory, disk: once
    assert count(engine, FixedIp.consumer_uid, "uid-1") == 1
    assert count(engine, ServerGroupMember.consumer_uid, "uid-1") == 1


def test_a_batch_is_one_commit_and_a_bad_placement_fails_alone(
    engine: Engine, commits: list[int]
) -> None:
    add_hosts(engine, "a", "b", memory_mb=2048)
    network = a_network(engine)
    ports.allocate(engine, network, "holder", "10.0.0.9")
    placer = Placer(engine)
    placer.view.hosts()
    commits.clear()
    outcomes = placer.place_all(
        [
            (a_request(1, group=GROUP), nics(network)),
            (a_request(2, group=GROUP), nics(network, "10.0.0.9")),  # in use
            (a_request(3, group=GROUP), nics(network)),
            (a_request(4, group=GROUP), nics(network)),  # anti-affinity: 2 hosts, 2 members
            (a_request(5), ()),
        ]
    )
    assert len(commits) == 1
    first, refused, third, fourth, fifth = outcomes
    assert isinstance(refused, AddressInUse)
    assert isinstance(first, inv.Claim)
    assert isinstance(third, inv.Claim)
    assert {first.host, third.host} == {"a", "b"}  # members of this very batch count
    assert isinstance(fourth, NoValidHost)
    assert isinstance(fifth, inv.Claim)
    assert inv.find_claim(engine, "uid-2") is None
    assert count(engine, ServerGroupMember.consumer_uid, "uid-2") == 0
    assert [p.consumer_uid for p in ports.ports_of(engine, network.uid)] == [
        "uid-1",
        "uid-3",
        "holder",
    ]
    assert inv.member_hosts(engine, GROUP.uid) == {"a": 1, "b": 1}


def test_placements_racing_in_threads_share_commits(engine: Engine, commits: list[int]) -> None:
    add_hosts(engine, *(f"h{n}" for n in range(8)))
    placer = Placer(engine)
    placer.view.hosts()
    commits.clear()
    start = threading.Barrier(16)
    results: list[object] = []

    def place(n: int) -> None:
        start.wait()
        for k in range(4):
            results.append(placer.place(a_request(n * 100 + k)))

    threads = [threading.Thread(target=place, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 64
    assert all(isinstance(r, inv.Claim) and r.created for r in results)
    assert len(commits) < 64  # placements waiting for a commit went into the next one
    used = inv.host_usage(engine)
    assert sum(r.memory_mb for r in used.values()) == 64 * 1024
    assert all(r.memory_mb <= 8192 for r in used.values())


def test_a_failed_commit_gives_every_placement_of_the_batch_the_error(engine: Engine) -> None:
    add_hosts(engine, "a")
    placer = Placer(engine)
    placer.view.hosts()

    def refuse(_connection: Any) -> None:
        raise RuntimeError("the disk is full")

    event.listen(engine, "commit", refuse)
    try:
        with pytest.raises(RuntimeError, match="the disk is full"):
            placer.place_all([(a_request(1), ()), (a_request(2), ())])
    finally:
        event.remove(engine, "commit", refuse)
    assert inv.find_claim(engine, "uid-1") is None
    # The view forgot the claims it had counted: the host is free again for the next one.
    assert isinstance(placer.place(a_request(3)), inv.Claim)
    assert inv.host_usage(engine)["a"] == inv.Resources(1, 1024, 10)


def test_after_a_mixed_batch_the_inventory_agrees_with_itself(engine: Engine) -> None:
    """What the audits compare: every address, membership and charge has its claim."""
    add_hosts(engine, "a", "b", memory_mb=3072)
    quotas.set_limits(engine, "demo", "demo", inv.QuotaLimits(instances=4, floating_ips=1))
    network = a_network(engine, "10.0.0.0/29")
    placer = Placer(engine)
    outcomes = placer.place_all(
        [
            (
                a_request(n, group=GROUP if n < 3 else None, floating_ips=int(n == 4)),
                nics(network, floating=n == 4),
            )
            for n in range(8)
        ]
    )
    placed = {o.consumer_uid for o in outcomes if isinstance(o, inv.Claim)}
    # 2 anti-affine members (2 hosts), 4 instances by quota; 5 addresses in the /29.
    assert placed == {"uid-0", "uid-1", "uid-3", "uid-4"}
    assert sum(isinstance(o, NoValidHost) for o in outcomes) == 4
    claims = {c.uid for c in list_consumers(engine, "Instance")}
    assert claims == placed
    assert {c.consumer_uid for c in quotas.list_charges(engine)} == placed
    assert {p.consumer_uid for p in ports.ports_of(engine, network.uid)} == placed
    assert ports.release_orphans(engine, network.uid) == []  # the network audit: no leak
    assert sum(inv.member_hosts(engine, GROUP.uid).values()) == 2
    assert quotas.usage(engine, "demo") == quotas.QuotaAmounts(
        instances=4, vcpus=4, memory_mib=4096, floating_ips=1
    )
