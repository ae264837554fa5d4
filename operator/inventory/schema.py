"""Alembic migrations driven from Python: no alembic.ini is needed at run time.

`upgrade(url)` brings a database to the newest revision (`kubenova db upgrade`);
`check_schema(url)` is what the operator calls at start-up to refuse a stale schema.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from kubenova.operator.inventory.engine import make_engine
from kubenova.operator.inventory.errors import SchemaOutOfDate

MIGRATIONS = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision shipped with this kubenova."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder ships at least one revision"
    return head


def current_revision(url: str | Engine | None = None) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if engine is not url:
            engine.dispose()


def upgrade(url: str | Engine | None = None, revision: str = "head") -> None:
    """Apply every migration up to `revision` (default: the newest)."""
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
