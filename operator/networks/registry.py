"""A Network's row in the inventory: registered once, refused if it overlaps its project.

A project is a namespace, so two Networks of one namespace must not overlap; Networks of
different projects may (each is its own L2 segment). Registration serialises per
namespace (an advisory lock on PostgreSQL, the write lock on SQLite), so two overlapping
Networks created at once cannot both get in.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import Connection, Engine, delete, func, insert, select, text

from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.models import FixedIp, NetworkRow
from kubenova.operator.networks.errors import CidrOverlap
from kubenova.operator.networks.records import NetworkRecord


def register(engine: Engine, record: NetworkRecord) -> None:
    """Create the network's row (idempotent); CidrOverlap if its project has an overlapping one."""
    with write_transaction(engine) as connection:
        register_in(connection, record)


def register_in(connection: Connection, record: NetworkRecord) -> None:
    """`register` inside the caller's write transaction (an Instance's claim)."""
    if connection.execute(select(NetworkRow.uid).where(NetworkRow.uid == record.uid)).first():
        return
    _lock_namespace(connection, record.namespace)
    others = connection.execute(
        select(NetworkRow.name, NetworkRow.cidr).where(
            NetworkRow.namespace == record.namespace, NetworkRow.uid != record.uid
        )
    ).all()
    for name, cidr in others:
        if ipaddress.IPv4Network(cidr).overlaps(record.cidr):
            raise CidrOverlap(
                f"spec.cidr {record.cidr} overlaps Network {name} ({cidr}) of this "
                "project: choose a CIDR that overlaps no other Network in the namespace"
            )
    connection.execute(
        insert(NetworkRow).values(
            uid=record.uid,
            namespace=record.namespace,
            name=record.name,
            mode=record.mode,
            cidr=str(record.cidr),
            gateway=str(record.gateway),
        )
    )


def is_registered(engine: Engine, uid: str) -> bool:
    with engine.connect() as connection:
        return (
            connection.execute(select(NetworkRow.uid).where(NetworkRow.uid == uid)).first()
            is not None
        )


def unregister(engine: Engine, uid: str) -> int:
    """Drop the network's row (its segment id goes with it) unless NICs remain; their count."""
    with write_transaction(engine) as connection:
        in_use = connection.execute(
            select(func.count()).select_from(FixedIp).where(FixedIp.network_uid == uid)
        ).scalar_one()
        if in_use:
            return int(in_use)
        connection.execute(delete(NetworkRow).where(NetworkRow.uid == uid))
        return 0


def _lock_namespace(connection: Connection, namespace: str) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"net:{namespace}"}
        )
