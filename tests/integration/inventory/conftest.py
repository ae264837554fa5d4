"""An upgraded inventory on each backend (SQLite file, real PostgreSQL) per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from kubenova.operator import inventory as inv


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty inventory."""
    inv.upgrade(db_url)
    engine = inv.make_engine(db_url)
    yield engine
    engine.dispose()


def add_hosts(engine: Engine, *names: str, **capacity: int) -> None:
    """Register Ready hosts with the given capacity (default 8 vCPU / 8 GiB / 100 GiB)."""
    resources = inv.Resources(
        capacity.get("vcpus", 8), capacity.get("memory_mb", 8192), capacity.get("disk_gb", 100)
    )
    for name in names:
        inv.upsert_host(engine, inv.HostRecord(name, resources))
