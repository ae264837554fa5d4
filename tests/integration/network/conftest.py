"""A migrated inventory on each backend (SQLite file, real PostgreSQL) for IPAM tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from kubenova.operator import inventory as inv


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    inv.upgrade(db_url)
    engine = inv.make_engine(db_url)
    yield engine
    engine.dispose()
