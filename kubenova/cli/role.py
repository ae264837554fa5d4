"""`kubenova role`: the project roles, and granting or revoking them (database backend)."""

from __future__ import annotations

import click

from kubenova.cli.auth_store import auth_store
from kubenova.cli.db import url_option
from kubenova.operator.auth import Role
from kubenova.operator.auth import db as auth_db
from kubenova.operator.auth.rbac import cluster_role_name

ROLE = click.Choice([r.value for r in Role])


@click.group()
def role() -> None:
    """Project roles: admin, member, reader (each bound to a kubenova ClusterRole)."""


@role.command("list")
@url_option
def list_(url: str | None) -> None:
    """Show the roles and the ClusterRole each is bound to."""
    with auth_store(url) as engine:
        roles = auth_db.list_roles(engine)
    click.echo(f"{'ROLE':<8} {'CLUSTERROLE':<24} DESCRIPTION")
    for name, description in roles:
        click.echo(f"{name:<8} {cluster_role_name(Role(name)):<24} {description}")


@role.command("grant")
@click.argument("user")
@click.argument("project")
@click.argument("role_name", metavar="ROLE", type=ROLE)
@url_option
def grant(user: str, project: str, role_name: str, url: str | None) -> None:
    """Give USER the ROLE in PROJECT (bound at the operator's next sync)."""
    with auth_store(url) as engine:
        changed = auth_db.grant(engine, user, project, Role(role_name))
    click.echo(f"{user} {'is now' if changed else 'already was'} {role_name} in {project}")


@role.command("revoke")
@click.argument("user")
@click.argument("project")
@click.argument("role_name", metavar="ROLE", type=ROLE)
@url_option
def revoke(user: str, project: str, role_name: str, url: str | None) -> None:
    """Take the ROLE in PROJECT away from USER."""
    with auth_store(url) as engine:
        changed = auth_db.revoke(engine, user, project, Role(role_name))
    click.echo(f"{user} {'is no longer' if changed else 'was not'} {role_name} in {project}")
