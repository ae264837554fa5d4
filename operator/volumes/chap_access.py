"""Who may read which CHAP Secret: the hosts that export or attach the Volume, no other.

Reads never pass admission, so RBAC alone can say it. Per Volume namespace and host, the
operator keeps a Role `kubenova-chap-<host>` granting `get` on exactly the CHAP Secrets of
the Volumes that host exports (`status.host`) or has attached (`status.attachments[].host`),
both written by the operator only, and a RoleBinding of it to that host's agent identity
`kubenova:agent:<host>`. The grants are recomputed from the namespace's Volumes on every
Volume change (level-triggered, one namespace at a time), so a detached, moved or deleted
volume's grant goes with it. The policy kubenova-operator-grants-only-chap-reads keeps
these Roles to exactly that shape.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from kubenova.api.v1alpha1 import Volume
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.client import APPLY_PATCH
from kubenova.kube.meta import Body, name_of, namespace_of
from kubenova.kube.paths import ResourceKind
from kubenova.wellknown import OPERATOR_MANAGER

log = logging.getLogger(__name__)

VOLUMES = kubenova_kind(Volume)
ROLES = ResourceKind("rbac.authorization.k8s.io", "v1", "roles", True, "Role")
ROLE_BINDINGS = ResourceKind("rbac.authorization.k8s.io", "v1", "rolebindings", True, "RoleBinding")
RBAC_API = "rbac.authorization.k8s.io/v1"
ROLE_PREFIX = "kubenova-chap-"
AGENT_USER_PREFIX = "kubenova:agent:"
MANAGED_BY = "app.kubernetes.io/managed-by"
ACCESS_LABEL = "kubenova.io/chap-access"
# Object names are at most 253 characters; a longer host name gets no grant (and a log).
MAX_NAME = 253


def readers(volume: Body) -> set[str]:
    """The hosts that need `volume`'s CHAP Secret: its export host and every attached host."""
    status = volume.get("status") or {}
    hosts = {status.get("host") or ""}
    hosts |= {entry.get("host") or "" for entry in status.get("attachments") or []}
    return hosts - {""}


def plan(volumes: list[Body]) -> dict[str, list[str]]:
    """host -> the sorted CHAP Secret names its agent may read, for one namespace's Volumes."""
    grants: dict[str, set[str]] = {}
    for volume in volumes:
        secret = ((volume.get("status") or {}).get("target") or {}).get("chapSecret")
        if not secret:
            continue
        for host in readers(volume):
            grants.setdefault(host, set()).add(secret)
    return {host: sorted(names) for host, names in grants.items()}


def role_name(host: str) -> str:
    return f"{ROLE_PREFIX}{host}"


def _metadata(host: str, namespace: str) -> Body:
    return {
        "name": role_name(host),
        "namespace": namespace,
        "labels": {MANAGED_BY: OPERATOR_MANAGER, ACCESS_LABEL: "true"},
    }


def role(host: str, namespace: str, secrets: list[str]) -> Body:
    """The Role letting `host`'s agent get exactly `secrets` in `namespace`."""
    return {
        "apiVersion": RBAC_API,
        "kind": "Role",
        "metadata": _metadata(host, namespace),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["secrets"],
                "resourceNames": secrets,
                "verbs": ["get"],
            }
        ],
    }


def role_binding(host: str, namespace: str) -> Body:
    """The binding of `host`'s Role to `host`'s agent identity, and no one else."""
    return {
        "apiVersion": RBAC_API,
        "kind": "RoleBinding",
        "metadata": _metadata(host, namespace),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role_name(host),
        },
        "subjects": [
            {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "User",
                "name": f"{AGENT_USER_PREFIX}{host}",
            }
        ],
    }


def _by_host(listing: Body) -> dict[str, Body]:
    """The operator's CHAP access objects of a listing, by the host their name carries."""
    return {
        name_of(item)[len(ROLE_PREFIX) :]: item
        for item in listing.get("items") or []
        if name_of(item).startswith(ROLE_PREFIX)
    }


@dataclass
class ChapAccess:
    """Keeps one namespace's CHAP read grants true; a WorkQueue handler keyed by namespace."""

    client: KubeClient

    async def __call__(self, namespace: str, _body: Body | None) -> float | None:
        volumes = (await self.client.list(VOLUMES, namespace)).get("items") or []
        grants = plan(volumes)
        desired = {h: names for h, names in grants.items() if len(role_name(h)) <= MAX_NAME}
        for host in grants.keys() - desired.keys():
            log.error("host name %r is too long for a CHAP access Role; no grant made", host)
        selector = f"{MANAGED_BY}={OPERATOR_MANAGER},{ACCESS_LABEL}"
        existing = _by_host(await self.client.list(ROLES, namespace, label_selector=selector))
        bound = _by_host(await self.client.list(ROLE_BINDINGS, namespace, label_selector=selector))
        for host, secrets in desired.items():
            # The Role first: binding a Role checks the binder holds its rights, so the Role
            # must exist; a pass cut short in between finds the binding missing next time.
            wanted = role(host, namespace, secrets)
            if host not in existing or existing[host].get("rules") != wanted["rules"]:
                await self._apply(ROLES, wanted)
                log.info("CHAP access of host %s in %s: %s", host, namespace, ", ".join(secrets))
            binding = role_binding(host, namespace)
            if host not in bound or bound[host].get("subjects") != binding["subjects"]:
                await self._apply(ROLE_BINDINGS, binding)
        for host in (existing.keys() | bound.keys()) - desired.keys():
            # The binding first: never a grant left behind by a pass cut short.
            with contextlib.suppress(NotFound):
                await self.client.delete(ROLE_BINDINGS, role_name(host), namespace)
            with contextlib.suppress(NotFound):
                await self.client.delete(ROLES, role_name(host), namespace)
            log.info("CHAP access of host %s in %s withdrawn", host, namespace)
        return None

    async def _apply(self, kind: ResourceKind, body: Body) -> None:
        await self.client.patch(
            kind,
            name_of(body),
            body,
            namespace_of(body),
            patch_type=APPLY_PATCH,
            field_manager=OPERATOR_MANAGER,
            force=True,
        )
