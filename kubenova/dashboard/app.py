"""The aiohttp application: sessions, CSRF, security headers, login and the project context.

Every page a user sees is fetched as that user (`identity.acting_as`); the dashboard's own
ServiceAccount only reads the Project list (to offer the projects the auth manager says the
user belongs to) and impersonates.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from kubenova.api.v1alpha1 import Project
from kubenova.dashboard.identity import (
    ImpersonatingClient,
    NotImpersonable,
    acting_as,
    check_impersonable,
)
from kubenova.dashboard.render import Html, csrf_field, e, page
from kubenova.dashboard.sessions import COOKIE, LoginThrottle, Session, SessionStore
from kubenova.kube import KubeClient, ResourceKind, kubenova_kind
from kubenova.operator.auth import AuthBackend, AuthError

if TYPE_CHECKING:
    from kubenova.dashboard.images import ImageStore

STATIC = Path(__file__).parent / "static"
PROJECTS = kubenova_kind(Project)
SELF_REVIEWS = ResourceKind(
    "authorization.k8s.io", "v1", "selfsubjectaccessreviews", False, "SelfSubjectAccessReview"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MEMBERSHIP_TTL = 15.0


@dataclass
class Dashboard:
    """What the handlers share: API clients, the auth backend, sessions."""

    client: ImpersonatingClient  # as the user, always
    own: KubeClient  # as the dashboard: reads Projects only
    backend: AuthBackend
    sessions: SessionStore = field(default_factory=SessionStore)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    secure_cookies: bool = False
    image_store: ImageStore | None = None  # where browser uploads go; None: no uploads
    # session id -> (when, {project: namespace}, is cloud admin)
    _memberships: dict[str, tuple[float, dict[str, str], bool]] = field(default_factory=dict)

    async def memberships(self, session: Session) -> tuple[dict[str, str], bool]:
        """The user's projects (name -> namespace) and whether they may see the admin pages."""
        if len(self._memberships) > 2 * len(self.sessions) + 100:  # ended sessions' entries
            live = {sid for sid in self._memberships if self.sessions.get(sid) is not None}
            self._memberships = {k: v for k, v in self._memberships.items() if k in live}
        cached = self._memberships.get(session.sid)
        if cached and time.monotonic() - cached[0] < MEMBERSHIP_TTL:
            return cached[1], cached[2]
        assert session.user is not None
        listing = await self.own.list(PROJECTS)
        projects: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        for item in listing.get("items", []):
            name = item["metadata"]["name"]
            members = await loop.run_in_executor(None, self.backend.members, name)
            if any(m.user == session.user for m in members):
                status, spec = item.get("status") or {}, item.get("spec") or {}
                projects[name] = status.get("namespace") or spec.get("namespace") or name
        admin = await self.may(session.user, "list", "hosts")
        self._memberships[session.sid] = (time.monotonic(), dict(sorted(projects.items())), admin)
        return dict(sorted(projects.items())), admin

    async def may(self, user: str, verb: str, resource: str, namespace: str = "") -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "group": "kubenova.io",
                    "resource": resource,
                    "verb": verb,
                    "namespace": namespace,
                }
            },
        }
        with acting_as(user):
            answer = await self.client.create(SELF_REVIEWS, review)
        return bool((answer.get("status") or {}).get("allowed"))


DASHBOARD = web.AppKey("dashboard", Dashboard)


def dashboard_of(request: web.Request) -> Dashboard:
    return request.app[DASHBOARD]


# What the guard found for the request's cookie: None when signed out.
SESSION_KEY: web.RequestKey[Session | None] = web.RequestKey("session")


def session_of(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)


def set_cookie(response: web.StreamResponse, dash: Dashboard, session: Session) -> None:
    response.set_cookie(
        COOKIE,
        session.sid,
        httponly=True,
        samesite="Strict",
        secure=dash.secure_cookies,
        path="/",
    )


def html(body: str, *, status: int = 200) -> web.Response:
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


@web.middleware
async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
    """Session lookup, login required, CSRF on every state-changing request, headers."""
    dash = dashboard_of(request)
    session = dash.sessions.get(request.cookies.get(COOKIE))
    request[SESSION_KEY] = session
    public = request.path.startswith("/static/") or request.path in ("/login", "/healthz")
    if request.method not in SAFE_METHODS:
        origin = request.headers.get("Origin")
        if origin and origin != f"{request.scheme}://{request.host}":
            raise web.HTTPForbidden(text="cross-origin request refused")
        token = request.headers.get("X-CSRF-Token")
        if token is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            token = (await request.post()).get("_csrf")  # type: ignore[assignment]
        if session is None or not session.csrf_ok(token if isinstance(token, str) else None):
            raise web.HTTPForbidden(text="missing or wrong CSRF token (reload the page)")
    if not public and (session is None or session.user is None):
        if request.method in SAFE_METHODS and "text/html" in request.headers.get("Accept", ""):
            raise web.HTTPSeeOther("/login")
        raise web.HTTPUnauthorized(text="log in first")
    response: web.StreamResponse = await handler(request)
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Pages hold user data: never cached. The two static files are the same for everyone
    # and change only with a new release: a short cache saves every page load two requests.
    static = request.path.startswith("/static/")
    response.headers.setdefault("Cache-Control", "max-age=300" if static else "no-store")
    return response


def login_page(csrf: str, error: str = "", user: str = "") -> str:
    alert = f'<p class="refusal" role="alert">{e(error)}</p>' if error else ""
    return page(
        "Log in",
        Html(
            f'<form method="post" action="/login" class="card narrow">{csrf_field(csrf)}{alert}'
            f'<label for="f-user">User name</label>'
            f'<input id="f-user" name="user" autocomplete="username" value="{e(user)}" required>'
            f'<label for="f-password">Password</label><input id="f-password" name="password" '
            f'type="password" autocomplete="current-password" required>'
            "<button>Log in</button></form>"
        ),
    )


async def get_login(request: web.Request) -> web.StreamResponse:
    dash = dashboard_of(request)
    session = session_of(request)
    if session is not None and session.user is not None:
        raise web.HTTPSeeOther("/")
    session = session or dash.sessions.new()
    response = html(login_page(session.csrf))
    set_cookie(response, dash, session)
    return response


async def post_login(request: web.Request) -> web.StreamResponse:
    dash = dashboard_of(request)
    session = session_of(request)
    assert session is not None  # the guard checked the CSRF token of this session
    form = await request.post()
    user, password = str(form.get("user", "")).strip(), str(form.get("password", ""))
    keys = (f"user:{user}", f"addr:{request.remote}")
    wait = dash.throttle.wait_for(*keys)
    if wait > 0:
        return html(
            login_page(session.csrf, f"Too many failed attempts: try again in {wait:.0f} s.", user),
            status=429,
        )
    info = None
    try:
        check_impersonable(user)
        loop = asyncio.get_running_loop()
        info = await loop.run_in_executor(None, dash.backend.authenticate, user, password)
    except NotImpersonable:
        info = None
    except AuthError:
        return html(
            login_page(session.csrf, "The user directory cannot be reached; try later.", user),
            status=503,
        )
    if info is None:
        dash.throttle.failed(*keys)
        return html(login_page(session.csrf, "Wrong user name or password.", user), status=401)
    dash.throttle.succeeded(*keys)
    fresh = dash.sessions.log_in(session, info.name, info.display_name or info.name)
    response = web.HTTPSeeOther("/")
    set_cookie(response, dash, fresh)
    raise response


async def post_logout(request: web.Request) -> web.StreamResponse:
    dash = dashboard_of(request)
    session = session_of(request)
    if session is not None:
        dash.sessions.drop(session.sid)
        dash._memberships.pop(session.sid, None)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(COOKIE, path="/")
    raise response


async def home(request: web.Request) -> web.StreamResponse:
    dash, session = dashboard_of(request), session_of(request)
    assert session is not None
    assert session.user is not None
    projects, admin = await dash.memberships(session)
    if projects:
        raise web.HTTPSeeOther(f"/p/{next(iter(projects))}/instances")
    if admin:
        raise web.HTTPSeeOther("/admin/hosts")
    return html(
        page(
            "No projects",
            Html("<p>You are not a member of any project yet. Ask a cloud administrator.</p>"),
            user=session.user,
            csrf=session.csrf,
        )
    )


async def switch(request: web.Request) -> web.StreamResponse:
    project = request.query.get("project", "")
    raise web.HTTPSeeOther(f"/p/{project}/instances" if project.isascii() else "/")


async def healthz(_request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok")


def build_app(dash: Dashboard) -> web.Application:
    """The whole dashboard as one aiohttp application."""
    from kubenova.dashboard import admin, images, instances, live, resources  # noqa: PLC0415

    app = web.Application(middlewares=[guard], client_max_size=1024**2)
    app[DASHBOARD] = dash
    app.router.add_get("/login", get_login)
    app.router.add_post("/login", post_login)
    app.router.add_post("/logout", post_logout)
    app.router.add_get("/", home)
    app.router.add_get("/switch", switch)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC, append_version=False)
    live.register(app)
    instances.register(app)
    resources.register(app)
    admin.register(app)
    images.register(app)

    async def close(_app: web.Application) -> None:
        await dash.client.close()
        await dash.own.close()
        dash.backend.close()

    app.on_cleanup.append(close)
    return app
