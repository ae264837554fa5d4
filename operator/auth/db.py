"""The database auth backend: users, projects, roles and memberships in the inventory DB.

Management (what `kubenova user|project|role` call) and the backend the operator reads
share these functions. Passwords are stored as argon2id hashes only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from kubenova.operator.auth.backend import Member, NoSuchEntity, Role, UserInfo
from kubenova.operator.auth.passwords import hash_password, needs_rehash, verify_password
from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.models import AuthProject, Membership, RoleRow, User


class AlreadyExists(ValueError):
    """A user or project of that name exists already."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user row, without its password hash."""

    name: str
    email: str
    enabled: bool
    has_password: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ProjectRecord:
    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Grant:
    """One membership: `user` holds `role` in `project`."""

    user: str
    project: str
    role: Role


class DatabaseBackend:
    """Reads members and users from the inventory database."""

    name = "database"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def members(self, project: str) -> frozenset[Member]:
        query = (
            select(User.name, Membership.role)
            .join(Membership, Membership.user_id == User.id)
            .join(AuthProject, AuthProject.id == Membership.project_id)
            .where(AuthProject.name == project, User.enabled.is_(True))
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return frozenset(Member(name, Role(role)) for name, role in rows)

    def user(self, name: str) -> UserInfo | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(User.name, User.email).where(User.name == name, User.enabled.is_(True))
            ).one_or_none()
        return UserInfo(row.name, row.email) if row else None

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        with self.engine.connect() as connection:
            row = connection.execute(
                select(User.name, User.email, User.password_hash).where(
                    User.name == name, User.enabled.is_(True)
                )
            ).one_or_none()
        if row is None or not verify_password(row.password_hash, password):
            return None
        if needs_rehash(row.password_hash):
            set_password(self.engine, name, password)
        return UserInfo(row.name, row.email)

    def close(self) -> None:
        """The engine belongs to the caller."""


# -- users -----------------------------------------------------------------------------------


def create_user(engine: Engine, name: str, *, email: str = "", password: str | None = None) -> None:
    """Add a user (AlreadyExists if the name is taken)."""
    hashed = hash_password(password) if password is not None else None
    try:
        with write_transaction(engine) as connection:
            connection.execute(
                insert(User).values(name=name, email=email, password_hash=hashed, enabled=True)
            )
    except IntegrityError as exc:
        raise AlreadyExists(f"user {name} exists already") from exc


def set_password(engine: Engine, name: str, password: str) -> None:
    """Replace the user's password hash."""
    _update_user(engine, name, password_hash=hash_password(password))


def set_enabled(engine: Engine, name: str, enabled: bool) -> None:
    """A disabled user keeps its memberships but is bound nowhere and cannot log in."""
    _update_user(engine, name, enabled=enabled)


def delete_user(engine: Engine, name: str) -> None:
    """Remove the user and its memberships."""
    with write_transaction(engine) as connection:
        user_id = _user_id(connection, name)
        connection.execute(delete(Membership).where(Membership.user_id == user_id))
        connection.execute(delete(User).where(User.id == user_id))


def list_users(engine: Engine) -> list[UserRecord]:
    with engine.connect() as connection:
        rows = connection.execute(select(User.__table__).order_by(User.name)).all()
    return [
        UserRecord(r.name, r.email, r.enabled, r.password_hash is not None, r.created_at)
        for r in rows
    ]


def _update_user(engine: Engine, name: str, **values: object) -> None:
    with write_transaction(engine) as connection:
        result = connection.execute(update(User).where(User.name == name).values(**values))
        if result.rowcount == 0:
            raise NoSuchEntity(f"no user {name}: `kubenova user list` shows who there is")


def _user_id(connection: Connection, name: str) -> int:
    found = connection.execute(select(User.id).where(User.name == name)).scalar_one_or_none()
    if found is None:
        raise NoSuchEntity(f"no user {name}: `kubenova user list` shows who there is")
    return found


# -- projects --------------------------------------------------------------------------------


def create_project(engine: Engine, name: str, *, description: str = "") -> None:
    """Add a project (AlreadyExists if the name is taken)."""
    try:
        with write_transaction(engine) as connection:
            connection.execute(insert(AuthProject).values(name=name, description=description))
    except IntegrityError as exc:
        raise AlreadyExists(f"project {name} exists already") from exc


def delete_project(engine: Engine, name: str) -> None:
    """Remove the project and its memberships (the Project resource is separate)."""
    with write_transaction(engine) as connection:
        project_id = _project_id(connection, name)
        connection.execute(delete(Membership).where(Membership.project_id == project_id))
        connection.execute(delete(AuthProject).where(AuthProject.id == project_id))


def list_projects(engine: Engine) -> list[ProjectRecord]:
    with engine.connect() as connection:
        rows = connection.execute(select(AuthProject.__table__).order_by(AuthProject.name)).all()
    return [ProjectRecord(r.name, r.description, r.created_at) for r in rows]


def _project_id(connection: Connection, name: str) -> int:
    found = connection.execute(
        select(AuthProject.id).where(AuthProject.name == name)
    ).scalar_one_or_none()
    if found is None:
        raise NoSuchEntity(f"no project {name}: `kubenova project list` shows what there is")
    return found


# -- roles -----------------------------------------------------------------------------------


def list_roles(engine: Engine) -> list[tuple[str, str]]:
    """(role, description) pairs."""
    with engine.connect() as connection:
        rows = connection.execute(select(RoleRow.name, RoleRow.description)).all()
    return sorted((r.name, r.description) for r in rows)


def grant(engine: Engine, user: str, project: str, role: Role) -> bool:
    """Give `user` `role` in `project`; False if it already had it."""
    with write_transaction(engine) as connection:
        user_id, project_id = _user_id(connection, user), _project_id(connection, project)
        held = connection.execute(
            select(Membership.role).where(
                Membership.user_id == user_id,
                Membership.project_id == project_id,
                Membership.role == role.value,
            )
        ).first()
        if held:
            return False
        connection.execute(
            insert(Membership).values(user_id=user_id, project_id=project_id, role=role.value)
        )
        return True


def revoke(engine: Engine, user: str, project: str, role: Role) -> bool:
    """Take `role` in `project` away from `user`; False if it did not hold it."""
    with write_transaction(engine) as connection:
        user_id, project_id = _user_id(connection, user), _project_id(connection, project)
        result = connection.execute(
            delete(Membership).where(
                Membership.user_id == user_id,
                Membership.project_id == project_id,
                Membership.role == role.value,
            )
        )
        return bool(result.rowcount)


def list_grants(engine: Engine, project: str | None = None) -> list[Grant]:
    """Every membership (of one project), sorted."""
    query = (
        select(User.name, AuthProject.name, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .join(AuthProject, AuthProject.id == Membership.project_id)
    )
    if project is not None:
        query = query.where(AuthProject.name == project)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return sorted(
        (Grant(user, proj, Role(role)) for user, proj, role in rows),
        key=lambda g: (g.project, g.user, g.role),
    )
