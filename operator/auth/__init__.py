"""The auth manager: users, projects and roles from the inventory database or from LDAP.

One interface (`AuthBackend`: members of a project, a user, a password check) with two
backends chosen by configuration (`AuthConfig.backend`):

    from kubenova.operator import auth

    backend = auth.build_backend(auth.load_auth_config(path), engine)
    backend.members("alpha")      # frozenset of Member(user, Role) for RoleBindings

The Project controller binds each member to the kubenova ClusterRole of its role in the
project's namespace (`kubenova.operator.auth.rbac`). Errors: `AuthError` and subclasses.
"""

from kubenova.operator.auth.backend import (
    AuthBackend,
    AuthError,
    BackendUnavailable,
    Member,
    Role,
    UserInfo,
)
from kubenova.operator.auth.config import AuthConfig, build_backend, load_auth_config

__all__ = [
    "AuthBackend",
    "AuthConfig",
    "AuthError",
    "BackendUnavailable",
    "Member",
    "Role",
    "UserInfo",
    "build_backend",
    "load_auth_config",
]
