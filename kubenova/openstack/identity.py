"""Identity v3, the subset clients use: password tokens, the catalog, the user's projects.

Passwords are checked by the auth manager (database or LDAP backend); a token is scoped to
one Project the user holds a role in, and carries that project's namespace.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from kubenova.kube.meta import Body, name_of
from kubenova.openstack.cloud import (
    CLOUD_KEY,
    DEFAULT_DOMAIN,
    REGION,
    TOKEN_KEY,
    Cloud,
    project_id,
    project_namespace,
)
from kubenova.openstack.faults import Fault
from kubenova.openstack.tokens import CLOUD_ADMIN, Token, TokenInvalid

routes = web.RouteTableDef()

SERVICES = (  # type, name, path under the root
    ("identity", "keystone", "/identity"),
    ("compute", "nova", "/compute/v2.1"),
    ("image", "glance", "/image"),
    ("volumev3", "cinderv3", "/volume/v3/{project}"),
    ("block-storage", "cinder", "/volume/v3/{project}"),
    ("network", "neutron", "/network"),
)


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def version_v3(base: str) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


@routes.get("/identity")
@routes.get("/identity/")
async def versions(request: web.Request) -> web.Response:
    base = request.app[CLOUD_KEY].base_url(request)
    return web.json_response({"versions": {"values": [version_v3(base)]}}, status=300)


@routes.get("/identity/v3")
@routes.get("/identity/v3/")
async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": version_v3(request.app[CLOUD_KEY].base_url(request))})


def catalog(base: str, project: str) -> list[dict[str, Any]]:
    entries = []
    for kind, name, path in SERVICES:
        url = base + path.format(project=project)
        entries.append(
            {
                "type": kind,
                "name": name,
                "id": kind,
                "endpoints": [
                    {
                        "id": f"{kind}-{interface}",
                        "interface": interface,
                        "region": REGION,
                        "region_id": REGION,
                        "url": url,
                    }
                    for interface in ("public", "internal", "admin")
                ],
            }
        )
    return entries


def token_body(cloud: Cloud, request: web.Request, token: Token) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": ["password"],
        "user": {
            "id": token.user,
            "name": token.user,
            "domain": DEFAULT_DOMAIN,
            "password_expires_at": None,
        },
        "audit_ids": [token.id[:22]],
        "issued_at": iso(token.issued_at),
        "expires_at": iso(token.expires_at),
    }
    if token.project:
        project = cloud.project(token.project)
        pid = project_id(project) if project else token.project
        body["project"] = {"id": pid, "name": token.project, "domain": DEFAULT_DOMAIN}
        body["is_domain"] = False
        body["roles"] = [{"id": role, "name": role} for role in token.roles]
        body["catalog"] = catalog(cloud.base_url(request), pid)
    return body


def _password_user(auth: dict[str, Any]) -> tuple[str, str]:
    identity = auth.get("identity") or {}
    if "password" not in (identity.get("methods") or []):
        raise Fault(401, "only the password method is supported")
    user = (identity.get("password") or {}).get("user") or {}
    name = user.get("name") or user.get("id")
    password = user.get("password")
    if not isinstance(name, str) or not isinstance(password, str) or not name or not password:
        raise Fault(400, "auth.identity.password.user needs a name (or id) and a password")
    return name, password


def _scope(auth: dict[str, Any]) -> str | None:
    scope = auth.get("scope")
    if scope is None or scope == "unscoped":
        return None
    project = scope.get("project") if isinstance(scope, dict) else None
    if not isinstance(project, dict):
        raise Fault(400, "only project scope is supported")
    ref = project.get("id") or project.get("name")
    if not isinstance(ref, str) or not ref:
        raise Fault(400, "auth.scope.project needs an id or a name")
    return ref


@routes.post("/identity/v3/auth/tokens")
async def issue(request: web.Request) -> web.Response:
    cloud = request.app[CLOUD_KEY]
    try:
        doc = await request.json()
        auth = doc["auth"]
    except (ValueError, KeyError, TypeError) as exc:
        raise Fault(400, "the body must be JSON with an `auth` object") from exc
    name, password = _password_user(auth)
    if name.startswith("system:"):
        raise Fault(401, "The request you have made requires authentication.")
    user = await asyncio.to_thread(cloud.backend.authenticate, name, password)
    if user is None:
        raise Fault(401, "The request you have made requires authentication.")
    ref = _scope(auth)
    namespace, project_name = "", ""
    roles: tuple[str, ...] = ()
    if ref is not None:
        project = cloud.project(ref)
        roles = await cloud.roles_in(user.name, name_of(project)) if project else ()
        if project is None or not roles:
            # One answer for "no such project" and "not yours": names are not to be probed.
            raise Fault(401, f"User {user.name} has no access to project {ref}")
        namespace, project_name = project_namespace(project), name_of(project)
        if await cloud.is_cloud_admin(user.name):
            roles = (*roles, CLOUD_ADMIN)
    token = cloud.issuer.issue(user.name, project_name, namespace, roles)
    return web.json_response(
        {"token": token_body(cloud, request, token)},
        status=201,
        headers={"X-Subject-Token": cloud.issuer.encode(token)},
    )


def _subject(request: web.Request) -> Token:
    try:
        return request.app[CLOUD_KEY].issuer.validate(request.headers.get("X-Subject-Token", ""))
    except TokenInvalid as exc:
        raise Fault(404, f"Could not find token: {exc}") from exc


@routes.get("/identity/v3/auth/tokens")
async def check(request: web.Request) -> web.Response:
    cloud, token = request.app[CLOUD_KEY], _subject(request)
    return web.json_response({"token": token_body(cloud, request, token)})


@routes.delete("/identity/v3/auth/tokens")
async def revoke(request: web.Request) -> web.Response:
    caller: Token = request[TOKEN_KEY]
    token = _subject(request)
    if token.user != caller.user:
        raise Fault(403, "a user may revoke only their own tokens")
    request.app[CLOUD_KEY].issuer.revoke(token)
    return web.Response(status=204)


def project_view(body: Body, base: str) -> dict[str, Any]:
    pid = project_id(body)
    return {
        "id": pid,
        "name": name_of(body),
        "description": (body.get("spec") or {}).get("description", ""),
        "domain_id": "default",
        "enabled": True,
        "is_domain": False,
        "parent_id": "default",
        "tags": [],
        "links": {"self": f"{base}/identity/v3/projects/{pid}"},
    }


@routes.get("/identity/v3/auth/projects")
@routes.get("/identity/v3/projects")
@routes.get("/identity/v3/users/{user}/projects")
async def projects(request: web.Request) -> web.Response:
    cloud, token = request.app[CLOUD_KEY], request[TOKEN_KEY]
    if request.match_info.get("user", token.user) != token.user:
        raise Fault(403, "a user may list only their own projects")
    base = cloud.base_url(request)
    mine = await cloud.projects_of(token.user)
    name = request.query.get("name")
    values = [project_view(b, base) for b, _ in mine if name in (None, name_of(b))]
    return web.json_response({"projects": values, "links": {"self": None, "next": None}})


@routes.get("/identity/v3/projects/{ref}")
async def project(request: web.Request) -> web.Response:
    cloud, token = request.app[CLOUD_KEY], request[TOKEN_KEY]
    body = cloud.project(request.match_info["ref"])
    if body is None or not await cloud.roles_in(token.user, name_of(body)):
        raise Fault(404, f"Could not find project: {request.match_info['ref']}.")
    return web.json_response({"project": project_view(body, cloud.base_url(request))})
