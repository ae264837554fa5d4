"""The inventory database as `kubenova user|project|role` open it: checked, errors as one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy import Engine

from kubenova.operator import inventory as inv
from kubenova.operator.auth.backend import AuthError
from kubenova.operator.auth.db import AlreadyExists


@contextmanager
def auth_store(url: str | None) -> Iterator[Engine]:
    """An engine on a current schema; refusals (unknown names, duplicates) become CLI errors."""
    engine = inv.make_engine(url)
    try:
        inv.check_schema(engine)
        yield engine
    except (inv.SchemaOutOfDate, AuthError, AlreadyExists) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
