"""The auth backend contract: who is a member of a project, in which role; who a user is.

AuthError (a kubenova.errors.KubenovaError)
├── BackendUnavailable   the directory or database cannot be reached; retry later
└── NoSuchEntity         a management call named a user, project or role that is not there
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from kubenova.errors import KubenovaError


class Role(enum.StrEnum):
    """A project role; each maps to one kubenova ClusterRole (see `auth.rbac`)."""

    ADMIN = "admin"
    MEMBER = "member"
    READER = "reader"


@dataclass(frozen=True, slots=True, order=True)
class Member:
    """A user holding a role in a project; `user` is the Kubernetes user name."""

    user: str
    role: Role


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as the backend knows it."""

    name: str
    email: str = ""
    display_name: str = ""


class AuthError(KubenovaError):
    """Base of what the auth backends raise on purpose."""


class BackendUnavailable(AuthError):
    """The backend could not be asked (directory down, bad bind credentials, ...)."""

    reason = "AuthBackendUnavailable"


class NoSuchEntity(AuthError):
    """A user, project or role named in a management call does not exist."""

    reason = "NotFound"


class AuthBackend(Protocol):
    """What the operator needs from a source of users, projects and roles."""

    name: str

    def members(self, project: str) -> frozenset[Member]:
        """Everyone with a role in `project` (empty if the backend has no such project)."""
        ...

    def user(self, name: str) -> UserInfo | None:
        """The user called `name`, or None."""
        ...

    def authenticate(self, name: str, password: str) -> UserInfo | None:
        """The user if `password` is theirs (and not empty), else None."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
