"""Floating IPs: addresses of the external pool, each mapped 1:1 to one NIC's fixed IP.

The address is the primary key, so no two NICs ever hold one; the lowest free address
of the pool is taken and a racing allocator that loses retries. `follow` makes what an
Instance holds match what its NICs ask for after placement (associate / release).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from sqlalchemy import Connection, Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.models import FixedIp, FloatingIp
from kubenova.operator.networks.errors import PoolExhausted
from kubenova.operator.resources import Consumer

Pool = tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]
RACE_RETRIES = 5


def allocate(
    engine: Engine, pool: Pool | None, network_uid: str, consumer_uid: str, fixed: str
) -> str:
    """The NIC's floating IP, allocating the lowest free one of `pool` the first time."""
    if pool is None:
        raise _unconfigured()
    for _ in range(RACE_RETRIES):
        try:
            return _allocate_once(engine, pool, network_uid, consumer_uid, fixed)
        except IntegrityError:
            continue
    return _allocate_once(engine, pool, network_uid, consumer_uid, fixed)


def _allocate_once(
    engine: Engine, pool: Pool, network_uid: str, consumer_uid: str, fixed: str
) -> str:
    with write_transaction(engine) as connection:
        return allocate_in(connection, pool, network_uid, consumer_uid, fixed)


def allocate_in(
    connection: Connection, pool: Pool | None, network_uid: str, consumer_uid: str, fixed: str
) -> str:
    """`allocate` inside the caller's write transaction (an Instance's claim)."""
    if pool is None:
        raise _unconfigured()
    held = connection.execute(
        select(FloatingIp.address).where(
            FloatingIp.network_uid == network_uid, FloatingIp.consumer_uid == consumer_uid
        )
    ).scalar_one_or_none()
    if held is not None:
        return str(held)
    used = set(connection.execute(select(FloatingIp.address)).scalars())
    first, last = pool
    for number in range(int(first), int(last) + 1):
        address = str(ipaddress.IPv4Address(number))
        if address not in used:
            connection.execute(
                insert(FloatingIp).values(
                    address=address,
                    network_uid=network_uid,
                    consumer_uid=consumer_uid,
                    fixed_address=fixed,
                )
            )
            return address
    raise PoolExhausted(
        f"every floating IP of the pool {first}-{last} is in use: release one (delete an "
        "Instance that holds one) or ask an administrator to widen KUBENOVA_FLOATING_IP_POOL",
        reason="FloatingIPPoolExhausted",
    )


def follow(
    engine: Engine, pool: Pool | None, consumer: Consumer, wishes: Sequence[tuple[str, bool]]
) -> Mapping[str, str]:
    """Give the Instance a floating IP on each network it wants one on and release the
    others, re-charging its project's floatingIPs quota, all in one transaction (nothing
    half-done); network uid -> address held afterwards. Idempotent per (Instance, network).

    `wishes`: (network uid, wanted) per NIC. Raises QuotaExceeded or PoolExhausted,
    having written nothing.
    """
    for _ in range(RACE_RETRIES):
        try:
            with write_transaction(engine) as connection:
                return follow_in(connection, pool, consumer, wishes)
        except IntegrityError:
            continue  # a racing allocator took the same address first
    with write_transaction(engine) as connection:
        return follow_in(connection, pool, consumer, wishes)


def follow_in(
    connection: Connection,
    pool: Pool | None,
    consumer: Consumer,
    wishes: Sequence[tuple[str, bool]],
) -> Mapping[str, str]:
    """`follow` inside the caller's write transaction."""
    uid = consumer.uid
    held: dict[str, str] = {
        row.network_uid: row.address
        for row in connection.execute(
            select(FloatingIp.network_uid, FloatingIp.address).where(FloatingIp.consumer_uid == uid)
        )
    }
    fixed = {
        row.network_uid: row.address
        for row in connection.execute(
            select(FixedIp.network_uid, FixedIp.address).where(FixedIp.consumer_uid == uid)
        )
    }
    # Only NICs that have their fixed IP can map one (all of a placed Instance's do).
    wanted = {network for network, on in wishes if on and network in fixed}
    if wanted == set(held):
        return held
    # Lock order of every claim: the quota first, then the addresses.
    quotas.recharge_floating_ips(connection, consumer, len(wanted))
    gone = set(held) - wanted
    if gone:
        connection.execute(
            delete(FloatingIp).where(
                FloatingIp.consumer_uid == uid, FloatingIp.network_uid.in_(gone)
            )
        )
    for network in sorted(wanted - set(held)):
        held[network] = allocate_in(connection, pool, network, uid, fixed[network])
    return {network: held[network] for network in wanted}


def _unconfigured() -> PoolExhausted:
    return PoolExhausted(
        "floating IPs are not configured (no KUBENOVA_FLOATING_IP_POOL): set "
        "spec.networks[].floatingIP to false or ask an administrator for a pool"
    )


def count_used(engine: Engine) -> int:
    with engine.connect() as connection:
        return len(connection.execute(select(FloatingIp.address)).all())
