"""Claims: allocations written in one transaction that re-checks the host, so none overcommits.

A claim locks what it checks (BEGIN IMMEDIATE on SQLite; the server-group row and then the
host row with SELECT ... FOR UPDATE on PostgreSQL), sums what the host already holds,
refuses with ClaimRefused if the request does not fit or would break a hard server-group
policy, and otherwise writes the allocations, the group membership and the instance row
together, then runs the claim's steps (other domains' fixed IPs, MACs, floating IPs, volume
attachments: see `steps`) in the same transaction, so a step's refusal leaves nothing
claimed. Claims are idempotent per consumer uid: a retry returns the existing claim, its
steps taken again (each finds what it took). Several claims may share one transaction
(`claim_in`, a SAVEPOINT each): one commit, one fsync, for a batch of placements.
An Instance's or a Volume's claim also charges its project's quota in the same transaction
(locking the namespace's quota row first), so racing claims cannot exceed a quota
(QuotaExceeded). The claim is the only place a charge is written: quotas hold even when
the admission webhook is not running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, select, update
from sqlalchemy.exc import IntegrityError

from kubenova.operator.inventory import driver_sql, quotas
from kubenova.operator.inventory.engine import connected, write_transaction
from kubenova.operator.inventory.errors import (
    InsufficientCapacity,
    ServerGroupConflict,
    UnknownHost,
)
from kubenova.operator.inventory.hosts import HOST_COLUMNS, snapshot_from_row
from kubenova.operator.inventory.models import (
    Allocation,
    HostRow,
    InstanceRow,
    ServerGroupMember,
    VolumeAttachmentRow,
    utcnow,
)
from kubenova.operator.inventory.records import Claim
from kubenova.operator.inventory.steps import ClaimStep
from kubenova.operator.resources import (
    Consumer,
    GroupPolicy,
    OvercommitRatios,
    ResourceClass,
    Resources,
    ServerGroupRef,
)

INSTANCE_KIND = "Instance"
VOLUME_KIND = "Volume"
RACE_RETRIES = 5

# Built once: constructing statements costs more than running them on SQLite. The
# statements every placement runs are the driver's own (`driver_sql`).
_LOCK_HOST = select(*HOST_COLUMNS).where(HostRow.name == bindparam("host")).with_for_update()


def claim(
    engine: Engine,
    consumer: Consumer,
    host: str,
    resources: Resources,
    group: ServerGroupRef | None = None,
    *,
    floating_ips: int = 0,
    steps: Sequence[ClaimStep] = (),
) -> Claim:
    """Allocate `resources` on `host` for `consumer` and take its `steps`, in one transaction;
    or return the consumer's existing claim (its steps taken again, idempotently).

    An Instance's claim also charges its project's quota, floating IPs included; a
    Volume's charges one volume and its disk GiB.

    Raises InsufficientCapacity or ServerGroupConflict (nothing written) when the
    database says it does not fit, UnknownHost for a host that is not registered, and
    whatever UserError a step refuses with (nothing written either).
    """
    for attempt in range(RACE_RETRIES):
        try:
            with write_transaction(engine) as connection:
                return claim_in(
                    connection,
                    consumer,
                    host,
                    resources,
                    group,
                    floating_ips=floating_ips,
                    steps=steps,
                )
        except IntegrityError:
            # A racing claimer of the same consumer committed first (the retry finds its
            # claim), or a step's random pick (a MAC) collided: either way, again.
            if attempt == RACE_RETRIES - 1:
                raise
    raise AssertionError("unreachable")


def claim_in(
    connection: Connection,
    consumer: Consumer,
    host: str,
    resources: Resources,
    group: ServerGroupRef | None = None,
    *,
    floating_ips: int = 0,
    steps: Sequence[ClaimStep] = (),
) -> Claim:
    """`claim` inside the caller's write transaction, which commits it.

    A refusal may leave partial writes behind: when several claims share one
    transaction, run each in its own SAVEPOINT (`connection.begin_nested()`).
    """
    if min(resources.vcpus, resources.memory_mb, resources.disk_gb) < 0 or resources == Resources():
        raise ValueError(f"a claim needs positive amounts, got {resources}")
    existing = _read_claim(connection, consumer.uid)
    if existing is not None:
        return _take_steps(connection, existing, consumer, steps)
    # Lock order everywhere: quota, server group, host, then what the steps lock (a
    # network's row). No claim waits the other way round; a batch of claims in one
    # transaction can (the Placer retries a batch PostgreSQL aborts as deadlocked).
    amounts = _quota_amounts(consumer, resources, floating_ips)
    if amounts is not None:
        quotas.charge(connection, consumer, amounts)
    member_hosts = _lock_group(connection, group, consumer.uid) if group else frozenset()
    host_id = _lock_host_with_room(connection, host, resources)
    if group is not None:
        _check_policy(group, host, member_hosts)
        driver_sql.run(
            connection,
            "insert_member",
            {"group_uid": group.uid, "consumer_uid": consumer.uid, "host_id": host_id},
        )
    insert_allocations(connection, consumer, host_id, resources)
    if consumer.kind == INSTANCE_KIND:
        _record_instance(connection, consumer, host_id, group)
    driver_sql.run(connection, "bump_generation", {"host_id": host_id})
    return _take_steps(connection, Claim(consumer.uid, host, resources), consumer, steps)


def move_in(
    connection: Connection,
    consumer: Consumer,
    away_from: str,
    host: str,
    *,
    resources: Resources,
    group: ServerGroupRef | None = None,
    steps: Sequence[ClaimStep] = (),
) -> tuple[Claim | None, Claim]:
    """Move the Instance's claim from `away_from` to `host` in the caller's transaction.

    What moves is what the claim holds (the same amounts; the project's quota charge stays
    as it is), its server-group membership and its volume attachments' host; its fixed
    IPs, MACs and floating IPs are per Instance and stay. `host` is re-checked like any
    claim (capacity, hard group policy: InsufficientCapacity, ServerGroupConflict). The
    steps are taken again on `host` (idempotent: they find what the Instance holds).
    Idempotent too: a claim already on `host` is returned as it is, and so is one found
    on a third host (another replica moved it first): the caller compares `claim.host`.
    A claim the inventory lost is made afresh on `host` (`resources`, quota charged).
    Returns (the claim as it was, if it moved; the claim now).
    """
    existing = _read_claim(connection, consumer.uid)
    if existing is None:
        return None, claim_in(connection, consumer, host, resources, group, steps=steps)
    if existing.host != away_from:
        return None, _take_steps(connection, existing, consumer, steps)
    member_hosts = _lock_group(connection, group, consumer.uid) if group else frozenset()
    wanted = existing.resources
    host_id = _lock_host_with_room(connection, host, wanted)
    if group is not None:
        _check_policy(group, host, member_hosts)
    uid = consumer.uid
    connection.execute(
        update(Allocation).where(Allocation.consumer_uid == uid).values(host_id=host_id)
    )
    connection.execute(
        update(ServerGroupMember)
        .where(ServerGroupMember.consumer_uid == uid)
        .values(host_id=host_id)
    )
    connection.execute(update(InstanceRow).where(InstanceRow.uid == uid).values(host_id=host_id))
    connection.execute(
        update(VolumeAttachmentRow)
        .where(VolumeAttachmentRow.instance_uid == uid)
        .values(host_id=host_id)
    )
    connection.execute(
        update(HostRow)
        .where(HostRow.name.in_((away_from, host)))
        .values(generation=HostRow.generation + 1)
    )
    moved = Claim(uid, host, wanted, created=True)
    return existing, _take_steps(connection, moved, consumer, steps)


def _lock_host_with_room(connection: Connection, host: str, wanted: Resources) -> int:
    """Lock `host`'s row (its claims serialise on it) and check `wanted` fits; its id."""
    rows = driver_sql.run(connection, "lock_host", {"host": host})
    if not rows:
        raise UnknownHost(host)
    host_id, vcpus, memory_mb, disk_gb, vcpu_ratio, memory_ratio, disk_ratio = rows[0]
    used = _usage(connection, host_id)
    ratios = OvercommitRatios(vcpu_ratio, memory_ratio, disk_ratio)
    capacity = ratios.capacity(Resources(vcpus, memory_mb, disk_gb))
    if any(amount > 0 and used[rc] + amount > capacity[rc] for rc, amount in wanted.items()):
        # Rare (the view was stale): the whole row, for the refusal to correct the view.
        row = connection.execute(_LOCK_HOST, {"host": host}).one()
        raise InsufficientCapacity(snapshot_from_row(row, used), wanted)
    return int(host_id)


def _take_steps(
    connection: Connection, claim: Claim, consumer: Consumer, steps: Sequence[ClaimStep]
) -> Claim:
    status: dict[str, Any] = {}
    for step in steps:
        status |= step.take(connection, consumer, claim.host)
    return replace(claim, status=status) if status else claim


def _quota_amounts(
    consumer: Consumer, resources: Resources, floating_ips: int
) -> quotas.QuotaAmounts | None:
    """What the consumer's claim charges its project; None for kinds no quota counts."""
    if consumer.kind == INSTANCE_KIND:
        return quotas.QuotaAmounts.for_instance(resources, floating_ips)
    if consumer.kind == VOLUME_KIND:
        return quotas.QuotaAmounts.for_volume(resources.disk_gb)
    return None


def _lock_group(connection: Connection, group: ServerGroupRef, consumer_uid: str) -> frozenset[str]:
    """Create the group row if needed, lock it, and return the hosts its other members are on."""
    driver_sql.run(
        connection,
        "ensure_group",
        {
            "group_uid": group.uid,
            "namespace": group.namespace,
            "name": group.name,
            "policy": group.policy.value,
        },
    )
    driver_sql.run(connection, "lock_group", {"group_uid": group.uid})
    rows = driver_sql.run(
        connection, "member_hosts", {"group_uid": group.uid, "consumer_uid": consumer_uid}
    )
    return frozenset(row[0] for row in rows)


def _check_policy(group: ServerGroupRef, host: str, member_hosts: frozenset[str]) -> None:
    breaks_anti_affinity = group.policy is GroupPolicy.ANTI_AFFINITY and host in member_hosts
    breaks_affinity = (
        group.policy is GroupPolicy.AFFINITY and bool(member_hosts) and host not in member_hosts
    )
    if breaks_anti_affinity or breaks_affinity:
        raise ServerGroupConflict(group.name, group.policy, host, member_hosts)


def _record_instance(
    connection: Connection, consumer: Consumer, host_id: int, group: ServerGroupRef | None
) -> None:
    driver_sql.run(
        connection,
        "record_instance",
        {
            "uid": consumer.uid,
            "namespace": consumer.namespace,
            "name": consumer.name,
            "host_id": host_id,
            "server_group_uid": group.uid if group else None,
            "created_at": driver_sql.timestamp(connection, utcnow()),
        },
    )


def _usage(connection: Connection, host_id: int) -> Resources:
    rows = driver_sql.run(connection, "host_usage", {"host_id": host_id})
    return Resources.from_amounts({ResourceClass(rc): int(total) for rc, total in rows})


def _read_claim(connection: Connection, consumer_uid: str) -> Claim | None:
    rows = driver_sql.run(connection, "read_claim", {"consumer_uid": consumer_uid})
    if not rows:
        return None
    amounts = {ResourceClass(rc): amount for _host, rc, amount in rows}
    return Claim(consumer_uid, rows[0][0], Resources.from_amounts(amounts), created=False)


def find_claim(bind: Engine | Connection, consumer_uid: str) -> Claim | None:
    """The consumer's current claim (`created` False), or None (as `bind` sees it)."""
    with connected(bind) as connection:
        return _read_claim(connection, consumer_uid)


def release(engine: Engine, consumer_uid: str) -> Claim | None:
    """Free everything the consumer holds; returns what was freed (None if nothing: idempotent)."""
    with write_transaction(engine) as connection:
        existing = _read_claim(connection, consumer_uid)
        connection.execute(delete(Allocation).where(Allocation.consumer_uid == consumer_uid))
        connection.execute(
            delete(ServerGroupMember).where(ServerGroupMember.consumer_uid == consumer_uid)
        )
        connection.execute(delete(InstanceRow).where(InstanceRow.uid == consumer_uid))
        quotas.release_charge(connection, consumer_uid)
        if existing is not None:
            connection.execute(
                update(HostRow)
                .where(HostRow.name == existing.host)
                .values(generation=HostRow.generation + 1)
            )
        return existing


def insert_allocations(
    connection: Connection, consumer: Consumer, host_id: int, resources: Resources
) -> None:
    """Record what `consumer` holds on the host, one row per resource class it uses."""
    now = driver_sql.timestamp(connection, utcnow())
    driver_sql.run_many(
        connection,
        "insert_allocation",
        [
            {
                "consumer_uid": consumer.uid,
                "consumer_kind": consumer.kind,
                "consumer_namespace": consumer.namespace,
                "consumer_name": consumer.name,
                "host_id": host_id,
                "resource_class": rc.value,
                "amount": amount,
                "created_at": now,
            }
            for rc, amount in resources.items()
            if amount > 0
        ],
    )
