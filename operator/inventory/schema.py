"""Alembic migrations driven from Python: no alembic.ini is needed at run time.

`upgrade(url)` brings a database to the newest revision (`kubenova db upgrade`);
`check_schema(url)` is what the operator calls at start-up to refuse a stale schema.

Alembic (with Mako and Pygments, 11 MB resident) is imported only to migrate: the running
operator checks the revision by reading the migration files and the version table itself.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from kubenova.operator.inventory.engine import make_engine
from kubenova.operator.inventory.errors import SchemaOutOfDate

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(None|\"([^\"]+)\")", re.M)


def _config() -> Config:
    from alembic.config import Config  # noqa: PLC0415 - only migrating needs alembic

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision shipped with this kubenova: the one no other revision follows."""
    revisions: set[str] = set()
    followed: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for kind, _, value in _REVISION.findall(script.read_text()):
            if value:
                (revisions if kind == "revision" else followed).add(value)
    heads = revisions - followed
    assert len(heads) == 1, f"the migrations must form one line, found heads {sorted(heads)}"
    return heads.pop()


def current_revision(url: str | Engine | None = None) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(VERSION_TABLE):
                return None
            row = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).first()
            return None if row is None else str(row[0])
    finally:
        if engine is not url:
            engine.dispose()


def upgrade(url: str | Engine | None = None, revision: str = "head") -> None:
    """Apply every migration up to `revision` (default: the newest)."""
    from alembic import command  # noqa: PLC0415 - only migrating needs alembic

    engine = url if isinstance(url, Engine) else make_engine(url)
    config = _config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if engine is not url:
            engine.dispose()


def check_schema(url: str | Engine | None = None) -> None:
    """Raise SchemaOutOfDate unless the database is at the newest revision."""
    current, needed = current_revision(url), head_revision()
    if current != needed:
        raise SchemaOutOfDate(current, needed)
