"""Claims re-check the database: no overcommit, hard group policies, idempotent retries."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from kubenova.operator import inventory as inv
from kubenova.operator.inventory.models import (
    Allocation,
    FixedIp,
    InstanceRow,
    NetworkRow,
    SegmentId,
    ServerGroupMember,
    VolumeTargetRow,
)
from tests.integration.inventory.conftest import add_hosts

SMALL = inv.Resources(vcpus=1, memory_mb=1024, disk_gb=10)


def consumer(n: int) -> inv.Consumer:
    return inv.Consumer(f"uid-{n}", f"vm-{n}", "demo")


def count(engine: Engine, model: type[object]) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(model)).scalar_one())


def test_a_claim_is_recorded_and_counted_as_usage(engine: Engine) -> None:
    add_hosts(engine, "node-1", "node-2")
    claim = inv.claim(engine, consumer(1), "node-1", SMALL)
    assert claim == inv.Claim("uid-1", "node-1", SMALL, created=True)
    assert inv.host_usage(engine) == {"node-1": SMALL, "node-2": inv.Resources()}
    assert inv.find_claim(engine, "uid-1") == inv.Claim("uid-1", "node-1", SMALL, created=False)
    with engine.connect() as connection:
        row = connection.execute(select(InstanceRow.namespace, InstanceRow.name)).one()
    assert tuple(row) == ("demo", "vm-1")


def test_retrying_a_claim_returns_the_existing_one_and_never_double_counts(
    engine: Engine,
) -> None:
    add_hosts(engine, "node-1", "node-2", memory_mb=1024)
    first = inv.claim(engine, consumer(1), "node-1", SMALL)
    # The retry after a crash may even name another host, or a host its own claim filled.
    for host in ("node-1", "node-2"):
        again = inv.claim(engine, consumer(1), host, SMALL)
        assert again == inv.Claim(first.consumer_uid, "node-1", SMALL, created=False)
    assert inv.host_usage(engine)["node-1"] == SMALL
    assert inv.host_usage(engine)["node-2"] == inv.Resources()
    assert count(engine, Allocation) == 3


def test_a_claim_that_does_not_fit_is_refused_with_the_hosts_fresh_state(
    engine: Engine,
) -> None:
    add_hosts(engine, "node-1", vcpus=2, memory_mb=2048)
    inv.claim(engine, consumer(1), "node-1", SMALL)
    inv.claim(engine, consumer(2), "node-1", SMALL)
    with pytest.raises(inv.InsufficientCapacity) as refused:
        inv.claim(engine, consumer(3), "node-1", SMALL)
    assert refused.value.snapshot.used == inv.Resources(2, 2048, 20)
    assert "host 'node-1' has room for vcpus=0 memory_mb=0" in str(refused.value)
    assert inv.find_claim(engine, "uid-3") is None
    assert inv.host_usage(engine)["node-1"] == inv.Resources(2, 2048, 20)


def test_overcommit_ratios_raise_capacity(engine: Engine) -> None:
    record = inv.HostRecord(
        "node-1", inv.Resources(2, 1024, 100), overcommit=inv.OvercommitRatios(vcpu=4.0, memory=1.5)
    )
    inv.upsert_host(engine, record)
    for n in range(6):  # 1.5 x 1024 MiB = 6 x 256 MiB
        inv.claim(engine, consumer(n), "node-1", inv.Resources(1, 256, 1))
    with pytest.raises(inv.InsufficientCapacity):
        inv.claim(engine, consumer(6), "node-1", inv.Resources(1, 256, 1))
    inv.claim(engine, consumer(6), "node-1", inv.Resources(2, 0, 1))  # 8 vCPUs in all
    with pytest.raises(inv.InsufficientCapacity):
        inv.claim(engine, consumer(7), "node-1", inv.Resources(1, 0, 0))


def test_an_unknown_host_or_an_empty_request_is_refused(engine: Engine) -> None:
    with pytest.raises(inv.UnknownHost, match="host 'ghost' is not in the inventory"):
        inv.claim(engine, consumer(1), "ghost", SMALL)
    add_hosts(engine, "node-1")
    with pytest.raises(ValueError, match="positive amounts"):
        inv.claim(engine, consumer(1), "node-1", inv.Resources())


def test_release_frees_everything_and_is_idempotent(engine: Engine) -> None:
    add_hosts(engine, "node-1")
    group = inv.ServerGroupRef("sg-1", "web", inv.GroupPolicy.ANTI_AFFINITY, "demo")
    inv.claim(engine, consumer(1), "node-1", SMALL, group)
    released = inv.release(engine, "uid-1")
    assert released == inv.Claim("uid-1", "node-1", SMALL, created=False)
    assert inv.release(engine, "uid-1") is None
    assert inv.host_usage(engine)["node-1"] == inv.Resources()
    assert (
        count(engine, Allocation),
        count(engine, ServerGroupMember),
        count(engine, InstanceRow),
    ) == (
        0,
        0,
        0,
    )
    inv.claim(engine, consumer(2), "node-1", SMALL, group)  # the slot is free again


def test_hard_anti_affinity_is_enforced_by_the_claim(engine: Engine) -> None:
    add_hosts(engine, "node-1", "node-2")
    group = inv.ServerGroupRef("sg-1", "web", inv.GroupPolicy.ANTI_AFFINITY, "demo")
    inv.claim(engine, consumer(1), "node-1", SMALL, group)
    with pytest.raises(inv.ServerGroupConflict) as refused:
        inv.claim(engine, consumer(2), "node-1", SMALL, group)
    assert refused.value.member_hosts == frozenset({"node-1"})
    inv.claim(engine, consumer(2), "node-2", SMALL, group)
    assert inv.member_hosts(engine, "sg-1") == {"node-1": 1, "node-2": 1}


def test_hard_affinity_is_enforced_by_the_claim(engine: Engine) -> None:
    add_hosts(engine, "node-1", "node-2")
    group = inv.ServerGroupRef("sg-1", "db", inv.GroupPolicy.AFFINITY, "demo")
    inv.claim(engine, consumer(1), "node-2", SMALL, group)
    with pytest.raises(inv.ServerGroupConflict, match="has members on \\['node-2'\\]"):
        inv.claim(engine, consumer(2), "node-1", SMALL, group)
    inv.claim(engine, consumer(2), "node-2", SMALL, group)
    assert inv.member_hosts(engine, "sg-1") == {"node-2": 2}


def test_soft_policies_never_refuse(engine: Engine) -> None:
    add_hosts(engine, "node-1")
    group = inv.ServerGroupRef("sg-1", "web", inv.GroupPolicy.SOFT_ANTI_AFFINITY, "demo")
    inv.claim(engine, consumer(1), "node-1", SMALL, group)
    inv.claim(engine, consumer(2), "node-1", SMALL, group)
    assert inv.member_hosts(engine, "sg-1") == {"node-1": 2}


def test_host_state_changes_bump_the_generation(engine: Engine) -> None:
    add_hosts(engine, "node-1")
    (before,) = inv.load_hosts(engine)
    assert inv.set_host_ready(engine, "node-1", False)
    assert inv.set_host_schedulable(engine, "node-1", False)
    assert not inv.set_host_ready(engine, "ghost", True)
    (after,) = inv.load_hosts(engine)
    assert (after.record.ready, after.record.schedulable) == (False, False)
    assert after.generation == before.generation + 2
    inv.claim(engine, consumer(1), "node-1", SMALL)
    assert inv.load_hosts(engine, ["node-1"])[0].generation == after.generation + 1


def test_a_host_holding_allocations_cannot_be_deleted(engine: Engine) -> None:
    add_hosts(engine, "node-1")
    inv.claim(engine, consumer(1), "node-1", SMALL)
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM hosts WHERE name = 'node-1'")


@pytest.mark.parametrize(
    ("model", "first", "clash"),
    [
        (
            FixedIp,
            {"network_uid": "net-1", "address": "10.0.0.5", "mac": "52:54:00:00:00:01"},
            {"network_uid": "net-1", "address": "10.0.0.5", "mac": "52:54:00:00:00:02"},
        ),
        (
            FixedIp,
            {"network_uid": "net-1", "address": "10.0.0.5", "mac": "52:54:00:00:00:01"},
            {"network_uid": "net-1", "address": "10.0.0.6", "mac": "52:54:00:00:00:01"},
        ),
        (
            SegmentId,
            {"kind": "vxlan", "value": 100, "network_uid": "net-1"},
            {"kind": "vxlan", "value": 100, "network_uid": "net-2"},
        ),
        (
            VolumeTargetRow,
            {"volume_uid": "v1", "host_id": 1, "protocol": "iscsi", "iqn": "iqn.x:v", "lun": 1},
            {"volume_uid": "v2", "host_id": 1, "protocol": "iscsi", "iqn": "iqn.x:v", "lun": 1},
        ),
        (
            VolumeTargetRow,
            {"volume_uid": "v1", "host_id": 1, "protocol": "aoe", "shelf": 1, "slot": 2},
            {"volume_uid": "v2", "host_id": 1, "protocol": "aoe", "shelf": 1, "slot": 2},
        ),
    ],
    ids=["fixed-ip-address", "fixed-ip-mac", "segment-id", "iscsi-iqn", "aoe-shelf-slot"],
)
def test_identifiers_cannot_be_allocated_twice(
    engine: Engine, model: type[object], first: dict[str, object], clash: dict[str, object]
) -> None:
    add_hosts(engine, "node-1")
    with engine.begin() as connection:
        for uid in ("net-1", "net-2"):
            connection.execute(
                insert(NetworkRow).values(
                    uid=uid, namespace="demo", name=uid, mode="vxlan", cidr="10.0.0.0/24"
                )
            )
        connection.execute(insert(model).values(**first))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(model).values(**clash))


def test_a_batch_of_hosts_is_created_and_updated_in_one_upsert(engine: Engine) -> None:
    """New hosts start at generation 0; a host already there takes every reported field
    and a generation bump (the Placer's view re-reads what changed by it)."""
    add_hosts(engine, "node-1")
    inv.claim(engine, consumer(1), "node-1", SMALL)  # the claim bumped node-1 once more
    before = {h.record.name: h for h in inv.load_hosts(engine)}
    changed = inv.HostRecord(
        "node-1",
        inv.Resources(4, 2048, 50),
        overcommit=inv.OvercommitRatios(vcpu=2.0),
        availability_zone="az-2",
        ready=False,
        schedulable=False,
        services=("compute", "network"),
    )
    new = inv.HostRecord("node-2", inv.Resources(16, 65536, 500))
    inv.upsert_hosts(engine, [changed, new])
    inv.upsert_hosts(engine, [])  # nothing to write: no transaction needed either
    after = {h.record.name: h for h in inv.load_hosts(engine)}
    assert after["node-1"].record == changed
    assert after["node-1"].generation == before["node-1"].generation + 1
    assert after["node-1"].used == SMALL  # its claim is untouched
    assert after["node-2"].record == new
    assert after["node-2"].generation == 0
