"""`kubenova project`: projects of the database auth backend and who holds which role in them.

A project here is the membership list of the Project resource of the same name
(`kubectl apply` a Project to get its namespace, RoleBindings and quota).
"""

from __future__ import annotations

import click

from kubenova.cli.auth_store import auth_store
from kubenova.cli.db import url_option
from kubenova.operator.auth import db as auth_db


@click.group()
def project() -> None:
    """Projects: the membership lists behind Project resources."""


@project.command("create")
@click.argument("name")
@click.option("--description", default="", help="Free text.")
@url_option
def create(name: str, description: str, url: str | None) -> None:
    """Add a project (named like its Project resource)."""
    with auth_store(url) as engine:
        auth_db.create_project(engine, name, description=description)
    click.echo(f"project {name} created")


@project.command("delete")
@click.argument("name")
@url_option
def delete(name: str, url: str | None) -> None:
    """Remove a project and its memberships (its RoleBindings go at the next sync)."""
    with auth_store(url) as engine:
        auth_db.delete_project(engine, name)
    click.echo(f"project {name} deleted")


@project.command("list")
@url_option
def list_(url: str | None) -> None:
    """Show every project."""
    with auth_store(url) as engine:
        projects = auth_db.list_projects(engine)
    click.echo(f"{'NAME':<24} DESCRIPTION")
    for record in projects:
        click.echo(f"{record.name:<24} {record.description}")


@project.command("members")
@click.argument("name")
@url_option
def members(name: str, url: str | None) -> None:
    """Show who holds which role in a project."""
    with auth_store(url) as engine:
        grants = auth_db.list_grants(engine, name)
    click.echo(f"{'USER':<24} ROLE")
    for grant in grants:
        click.echo(f"{grant.user:<24} {grant.role}")
