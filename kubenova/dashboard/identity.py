"""Acting on the apiserver as the logged-in user: impersonation over one shared connection pool.

The dashboard's own credentials (a ServiceAccount) may only impersonate: each request a
user causes carries `Impersonate-User: <name>` and `Impersonate-Group: kubenova:dashboard`,
so RBAC and the admission webhook judge the user exactly as for `kubectl`. RBAC cannot
restrict impersonation to a name prefix, so the dashboard refuses here to act as any name
the auth manager did not just vouch for, and as any system or kubenova component identity.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp

from kubenova.kube.client import KubeClient

# Every impersonated request also carries this group (the only group the dashboard's RBAC
# lets it impersonate), so the apiserver's audit log tells dashboard actions apart.
DASHBOARD_GROUP = "kubenova:dashboard"

# Names that belong to components, never to a person logging in: a user called
# "kubenova:agent:h1" or "system:admin" in the auth backend must not become that identity.
RESERVED_PREFIXES = ("system:", "kubenova:")


class NotImpersonable(ValueError):
    """A user name the dashboard refuses to act as."""


def check_impersonable(user: str) -> str:
    if not user or any(user.startswith(prefix) for prefix in RESERVED_PREFIXES):
        raise NotImpersonable(f"{user!r} is a reserved identity")
    if any(ord(ch) < 0x20 or ch in "\x7f," for ch in user):
        raise NotImpersonable(f"{user!r} holds characters a header cannot carry")
    return user


_acting_as: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kubenova_dashboard_user", default=None
)


@contextlib.contextmanager
def acting_as(user: str) -> Iterator[None]:
    """Within this block (and tasks started in it), requests go out as `user`."""
    token = _acting_as.set(check_impersonable(user))
    try:
        yield
    finally:
        _acting_as.reset(token)


class ImpersonatingClient(KubeClient):
    """A KubeClient whose every request is made as the user set by `acting_as`.

    There is no way to send a request as the dashboard itself: outside `acting_as` a
    request raises, so a forgotten context can never borrow the ServiceAccount's rights.
    """

    @contextlib.asynccontextmanager
    async def _open(
        self, method: str, path: str, *, headers: dict[str, str], **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        user = _acting_as.get()
        if user is None:
            raise RuntimeError(f"{method} {path} outside acting_as(): refusing to send it")
        headers = headers | {"Impersonate-User": user, "Impersonate-Group": DASHBOARD_GROUP}
        async with super()._open(method, path, headers=headers, **kwargs) as response:
            yield response
