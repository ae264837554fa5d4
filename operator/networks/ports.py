"""Fixed IPs and MACs: one per (network, instance), kept until the instance is deleted.

Allocation locks the network's row (FOR UPDATE on PostgreSQL, the write lock on SQLite),
so the lowest free address is taken exactly once; the unique (network, address) and MAC
constraints hold even against a writer that skips the lock. A requested address is given
if it is a free host address of the CIDR, else refused with a message saying why.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.models import FixedIp, FloatingIp, HostRow, InstanceRow, NetworkRow
from kubenova.operator.networks.errors import AddressInUse, AddressUnavailable, PoolExhausted
from kubenova.operator.networks.records import NetworkRecord

# Locally administered unicast (0x52), QEMU's customary prefix.
MAC_PREFIX = "52:54:00"
RACE_RETRIES = 5


@dataclass(frozen=True)
class PortRecord:
    """A NIC's address on a network."""

    consumer_uid: str
    ip: str
    mac: str


@dataclass(frozen=True)
class PortView:
    """A port with what the status shows about it."""

    consumer_uid: str
    instance: str | None
    host: str | None
    ip: str
    mac: str
    floating_ip: str | None


def random_mac() -> str:
    tail = secrets.token_bytes(3)
    return MAC_PREFIX + "".join(f":{b:02x}" for b in tail)


def allocate(
    engine: Engine, network: NetworkRecord, consumer_uid: str, requested: str | None = None
) -> PortRecord:
    """The consumer's port on `network`: existing, the requested address, or the lowest free."""
    for _ in range(RACE_RETRIES):
        try:
            return _allocate_once(engine, network, consumer_uid, requested)
        except IntegrityError:
            continue  # a MAC collision or a writer that raced past the lock: try again
    return _allocate_once(engine, network, consumer_uid, requested)


def _allocate_once(
    engine: Engine, network: NetworkRecord, consumer_uid: str, requested: str | None
) -> PortRecord:
    with write_transaction(engine) as connection:
        return allocate_in(connection, network, consumer_uid, requested)


def allocate_in(
    connection: Connection, network: NetworkRecord, consumer_uid: str, requested: str | None
) -> PortRecord:
    """`allocate` inside the caller's write transaction (an Instance's claim)."""
    connection.execute(
        select(NetworkRow.uid).where(NetworkRow.uid == network.uid).with_for_update()
    )
    existing = connection.execute(
        select(FixedIp.address, FixedIp.mac).where(
            FixedIp.network_uid == network.uid, FixedIp.consumer_uid == consumer_uid
        )
    ).first()
    if existing is not None:
        return PortRecord(consumer_uid, existing.address, existing.mac or "")
    used = _used(connection, network.uid)
    address = _choose(network, used, requested)
    mac = random_mac()
    connection.execute(
        insert(FixedIp).values(
            network_uid=network.uid, address=address, mac=mac, consumer_uid=consumer_uid
        )
    )
    return PortRecord(consumer_uid, address, mac)


def _used(connection: Connection, network_uid: str) -> set[str]:
    rows = connection.execute(select(FixedIp.address).where(FixedIp.network_uid == network_uid))
    return set(rows.scalars())


def _choose(network: NetworkRecord, used: set[str], requested: str | None) -> str:
    if requested is not None:
        return _check_requested(network, used, requested)
    for address in _candidates(network):
        if str(address) not in used:
            return str(address)
    raise PoolExhausted(
        f"every address of {network.cidr} is in use ({len(used)} NICs and the gateway): "
        f"delete an Instance on Network {network.name} or use a larger network"
    )


def _candidates(network: NetworkRecord) -> Iterator[ipaddress.IPv4Address]:
    for address in network.cidr.hosts():
        if address != network.gateway:
            yield address


def _check_requested(network: NetworkRecord, used: set[str], requested: str) -> str:
    try:
        address = ipaddress.IPv4Address(requested)
    except ValueError:
        raise AddressUnavailable(f"{requested!r} is not an IPv4 address") from None
    if address not in network.cidr:
        raise AddressUnavailable(
            f"requested ip {address} is outside Network {network.name} ({network.cidr}): "
            "pick an address inside the CIDR or omit ip"
        )
    why = network.reserved(address)
    if why is not None:
        raise AddressUnavailable(
            f"requested ip {address} is {why} of Network {network.name}: pick another address"
        )
    if str(address) in used:
        raise AddressInUse(
            f"requested ip {address} of Network {network.name} is already in use: pick a free "
            "address or omit ip"
        )
    return str(address)


def release(engine: Engine, consumer_uid: str) -> list[str]:
    """Free every fixed and floating IP the consumer holds; the networks it was on."""
    with write_transaction(engine) as connection:
        networks = list(
            connection.execute(
                select(FixedIp.network_uid).where(FixedIp.consumer_uid == consumer_uid)
            ).scalars()
        )
        connection.execute(delete(FloatingIp).where(FloatingIp.consumer_uid == consumer_uid))
        connection.execute(delete(FixedIp).where(FixedIp.consumer_uid == consumer_uid))
        return networks


def release_orphans(engine: Engine, network_uid: str) -> list[str]:
    """Free the network's addresses whose Instance holds no claim any more; their IPs.

    A NIC is allocated with its Instance's claim (one transaction) and freed before it,
    so an address without a claim leaked (e.g. the Instance went while the operator was down and the
    audit released the claim).
    """
    claimed = select(InstanceRow.uid)
    with write_transaction(engine) as connection:
        leaked = list(
            connection.execute(
                select(FixedIp.address, FixedIp.consumer_uid).where(
                    FixedIp.network_uid == network_uid, FixedIp.consumer_uid.not_in(claimed)
                )
            )
        )
        consumers = {row.consumer_uid for row in leaked}
        if consumers:
            connection.execute(
                delete(FloatingIp).where(
                    FloatingIp.network_uid == network_uid, FloatingIp.consumer_uid.in_(consumers)
                )
            )
            connection.execute(
                delete(FixedIp).where(
                    FixedIp.network_uid == network_uid, FixedIp.consumer_uid.in_(consumers)
                )
            )
        return [row.address for row in leaked]


def ports_of(engine: Engine, network_uid: str) -> list[PortView]:
    """Every port of the network with its instance, host and floating IP, by address."""
    query = (
        select(
            FixedIp.consumer_uid,
            InstanceRow.name,
            HostRow.name.label("host"),
            FixedIp.address,
            FixedIp.mac,
            FloatingIp.address.label("floating"),
        )
        .outerjoin(InstanceRow, InstanceRow.uid == FixedIp.consumer_uid)
        .outerjoin(HostRow, HostRow.id == InstanceRow.host_id)
        .outerjoin(
            FloatingIp,
            (FloatingIp.consumer_uid == FixedIp.consumer_uid)
            & (FloatingIp.network_uid == FixedIp.network_uid),
        )
        .where(FixedIp.network_uid == network_uid)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    views = [
        PortView(r.consumer_uid or "", r.name, r.host, r.address, r.mac or "", r.floating)
        for r in rows
    ]
    return sorted(views, key=lambda v: ipaddress.IPv4Address(v.ip))
