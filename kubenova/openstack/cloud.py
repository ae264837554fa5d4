"""What every handler needs: the token issuer, the watch cache, the auth backend, and the
apiserver reached AS the token's user.

Writes are made with the API's ServiceAccount impersonating the authenticated user
(`Impersonate-User`): RBAC, the admission webhook and the quota then decide exactly as for
that user's kubectl. The only names ever impersonated are those the auth backend has just
vouched for, and never a `system:` name (those are Kubernetes' own identities).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kubenova.api.v1alpha1 import Project, Resource
from kubenova.errors import ApiError
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.meta import Body, name_of, uid_of
from kubenova.kube.paths import SUBJECT_ACCESS_REVIEWS
from kubenova.openstack.cache import WatchCache
from kubenova.openstack.faults import Fault, from_api_error
from kubenova.openstack.tokens import Token, TokenIssuer
from kubenova.operator.auth import AuthBackend, AuthError, Role

CLOUD_KEY: web.AppKey[Cloud] = web.AppKey("cloud")
TOKEN_KEY: web.RequestKey[Token] = web.RequestKey("osapi.token", Token)
REGION = "RegionOne"
DEFAULT_DOMAIN = {"id": "default", "name": "Default"}


# Seconds a user's standing (enabled, still a member of the token's project) is trusted
# before the auth backend is asked again: a disabled user or a removed member loses every
# token within this, not at the token's expiry.
RECHECK_INTERVAL = 30.0


@dataclass
class Cloud:
    issuer: TokenIssuer
    cache: WatchCache
    client: KubeClient
    backend: AuthBackend
    public_url: str | None = None  # else taken from each request's Host
    recheck_interval: float = RECHECK_INTERVAL
    _checked: dict[tuple[str, str], float] = field(default_factory=dict)

    async def still_allowed(self, token: Token) -> bool:
        """Is the token's user still enabled and a member of its project? Asked of the
        backend at most every `recheck_interval` per (user, project); a no revokes every
        token the user holds."""
        key = (token.user, token.project)
        now = time.monotonic()
        if now - self._checked.get(key, -1e9) < self.recheck_interval:
            return True
        try:
            user = await asyncio.to_thread(self.backend.user, token.user)
            member = user is not None and (
                not token.project or bool(await self.roles_in(token.user, token.project))
            )
        except AuthError as exc:
            raise Fault(503, f"the auth backend cannot be asked now: {exc}") from exc
        if not member:
            self.issuer.revoke_user(token.user)
            self._checked.pop(key, None)
            return False
        self._checked[key] = now
        return True

    def base_url(self, request: web.Request) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    # -- projects ----------------------------------------------------------------------------

    def projects(self) -> list[Body]:
        return sorted(self.cache[Project].all(), key=name_of)

    def project(self, ref: str) -> Body | None:
        """A Project by UID or by name."""
        return self.cache[Project].get(ref) or self.cache[Project].named(ref)

    async def roles_in(self, user: str, project: str) -> tuple[str, ...]:
        members = await asyncio.to_thread(self.backend.members, project)
        return tuple(sorted(str(m.role) for m in members if m.user == user))

    async def projects_of(self, user: str) -> list[tuple[Body, tuple[str, ...]]]:
        found = []
        for body in self.projects():
            roles = await self.roles_in(user, name_of(body))
            if roles:
                found.append((body, roles))
        return found

    async def may(self, user: str, verb: str, resource: str) -> bool:
        """Does RBAC let `user` `verb` kubenova.io `resource` (cluster-wide)? A refusal of the
        review itself counts as no."""
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:authenticated"],
                "resourceAttributes": {"group": "kubenova.io", "resource": resource, "verb": verb},
            },
        }
        try:
            answer = await self.client.create(SUBJECT_ACCESS_REVIEWS, review)
        except ApiError:
            return False
        return bool((answer.get("status") or {}).get("allowed"))

    async def is_cloud_admin(self, user: str) -> bool:
        """May `user` read Hosts? The cloud's administrators may; tenants never can."""
        return await self.may(user, "list", "hosts")

    # -- the apiserver as the user -----------------------------------------------------------

    async def as_user(
        self,
        token: Token,
        method: str,
        model: type[Resource],
        name: str | None = None,
        body: Any = None,
        *,
        content_type: str = "application/json",
    ) -> Body:
        """One request to the apiserver made as `token`'s user, in its project's namespace."""
        if token.user.startswith("system:"):
            raise Fault(403, "system identities cannot use this API")
        path = kubenova_kind(model).path(token.namespace, name)
        try:
            answer = await self.client.request(
                method,
                path,
                body=body,
                content_type=content_type,
                headers={"Impersonate-User": token.user},
            )
        except ApiError as exc:
            raise from_api_error(exc) from exc
        if method in ("POST", "PATCH", "PUT") and answer.get("metadata"):
            answer.setdefault("apiVersion", kubenova_kind(model).api_version)
            answer.setdefault("kind", model.crd.kind)
            self.cache[model].remember(answer)
        return answer


def project_id(body: Body) -> str:
    return uid_of(body)


def project_namespace(body: Body) -> str:
    status = body.get("status") or {}
    spec = body.get("spec") or {}
    return str(status.get("namespace") or spec.get("namespace") or name_of(body))


ROLE_NAMES = tuple(str(r) for r in Role)
