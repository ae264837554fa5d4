"""The database backend and `kubenova user|project|role` on SQLite and a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from kubenova.cli.main import cli
from kubenova.operator import inventory as inv
from kubenova.operator.auth import Member, Role
from kubenova.operator.auth import db as auth_db
from kubenova.operator.auth.backend import NoSuchEntity
from kubenova.operator.inventory.models import User


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    inv.upgrade(db_url)
    engine = inv.make_engine(db_url)
    yield engine
    engine.dispose()


def kubenova(db_url: str, *args: str, input: str | None = None) -> str:
    result = CliRunner().invoke(cli, [*args, "--url", db_url], input=input)
    assert result.exit_code == 0, result.output
    return result.output


def test_members_are_the_enabled_users_granted_a_role(engine: Engine) -> None:
    backend = auth_db.DatabaseBackend(engine)
    for name in ("alice", "bob", "carol"):
        auth_db.create_user(engine, name)
    auth_db.create_project(engine, "alpha")
    auth_db.create_project(engine, "beta")
    assert auth_db.grant(engine, "alice", "alpha", Role.ADMIN)
    assert not auth_db.grant(engine, "alice", "alpha", Role.ADMIN)  # idempotent
    auth_db.grant(engine, "bob", "alpha", Role.MEMBER)
    auth_db.grant(engine, "carol", "beta", Role.READER)
    assert backend.members("alpha") == {Member("alice", Role.ADMIN), Member("bob", Role.MEMBER)}
    auth_db.set_enabled(engine, "bob", False)
    assert backend.members("alpha") == {Member("alice", Role.ADMIN)}
    assert auth_db.revoke(engine, "alice", "alpha", Role.ADMIN)
    assert backend.members("alpha") == frozenset()
    assert backend.members("nonexistent") == frozenset()
    auth_db.delete_project(engine, "beta")
    assert auth_db.list_grants(engine) == [auth_db.Grant("bob", "alpha", Role.MEMBER)]


def test_passwords_are_stored_as_argon2id_hashes_only(engine: Engine) -> None:
    backend = auth_db.DatabaseBackend(engine)
    auth_db.create_user(engine, "alice", email="a@example.org", password="correct horse")
    with engine.connect() as connection:
        stored = connection.execute(select(User.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "correct horse" not in stored
    user = backend.authenticate("alice", "correct horse")
    assert user is not None
    assert (user.name, user.email) == ("alice", "a@example.org")
    assert backend.authenticate("alice", "wrong") is None
    assert backend.authenticate("alice", "") is None
    auth_db.create_user(engine, "nopass")
    assert backend.authenticate("nopass", "") is None
    auth_db.set_enabled(engine, "alice", False)
    assert backend.authenticate("alice", "correct horse") is None
    assert backend.user("alice") is None


def test_management_refuses_unknown_names_and_duplicates(engine: Engine) -> None:
    auth_db.create_user(engine, "alice")
    with pytest.raises(auth_db.AlreadyExists, match="user alice exists already"):
        auth_db.create_user(engine, "alice")
    with pytest.raises(NoSuchEntity, match="no project alpha"):
        auth_db.grant(engine, "alice", "alpha", Role.ADMIN)
    with pytest.raises(NoSuchEntity, match="no user bob"):
        auth_db.set_password(engine, "bob", "x")


def test_deleting_a_user_removes_its_memberships(engine: Engine) -> None:
    auth_db.create_user(engine, "alice")
    auth_db.create_project(engine, "alpha")
    auth_db.grant(engine, "alice", "alpha", Role.MEMBER)
    auth_db.delete_user(engine, "alice")
    assert auth_db.list_grants(engine) == []
    assert auth_db.DatabaseBackend(engine).members("alpha") == frozenset()


def test_the_cli_manages_users_projects_and_roles(db_url: str, engine: Engine) -> None:
    assert "user alice created" in kubenova(
        db_url, "user", "create", "alice", "--email", "a@x.org", "--password-stdin", input="pw\n"
    )
    kubenova(db_url, "user", "create", "bob")
    kubenova(db_url, "project", "create", "alpha", "--description", "the alpha team")
    assert "alice is now admin in alpha" in kubenova(
        db_url, "role", "grant", "alice", "alpha", "admin"
    )
    assert "already was" in kubenova(db_url, "role", "grant", "alice", "alpha", "admin")
    kubenova(db_url, "role", "grant", "bob", "alpha", "reader")
    members = kubenova(db_url, "project", "members", "alpha").splitlines()
    assert members[1:] == ["alice                    admin", "bob                      reader"]
    users = kubenova(db_url, "user", "list")
    assert "alice                    a@x.org                          yes      set" in users
    assert "bob " in users
    roles = kubenova(db_url, "role", "list")
    assert "member   kubenova-project-member" in roles
    assert "the alpha team" in kubenova(db_url, "project", "list")
    assert auth_db.DatabaseBackend(engine).authenticate("alice", "pw") is not None
    kubenova(db_url, "user", "passwd", "alice", input="new password\n")
    assert auth_db.DatabaseBackend(engine).authenticate("alice", "new password") is not None
    kubenova(db_url, "role", "revoke", "bob", "alpha", "reader")
    kubenova(db_url, "user", "disable", "alice")
    assert auth_db.DatabaseBackend(engine).members("alpha") == frozenset()


def test_the_cli_says_what_is_wrong_in_one_line(db_url: str, engine: Engine) -> None:
    runner = CliRunner()
    unknown = runner.invoke(cli, ["role", "grant", "ghost", "alpha", "admin", "--url", db_url])
    assert unknown.exit_code == 1
    assert "Error: no user ghost: `kubenova user list` shows who there is" in unknown.output
    bad_role = runner.invoke(cli, ["role", "grant", "ghost", "alpha", "owner", "--url", db_url])
    assert bad_role.exit_code == 2
    assert "'owner' is not one of 'admin', 'member', 'reader'" in bad_role.output
    empty = runner.invoke(
        cli, ["user", "create", "x", "--password-stdin", "--url", db_url], input="\n"
    )
    assert "the password read from standard input is empty" in empty.output


def test_the_cli_refuses_a_database_that_was_never_migrated(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["user", "list", "--url", f"sqlite:///{tmp_path}/x.db"])
    assert result.exit_code == 1
    assert "run `kubenova db upgrade`" in result.output
