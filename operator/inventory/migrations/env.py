"""Alembic environment: runs on the connection `kubenova.operator.inventory.schema` hands in."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from kubenova.operator.inventory.models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "kubenova migrations run through `kubenova db upgrade` "
        "(kubenova.operator.inventory.schema.upgrade), not the alembic CLI"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode recreates tables instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
