"""Host rows: registering hosts, their state, and reading them with their usage."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, func, select, update

from kubenova.operator.inventory.engine import connected, upsert_insert, write_transaction
from kubenova.operator.inventory.models import Allocation, HostRow, utcnow
from kubenova.operator.inventory.records import HostRecord, HostSnapshot
from kubenova.operator.resources import OvercommitRatios, ResourceClass, Resources

READY, NOT_READY = "Ready", "NotReady"

HOST_COLUMNS = (
    HostRow.id,
    HostRow.name,
    HostRow.availability_zone,
    HostRow.state,
    HostRow.schedulable,
    HostRow.services,
    HostRow.vcpus,
    HostRow.memory_mb,
    HostRow.disk_gb,
    HostRow.vcpu_ratio,
    HostRow.memory_ratio,
    HostRow.disk_ratio,
    HostRow.generation,
)


def upsert_host(engine: Engine, record: HostRecord) -> None:
    """Create or update a host from what its Host resource and agent report."""
    upsert_hosts(engine, [record])


def upsert_hosts(engine: Engine, records: Sequence[HostRecord]) -> None:
    """Create or update many hosts in one transaction (one commit for a cluster's hosts),
    with one statement executed for all rows: 1,000 statements built one by one cost seconds
    of start-up, holding the GIL away from the event loop."""
    if not records:
        return
    now = utcnow()
    rows = [
        {
            "name": record.name,
            "availability_zone": record.availability_zone,
            "state": READY if record.ready else NOT_READY,
            "schedulable": record.schedulable,
            "services": list(record.services),
            "vcpus": record.capacity.vcpus,
            "memory_mb": record.capacity.memory_mb,
            "disk_gb": record.capacity.disk_gb,
            "vcpu_ratio": record.overcommit.vcpu,
            "memory_ratio": record.overcommit.memory,
            "disk_ratio": record.overcommit.disk,
            "updated_at": now,
            "generation": 0,
        }
        for record in records
    ]
    with write_transaction(engine) as connection:
        insert = upsert_insert(connection, HostRow)
        updated = {column: insert.excluded[column] for column in rows[0] if column != "name"}
        updated["generation"] = HostRow.generation + 1
        upsert = insert.on_conflict_do_update(index_elements=["name"], set_=updated)
        connection.execute(upsert, rows)


def set_host_ready(engine: Engine, name: str, ready: bool) -> bool:
    """Mark a host Ready or NotReady (heartbeat seen or lost); False if there is no such host."""
    return _update_host(engine, name, state=READY if ready else NOT_READY)


def set_host_schedulable(engine: Engine, name: str, schedulable: bool) -> bool:
    """Enable or disable new placements on a host (admin cordon); False if no such host."""
    return _update_host(engine, name, schedulable=schedulable)


def _update_host(engine: Engine, name: str, **values: object) -> bool:
    with write_transaction(engine) as connection:
        result = connection.execute(
            update(HostRow)
            .where(HostRow.name == name)
            .values(generation=HostRow.generation + 1, updated_at=utcnow(), **values)
        )
        return result.rowcount == 1


def load_hosts(bind: Engine | Connection, names: Iterable[str] | None = None) -> list[HostSnapshot]:
    """Hosts (all, or those named) with their usage, in one read (as `bind` sees them)."""
    with connected(bind) as connection:
        return read_hosts(connection, names)


def read_hosts(connection: Connection, names: Iterable[str] | None = None) -> list[HostSnapshot]:
    """Like load_hosts, on an open connection (inside the caller's transaction)."""
    hosts = select(*HOST_COLUMNS).order_by(HostRow.name)
    usage = select(
        Allocation.host_id, Allocation.resource_class, func.sum(Allocation.amount)
    ).group_by(Allocation.host_id, Allocation.resource_class)
    if names is not None:
        wanted = list(names)
        hosts = hosts.where(HostRow.name.in_(wanted))
        usage = usage.join(HostRow, HostRow.id == Allocation.host_id).where(
            HostRow.name.in_(wanted)
        )
    used: dict[int, dict[ResourceClass, int]] = {}
    for host_id, resource_class, amount in connection.execute(usage):
        used.setdefault(host_id, {})[ResourceClass(resource_class)] = int(amount)
    return [
        snapshot_from_row(row, Resources.from_amounts(used.get(row.id, {})))
        for row in connection.execute(hosts)
    ]


def host_usage(engine: Engine) -> dict[str, Resources]:
    """What is allocated on each host, by host name (hosts with nothing allocated included)."""
    return {snapshot.record.name: snapshot.used for snapshot in load_hosts(engine)}


def snapshot_from_row(row: Any, used: Resources) -> HostSnapshot:
    """A HostSnapshot from a row selected with HOST_COLUMNS."""
    record = HostRecord(
        name=row.name,
        capacity=Resources(row.vcpus, row.memory_mb, row.disk_gb),
        overcommit=OvercommitRatios(row.vcpu_ratio, row.memory_ratio, row.disk_ratio),
        availability_zone=row.availability_zone,
        ready=row.state == READY,
        schedulable=bool(row.schedulable),
        services=tuple(row.services or ()),
    )
    return HostSnapshot(record=record, used=used, generation=row.generation)
