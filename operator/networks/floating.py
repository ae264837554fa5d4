"""Floating IPs: addresses of the external pool, each mapped 1:1 to one NIC's fixed IP.

The address is the primary key, so no two NICs ever hold one; the lowest free address
of the pool is taken and a racing allocator that loses retries.
"""

from __future__ import annotations

import ipaddress

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.models import FloatingIp
from kubenova.operator.networks.errors import PoolExhausted

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


def _unconfigured() -> PoolExhausted:
    return PoolExhausted(
        "floating IPs are not configured (no KUBENOVA_FLOATING_IP_POOL): set "
        "spec.networks[].floatingIP to false or ask an administrator for a pool"
    )


def count_used(engine: Engine) -> int:
    with engine.connect() as connection:
        return len(connection.execute(select(FloatingIp.address)).all())
