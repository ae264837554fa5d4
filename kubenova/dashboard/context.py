"""The project a request is about, checked against the user's memberships."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import web

from kubenova.dashboard.app import Dashboard, dashboard_of, html, session_of
from kubenova.dashboard.render import Html, page

# A Kubernetes object name (RFC 1123 subdomain): what a path segment naming one may hold.
# Checked before it goes into an API path or a field selector, where "/", "," or "="
# would change what is asked for.
_OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def object_name(request: web.Request, key: str = "name") -> str:
    """The object name in the URL, or 404."""
    name = request.match_info[key]
    if not _OBJECT_NAME.fullmatch(name):
        raise web.HTTPNotFound(text="no such object")
    return name


@dataclass(frozen=True)
class Context:
    dash: Dashboard
    user: str
    csrf: str
    projects: dict[str, str]
    admin: bool
    project: str | None = None
    namespace: str = ""

    def render(self, title: str, body: Html, *, status: int = 200) -> web.Response:
        return html(
            page(
                title,
                body,
                user=self.user,
                csrf=self.csrf,
                projects=self.projects,
                project=self.project,
                admin=self.admin,
            ),
            status=status,
        )


async def context(request: web.Request, *, project: bool = True) -> Context:
    """The logged-in user's context; 404 for a project they are not a member of (a project
    they cannot see is indistinguishable from one that does not exist)."""
    dash, session = dashboard_of(request), session_of(request)
    assert session is not None
    assert session.user is not None
    projects, admin = await dash.memberships(session)
    if not project:
        return Context(dash, session.user, session.csrf, projects, admin)
    name = request.match_info["project"]
    if name not in projects:
        raise web.HTTPNotFound(text=f"no project {name!r} of yours")
    return Context(dash, session.user, session.csrf, projects, admin, name, projects[name])
