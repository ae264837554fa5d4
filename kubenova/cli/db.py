"""`kubenova db`: migrate the operator's SQL inventory and show its revision."""

from __future__ import annotations

import click

from kubenova.operator.inventory import engine as inventory_engine
from kubenova.operator.inventory import schema

url_option = click.option(
    "--url",
    envvar=inventory_engine.URL_ENV,
    default=None,
    show_envvar=True,
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/kubenova "
    "(default: SQLite under ~/.local/share/kubenova).",
)


@click.group()
def db() -> None:
    """The operator's SQL inventory (hosts, allocations, addresses, targets)."""


@db.command()
@url_option
def upgrade(url: str | None) -> None:
    """Apply every pending migration."""
    url = url or inventory_engine.default_url()
    before = schema.current_revision(url)
    schema.upgrade(url)
    after = schema.current_revision(url)
    if before == after:
        click.echo(f"already at revision {after}")
    else:
        click.echo(f"upgraded from {before or 'an empty database'} to {after}")


@db.command()
@url_option
def current(url: str | None) -> None:
    """Show the database's revision and the one this kubenova needs (exit 1 if they differ)."""
    revision = schema.current_revision(url)
    head = schema.head_revision()
    click.echo(f"database: {revision or 'none (empty database)'}")
    click.echo(f"needed:   {head}")
    if revision != head:
        raise click.ClickException("the schema is out of date: run `kubenova db upgrade`")
