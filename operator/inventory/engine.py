"""Engines for the inventory database: SQLite by default, PostgreSQL (psycopg 3) by URL.

SQLite runs in WAL mode with foreign keys on and a busy timeout, and writers take the
database lock up front (`BEGIN IMMEDIATE`, see `write_transaction`) so that a claim's
read-check-write cannot interleave with another writer's. On PostgreSQL the same code
locks the host row with `SELECT ... FOR UPDATE`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

URL_ENV = "KUBENOVA_DATABASE_URL"
BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "kubenova_sqlite_begin"


def default_url() -> str:
    """`$KUBENOVA_DATABASE_URL`, else a SQLite file under ~/.local/share/kubenova."""
    from_env = os.environ.get(URL_ENV)
    if from_env:
        return from_env
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return f"sqlite:///{data_home / 'kubenova' / 'inventory.db'}"


def make_engine(
    url: str | None = None, *, sqlite_synchronous: str = "FULL", **engine_options: Any
) -> Engine:
    """An engine for `url` (default: `default_url()`), configured for safe concurrent claims.

    On SQLite, `synchronous=FULL` fsyncs every commit, so a claim survives power loss;
    NORMAL (still safe from corruption, and from a crash of the operator itself) skips it.
    """
    if sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(
            f"sqlite_synchronous must be FULL, NORMAL or EXTRA, not {sqlite_synchronous}"
        )
    url = url or default_url()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **engine_options)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **engine_options)
    synchronous = sqlite_synchronous.upper()

    def configure(dbapi_connection: Any, _record: Any) -> None:
        _configure_sqlite_connection(dbapi_connection, synchronous)

    event.listen(engine, "connect", configure)
    event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, synchronous: str) -> None:
    # Take transaction control away from the sqlite3 module so BEGIN is ours to issue.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    connection.exec_driver_sql(connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN"))


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that serialises with every other writer on SQLite (BEGIN IMMEDIATE).

    On PostgreSQL it is an ordinary READ COMMITTED transaction; callers lock the rows
    they check with `with_for_update()`.
    """
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with connection.begin():
            yield connection


@contextmanager
def connected(bind: Engine | Connection) -> Iterator[Connection]:
    """`bind` itself if it is a connection (reading inside its transaction), else a new one."""
    if isinstance(bind, Connection):
        yield bind
        return
    with bind.connect() as connection:
        yield connection


def upsert_insert(connection: Connection, entity: type[Any]) -> Any:
    """An INSERT into a model's table with the backend's ON CONFLICT clauses available."""
    if connection.dialect.name == "postgresql":
        # Imported here: PostgreSQL's dialect (and the asyncpg one it brings) costs ~15 ms
        # of start-up that a SQLite inventory never needs; a PostgreSQL engine loaded it.
        from sqlalchemy.dialects import postgresql  # noqa: PLC0415

        return postgresql.insert(entity)
    return sqlite.insert(entity)
