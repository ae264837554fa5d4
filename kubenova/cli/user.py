"""`kubenova user`: users of the database auth backend (the LDAP backend reads its directory)."""

from __future__ import annotations

import sys

import click

from kubenova.cli.auth_store import auth_store
from kubenova.cli.db import url_option
from kubenova.operator.auth import db as auth_db


@click.group()
def user() -> None:
    """Users: who may hold a project role (the name is their Kubernetes user name)."""


@user.command("create")
@click.argument("name")
@click.option("--email", default="", help="Contact address.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input (one line); without it the user has none.",
)
@url_option
def create(name: str, email: str, password_stdin: bool, url: str | None) -> None:
    """Add a user; its password is stored as an argon2id hash only."""
    password = _read_password() if password_stdin else None
    with auth_store(url) as engine:
        auth_db.create_user(engine, name, email=email, password=password)
    click.echo(f"user {name} created")


@user.command("passwd")
@click.argument("name")
@url_option
def passwd(name: str, url: str | None) -> None:
    """Set a user's password, read from standard input."""
    password = _read_password()
    with auth_store(url) as engine:
        auth_db.set_password(engine, name, password)
    click.echo(f"password of {name} changed")


@user.command("disable")
@click.argument("name")
@url_option
def disable(name: str, url: str | None) -> None:
    """Unbind the user everywhere at the next sync and refuse its logins (memberships stay)."""
    with auth_store(url) as engine:
        auth_db.set_enabled(engine, name, False)
    click.echo(f"user {name} disabled")


@user.command("enable")
@click.argument("name")
@url_option
def enable(name: str, url: str | None) -> None:
    """Undo `disable`."""
    with auth_store(url) as engine:
        auth_db.set_enabled(engine, name, True)
    click.echo(f"user {name} enabled")


@user.command("delete")
@click.argument("name")
@url_option
def delete(name: str, url: str | None) -> None:
    """Remove a user and its memberships."""
    with auth_store(url) as engine:
        auth_db.delete_user(engine, name)
    click.echo(f"user {name} deleted")


@user.command("list")
@url_option
def list_(url: str | None) -> None:
    """Show every user."""
    with auth_store(url) as engine:
        users = auth_db.list_users(engine)
    click.echo(f"{'NAME':<24} {'EMAIL':<32} {'ENABLED':<8} PASSWORD")
    for record in users:
        enabled = "yes" if record.enabled else "no"
        password = "set" if record.has_password else "-"
        click.echo(f"{record.name:<24} {record.email:<32} {enabled:<8} {password}")


def _read_password() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise click.ClickException("the password read from standard input is empty")
    return password
