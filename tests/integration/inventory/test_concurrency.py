"""Racing claimers in separate processes: capacity and hard group policies still hold."""

from __future__ import annotations

import multiprocessing

import pytest
from sqlalchemy import Engine, func, select

from kubenova.operator import inventory as inv
from kubenova.operator.inventory.models import Allocation
from tests.integration.inventory.claimers import Job, run_claimer
from tests.integration.inventory.conftest import add_hosts

CLAIMERS = 8
FLAVOR = inv.Resources(vcpus=1, memory_mb=1024, disk_gb=10)

pytestmark = pytest.mark.slow


def race(
    url: str, uids: list[str], group: inv.ServerGroupRef | None = None
) -> list[tuple[str, str | None, str]]:
    """Deal the uids round-robin to CLAIMERS processes started together; gather outcomes."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(CLAIMERS)
    results = context.Queue()
    processes = [
        context.Process(
            target=run_claimer,
            args=(Job(url, uids[i::CLAIMERS], FLAVOR, group), start, results),
        )
        for i in range(CLAIMERS)
    ]
    for process in processes:
        process.start()
    outcomes = [outcome for _ in processes for outcome in results.get(timeout=300)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outcomes


def consumers_per_host(engine: Engine) -> dict[str, int]:
    usage = inv.host_usage(engine)
    return {host: used.memory_mb // FLAVOR.memory_mb for host, used in usage.items()}


def test_500_racing_placements_onto_room_for_300(engine: Engine, db_url: str) -> None:
    hosts = [f"node-{i:02d}" for i in range(10)]
    add_hosts(engine, *hosts, vcpus=64, memory_mb=30 * 1024, disk_gb=1000)
    outcomes = race(db_url, [f"uid-{n:03d}" for n in range(500)])
    placed = [uid for uid, host, _ in outcomes if host]
    refused = [message for _, host, message in outcomes if not host]
    assert (len(placed), len(refused)) == (300, 200)
    assert set(refused) == {"10 hosts: 10 lack memory (need 1024 MiB, max free 0 MiB)"}
    assert consumers_per_host(engine) == dict.fromkeys(hosts, 30)
    with engine.connect() as connection:
        holders = connection.execute(
            select(func.count(func.distinct(Allocation.consumer_uid)))
        ).scalar_one()
    assert holders == 300
    for snapshot in inv.load_hosts(engine):
        capacity = snapshot.record.overcommit.capacity(snapshot.record.capacity)
        assert all(snapshot.used[rc] <= capacity[rc] for rc in inv.ResourceClass)


def test_hard_anti_affinity_holds_under_racing_claimers(engine: Engine, db_url: str) -> None:
    hosts = [f"node-{i:02d}" for i in range(20)]
    add_hosts(engine, *hosts, vcpus=64, memory_mb=64 * 1024, disk_gb=1000)
    group = inv.ServerGroupRef("sg-1", "web", inv.GroupPolicy.ANTI_AFFINITY, "demo")
    outcomes = race(db_url, [f"uid-{n:03d}" for n in range(40)], group)
    placed_on = [host for _, host, _ in outcomes if host]
    assert sorted(placed_on) == hosts  # one member per host, every host used
    refused = {message for _, host, message in outcomes if not host}
    assert refused == {"20 hosts: 20 already run a member of server group web"}
    assert inv.member_hosts(engine, "sg-1") == dict.fromkeys(hosts, 1)


def test_hard_affinity_holds_under_racing_claimers(engine: Engine, db_url: str) -> None:
    add_hosts(engine, *(f"node-{i}" for i in range(5)), vcpus=64, memory_mb=64 * 1024, disk_gb=1000)
    group = inv.ServerGroupRef("sg-1", "db", inv.GroupPolicy.AFFINITY, "demo")
    outcomes = race(db_url, [f"uid-{n:03d}" for n in range(24)], group)
    assert [message for _, host, message in outcomes if not host] == []
    assert len({host for _, host, _ in outcomes}) == 1
    assert list(inv.member_hosts(engine, "sg-1").values()) == [24]


def test_racing_retries_of_one_consumer_claim_once(engine: Engine, db_url: str) -> None:
    add_hosts(engine, *(f"node-{i}" for i in range(4)), vcpus=64, memory_mb=64 * 1024)
    outcomes = race(db_url, ["uid-same"] * CLAIMERS)
    assert [message for _, host, message in outcomes if not host] == []
    assert len({host for _, host, _ in outcomes}) == 1
    assert sum(used.memory_mb for used in inv.host_usage(engine).values()) == FLAVOR.memory_mb
