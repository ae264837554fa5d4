"""A claim's per-placement statements, run on the database driver's own cursor.

A claim runs about ten statements. Through SQLAlchemy each costs 10-40 µs of Python
(statement cache lookup, execution context, parameter and result processing) against 1-2
µs on the DBAPI cursor, and a drain runs them thousands of times on the thread that holds
the group-commit lock. So the hot ones are written here once as SQL, in SQLite's named
parameter style, and translated for psycopg (`%(name)s`, whose prepared-statement cache
then prepares each on the server). A driver error is raised as the SQLAlchemy exception
it maps to (IntegrityError, OperationalError...), so callers catch what they always did.
Everything else in the inventory stays SQLAlchemy: these statements run inside its
connection's transaction, on the same DBAPI connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, DateTime
from sqlalchemy.exc import DBAPIError

Params = Mapping[str, Any]

# SQLite ignores row locks (BEGIN IMMEDIATE took the whole database); PostgreSQL needs them.
_LOCK = "{for_update}"
STATEMENTS: dict[str, str] = {
    "read_claim": "SELECT h.name, a.resource_class, a.amount FROM allocations a"
    " JOIN hosts h ON h.id = a.host_id WHERE a.consumer_uid = :consumer_uid",
    "lock_limits": "SELECT project, instances, vcpus, memory_mib, volumes, volume_gib,"
    f" floating_ips FROM quota_limits WHERE namespace = :namespace{_LOCK}",
    "charge": "INSERT INTO quota_charges (consumer_uid, consumer_kind, namespace, name,"
    " instances, vcpus, memory_mib, volumes, volume_gib, floating_ips, created_at)"
    " VALUES (:consumer_uid, :consumer_kind, :namespace, :name, :instances, :vcpus,"
    " :memory_mib, :volumes, :volume_gib, :floating_ips, :created_at)"
    " ON CONFLICT (consumer_uid) DO UPDATE SET instances = excluded.instances,"
    " vcpus = excluded.vcpus, memory_mib = excluded.memory_mib, volumes = excluded.volumes,"
    " volume_gib = excluded.volume_gib, floating_ips = excluded.floating_ips",
    "lock_host": "SELECT id, vcpus, memory_mb, disk_gb, vcpu_ratio, memory_ratio, disk_ratio"
    f" FROM hosts WHERE name = :host{_LOCK}",
    "host_usage": "SELECT resource_class, SUM(amount) FROM allocations"
    " WHERE host_id = :host_id GROUP BY resource_class",
    "insert_allocation": "INSERT INTO allocations (consumer_uid, consumer_kind,"
    " consumer_namespace, consumer_name, host_id, resource_class, amount, created_at)"
    " VALUES (:consumer_uid, :consumer_kind, :consumer_namespace, :consumer_name, :host_id,"
    " :resource_class, :amount, :created_at)",
    "record_instance": "INSERT INTO instances (uid, namespace, name, host_id,"
    " server_group_uid, created_at) VALUES (:uid, :namespace, :name, :host_id,"
    " :server_group_uid, :created_at) ON CONFLICT (uid) DO UPDATE SET"
    " namespace = excluded.namespace, name = excluded.name, host_id = excluded.host_id,"
    " server_group_uid = excluded.server_group_uid",
    "ensure_group": "INSERT INTO server_groups (uid, namespace, name, policy)"
    " VALUES (:group_uid, :namespace, :name, :policy) ON CONFLICT (uid) DO NOTHING",
    "lock_group": f"SELECT uid FROM server_groups WHERE uid = :group_uid{_LOCK}",
    "member_hosts": "SELECT DISTINCT h.name FROM hosts h JOIN server_group_members m"
    " ON m.host_id = h.id WHERE m.group_uid = :group_uid AND m.consumer_uid != :consumer_uid",
    "insert_member": "INSERT INTO server_group_members (group_uid, consumer_uid, host_id)"
    " VALUES (:group_uid, :consumer_uid, :host_id)",
    "bump_generation": "UPDATE hosts SET generation = generation + 1 WHERE id = :host_id",
    "savepoint": "SAVEPOINT kubenova_claim",
    "release_savepoint": "RELEASE SAVEPOINT kubenova_claim",
    "rollback_savepoint": "ROLLBACK TO SAVEPOINT kubenova_claim",
}


class _Dialect:
    """The statements and the timestamp form of one dialect, prepared once."""

    def __init__(self, connection: Connection) -> None:
        dialect = connection.dialect
        postgres = dialect.name == "postgresql"
        lock = " FOR UPDATE" if postgres else ""
        self.sql = {
            name: _pyformat(text.replace(_LOCK, lock)) if postgres else text.replace(_LOCK, lock)
            for name, text in STATEMENTS.items()
        }
        # The column type's own bind processor: SQLite stores the text SQLAlchemy writes
        # (and parses back); psycopg takes the aware datetime as it is.
        process = DateTime(timezone=True).dialect_impl(dialect).bind_processor(dialect)
        self.timestamp: Callable[[datetime], Any] = process or (lambda value: value)
        self.error: type[Exception] = dialect.loaded_dbapi.Error


_DIALECTS: dict[str, _Dialect] = {}


def _pyformat(text: str) -> str:
    return re.sub(r":(\w+)", r"%(\1)s", text)


def _dialect(connection: Connection) -> _Dialect:
    name = connection.dialect.name
    if name not in _DIALECTS:
        _DIALECTS[name] = _Dialect(connection)
    return _DIALECTS[name]


def timestamp(connection: Connection, value: datetime) -> Any:
    """`value` as the driver is handed a DateTime column's value."""
    return _dialect(connection).timestamp(value)


def run(connection: Connection, name: str, params: Params | None = None) -> list[Sequence[Any]]:
    """Run the named statement in `connection`'s transaction; its rows (none for writes)."""
    known = _dialect(connection)
    sql = known.sql[name]
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, params or {})
        return list(cursor.fetchall()) if cursor.description else []
    except known.error as exc:
        raise _translated(connection, sql, params, exc) from exc
    finally:
        cursor.close()


@contextmanager
def savepoint(connection: Connection) -> Iterator[None]:
    """`connection.begin_nested()` for one claim of a batch: undone if the block raises."""
    run(connection, "savepoint")
    try:
        yield
    except BaseException:
        run(connection, "rollback_savepoint")
        run(connection, "release_savepoint")
        raise
    run(connection, "release_savepoint")


def run_many(connection: Connection, name: str, rows: Iterable[Params]) -> None:
    """Run the named write once per row, in one driver call."""
    known = _dialect(connection)
    sql = known.sql[name]
    rows = list(rows)
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, rows)
    except known.error as exc:
        raise _translated(connection, sql, rows, exc) from exc
    finally:
        cursor.close()


def _translated(connection: Connection, sql: str, params: Any, error: Exception) -> Exception:
    """The SQLAlchemy exception SQLAlchemy itself would have raised for `error`."""
    dialect = connection.dialect
    return DBAPIError.instance(sql, params, error, dialect.loaded_dbapi.Error, dialect=dialect)
