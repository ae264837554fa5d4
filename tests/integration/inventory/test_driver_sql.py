"""The claim's statements on the driver's cursor behave as SQLAlchemy's did, on both backends:
rows read back through SQLAlchemy as its own, driver errors arrive as SQLAlchemy's, and a
savepoint undoes its block only."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import driver_sql, quotas
from kubenova.operator.inventory.claims import insert_allocations
from kubenova.operator.inventory.models import Allocation, HostRow, InstanceRow, utcnow
from tests.integration.inventory.conftest import add_hosts

SMALL = inv.Resources(vcpus=1, memory_mb=1024, disk_gb=10)


def test_timestamps_written_on_the_cursor_read_back_like_sqlalchemys(engine: Engine) -> None:
    add_hosts(engine, "node-1")  # its updated_at is written by SQLAlchemy
    before = utcnow()
    inv.claim(engine, inv.Consumer("uid-1", "vm-1", "demo"), "node-1", SMALL)
    with engine.connect() as connection:
        host_updated = connection.execute(select(HostRow.updated_at)).scalar_one()
        allocated = connection.execute(select(Allocation.created_at)).scalars().all()
        recorded = connection.execute(select(InstanceRow.created_at)).scalar_one()
    (charge,) = quotas.list_charges(engine, "demo")
    for value in (*allocated, recorded, charge.created_at):
        assert type(value) is type(host_updated)
        assert value.tzinfo == host_updated.tzinfo
        assert value.replace(tzinfo=None) >= before.replace(tzinfo=None)
    assert charge.amounts == quotas.QuotaAmounts(instances=1, vcpus=1, memory_mib=1024)


def test_a_driver_error_is_raised_as_sqlalchemys(engine: Engine) -> None:
    add_hosts(engine, "node-1")
    inv.claim(engine, inv.Consumer("uid-1", "vm-1", "demo"), "node-1", SMALL)
    with inv.write_transaction(engine) as connection:
        (row,) = driver_sql.run(connection, "lock_host", {"host": "node-1"})
        # The same consumer and resource class again: the unique constraint refuses it.
        with pytest.raises(IntegrityError), inv.savepoint(connection):
            insert_allocations(connection, inv.Consumer("uid-1", "vm-1", "demo"), row[0], SMALL)
    assert inv.find_claim(engine, "uid-1") == inv.Claim("uid-1", "node-1", SMALL, created=False)


def test_a_savepoint_undoes_its_block_and_keeps_the_rest(engine: Engine) -> None:
    add_hosts(engine, "node-1", vcpus=1)
    with inv.write_transaction(engine) as connection:
        with inv.savepoint(connection):
            inv.claim_in(connection, inv.Consumer("uid-1", "vm-1", "demo"), "node-1", SMALL)
        with pytest.raises(inv.InsufficientCapacity), inv.savepoint(connection):
            # Charged first, then refused by the full host: the charge is undone too.
            inv.claim_in(connection, inv.Consumer("uid-2", "vm-2", "demo"), "node-1", SMALL)
    assert inv.find_claim(engine, "uid-1") is not None
    assert inv.find_claim(engine, "uid-2") is None
    assert [c.consumer_uid for c in quotas.list_charges(engine, "demo")] == ["uid-1"]
