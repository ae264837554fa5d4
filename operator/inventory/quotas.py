"""Project quotas: limits per namespace and the charges that count against them.

A charge is one consumer's share of its namespace's quota (an Instance: 1 instance, its
vCPUs and memory; a Volume: 1 volume and its GiB). It is written only by the consumer's
host claim, in the claim's transaction, which locks the namespace's limits row (SELECT
... FOR UPDATE on PostgreSQL; BEGIN IMMEDIATE serialises SQLite) and re-checks the sum,
so racing claims cannot exceed a quota. Releasing the claim drops the charge.

The admission webhook only reads (`check_room`): anyone who can reach its port can call
it, so it must not be able to change what a project holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, update

from kubenova.operator.inventory import driver_sql
from kubenova.operator.inventory.engine import upsert_insert, write_transaction
from kubenova.operator.inventory.errors import ClaimRefused
from kubenova.operator.inventory.models import QuotaCharge, QuotaLimit, utcnow
from kubenova.operator.resources import Consumer, Resources

# Python name -> the Project's spec.quota field, as users read it in messages.
WIRE_NAMES = {
    "instances": "instances",
    "vcpus": "vcpus",
    "memory_mib": "memoryMiB",
    "volumes": "volumes",
    "volume_gib": "volumeGiB",
    "floating_ips": "floatingIPs",
}
COLUMNS = tuple(WIRE_NAMES)


@dataclass(frozen=True, slots=True)
class QuotaAmounts:
    """How much of each quota resource something takes (or a project uses)."""

    instances: int = 0
    vcpus: int = 0
    memory_mib: int = 0
    volumes: int = 0
    volume_gib: int = 0
    floating_ips: int = 0

    @classmethod
    def for_instance(cls, resources: Resources, floating_ips: int = 0) -> QuotaAmounts:
        return cls(
            instances=1,
            vcpus=resources.vcpus,
            memory_mib=resources.memory_mb,
            floating_ips=floating_ips,
        )

    @classmethod
    def for_volume(cls, size_gib: int) -> QuotaAmounts:
        return cls(volumes=1, volume_gib=size_gib)

    def __add__(self, other: QuotaAmounts) -> QuotaAmounts:
        return QuotaAmounts(*(getattr(self, n) + getattr(other, n) for n in COLUMNS))

    def as_wire(self) -> dict[str, int]:
        """The Project status `usage` form (camelCase keys)."""
        return {WIRE_NAMES[n]: getattr(self, n) for n in COLUMNS}


@dataclass(frozen=True, slots=True)
class QuotaLimits:
    """A Project's spec.quota; None means unlimited."""

    instances: int | None = None
    vcpus: int | None = None
    memory_mib: int | None = None
    volumes: int | None = None
    volume_gib: int | None = None
    floating_ips: int | None = None

    @classmethod
    def from_wire(cls, quota: dict[str, Any]) -> QuotaLimits:
        """From a Project's spec.quota (camelCase keys, omitted = unlimited)."""
        return cls(*(quota.get(WIRE_NAMES[n]) for n in COLUMNS))


class QuotaExceeded(ClaimRefused):
    """The consumer would take its project over a quota limit; nothing was written."""

    def __init__(self, project: str, resource: str, used: int, requested: int, limit: int):
        self.project = project
        self.resource = WIRE_NAMES.get(resource, resource)
        self.used = used
        self.requested = requested
        self.limit = limit
        super().__init__(
            f"quota exceeded in project {project}: {self.resource} {used} + {requested} > {limit}"
        )


_LOCK_LIMITS = (
    select(QuotaLimit.__table__)
    .where(QuotaLimit.namespace == bindparam("namespace"))
    .with_for_update()
)
_READ_LIMITS = select(QuotaLimit.__table__).where(QuotaLimit.namespace == bindparam("namespace"))
_OTHERS_USAGE = select(
    *(func.coalesce(func.sum(getattr(QuotaCharge, n)), 0) for n in COLUMNS)
).where(
    QuotaCharge.namespace == bindparam("namespace"),
    QuotaCharge.consumer_uid != bindparam("consumer_uid"),
)
_CHARGES = select(QuotaCharge.consumer_uid, *(getattr(QuotaCharge, n) for n in COLUMNS)).where(
    QuotaCharge.namespace == bindparam("namespace")
)


def set_limits(engine: Engine, namespace: str, project: str, limits: QuotaLimits) -> bool:
    """Record the Project's quota for its namespace; True if anything changed."""
    values = {n: getattr(limits, n) for n in COLUMNS}
    with write_transaction(engine) as connection:
        row = connection.execute(_LOCK_LIMITS, {"namespace": namespace}).one_or_none()
        if (
            row is not None
            and row.project == project
            and all(getattr(row, n) == v for n, v in values.items())
        ):
            return False
        statement = upsert_insert(connection, QuotaLimit).values(
            namespace=namespace, project=project, **values
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["namespace"], set_={"project": project, **values}
            )
        )
        return True


def drop_limits(engine: Engine, namespace: str) -> None:
    """Forget the namespace's quota (its Project is gone); idempotent."""
    with write_transaction(engine) as connection:
        connection.execute(delete(QuotaLimit).where(QuotaLimit.namespace == namespace))


def charge(connection: Connection, consumer: Consumer, amounts: QuotaAmounts) -> None:
    """Check the consumer's charge against its namespace's quota and record it.

    Call inside the claim's write transaction: the limits row stays locked until it
    commits, so racing charges are checked one after the other. Raises QuotaExceeded.
    """
    check(connection, consumer, amounts)
    driver_sql.run(
        connection,
        "charge",
        {
            "consumer_uid": consumer.uid,
            "consumer_kind": consumer.kind,
            "namespace": consumer.namespace,
            "name": consumer.name,
            "created_at": driver_sql.timestamp(connection, utcnow()),
            **{n: getattr(amounts, n) for n in COLUMNS},
        },
    )


def recharge_floating_ips(connection: Connection, consumer: Consumer, count: int) -> None:
    """Set a claimed Instance's floating IP charge to `count` (one associated or released
    on a placed Instance), in the caller's write transaction. Only a rise is checked, under
    the limits row's lock, so a release is never refused. Raises QuotaExceeded."""
    current = connection.execute(
        select(QuotaCharge.floating_ips).where(QuotaCharge.consumer_uid == consumer.uid)
    ).scalar_one_or_none()
    if current is None or current == count:
        return  # not claimed yet: its claim charges what its spec asks
    if count > current:
        check(connection, consumer, QuotaAmounts(floating_ips=count))
    connection.execute(
        update(QuotaCharge)
        .where(QuotaCharge.consumer_uid == consumer.uid)
        .values(floating_ips=count)
    )


def check(connection: Connection, consumer: Consumer, amounts: QuotaAmounts) -> None:
    """Raise QuotaExceeded if the consumer's charge does not fit (locks the limits row)."""
    rows = driver_sql.run(connection, "lock_limits", {"namespace": consumer.namespace})
    if not rows:
        return  # no Project quota for this namespace
    others = connection.execute(
        _OTHERS_USAGE, {"namespace": consumer.namespace, "consumer_uid": consumer.uid}
    ).one()
    _refuse_if_over(QuotaLimits(*rows[0][1:]), str(rows[0][0]), others, amounts)


def has_limits(engine: Engine, namespace: str) -> bool:
    """Does the namespace have a quota at all? (Most have none: nothing to add up.)"""
    with engine.connect() as connection:
        return connection.execute(_READ_LIMITS, {"namespace": namespace}).first() is not None


def check_room(
    engine: Engine,
    consumer: Consumer,
    amounts: QuotaAmounts,
    waiting: Mapping[str, QuotaAmounts] | None = None,
) -> None:
    """Raise QuotaExceeded if the consumer would not fit next to the namespace's others.

    Read-only (no lock, nothing written): the admission webhook's early answer; the claim
    re-checks under the lock. `waiting` maps the uids of live objects to what they will
    take: each counts by its charge when it holds one and by that amount when it does
    not, read in one statement so an object claimed meanwhile is never counted twice.
    """
    with engine.connect() as connection:
        limits = connection.execute(_READ_LIMITS, {"namespace": consumer.namespace}).one_or_none()
        if limits is None:
            return
        charges = connection.execute(_CHARGES, {"namespace": consumer.namespace}).all()
    charged = {row[0] for row in charges}
    used = [0] * len(COLUMNS)
    for row in charges:
        if row[0] != consumer.uid:
            used = [u + int(v) for u, v in zip(used, row[1:], strict=True)]
    for uid, pending in (waiting or {}).items():
        if uid not in charged and uid != consumer.uid:
            used = [u + getattr(pending, n) for u, n in zip(used, COLUMNS, strict=True)]
    _refuse_if_over(limits, limits.project, used, amounts)


def _refuse_if_over(limits: Any, project: str, used: Sequence[int], amounts: QuotaAmounts) -> None:
    for name, in_use in zip(COLUMNS, used, strict=True):
        limit, requested = getattr(limits, name), getattr(amounts, name)
        if limit is not None and requested > 0 and in_use + requested > limit:
            raise QuotaExceeded(project, name, int(in_use), requested, limit)


def release_charge(connection: Connection, consumer_uid: str) -> None:
    """Drop the consumer's charge (inside the transaction that releases its claim)."""
    connection.execute(delete(QuotaCharge).where(QuotaCharge.consumer_uid == consumer_uid))


def release(engine: Engine, consumer_uid: str) -> None:
    """Drop the consumer's charge; idempotent."""
    with write_transaction(engine) as connection:
        release_charge(connection, consumer_uid)


def usage(engine: Engine, namespace: str) -> QuotaAmounts:
    """What the namespace's consumers are charged (what their claims hold)."""
    with engine.connect() as connection:
        row = connection.execute(_OTHERS_USAGE, {"namespace": namespace, "consumer_uid": ""}).one()
    return QuotaAmounts(*(int(v) for v in row))


@dataclass(frozen=True, slots=True)
class ChargeRecord:
    """One consumer's charge, as stored."""

    consumer_uid: str
    kind: str
    namespace: str
    name: str
    amounts: QuotaAmounts
    created_at: datetime


def list_charges(engine: Engine, namespace: str | None = None) -> list[ChargeRecord]:
    """Every charge (of one namespace)."""
    query = select(QuotaCharge.__table__)
    if namespace is not None:
        query = query.where(QuotaCharge.namespace == namespace)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return [
        ChargeRecord(
            row.consumer_uid,
            row.consumer_kind,
            row.namespace,
            row.name,
            QuotaAmounts(*(getattr(row, n) for n in COLUMNS)),
            row.created_at,
        )
        for row in rows
    ]


__all__ = [
    "ChargeRecord",
    "QuotaAmounts",
    "QuotaExceeded",
    "QuotaLimits",
    "charge",
    "check",
    "check_room",
    "drop_limits",
    "has_limits",
    "list_charges",
    "recharge_floating_ips",
    "release",
    "release_charge",
    "set_limits",
    "usage",
]
