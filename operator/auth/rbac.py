"""RBAC for project roles: one kubenova ClusterRole per role, bound per project namespace.

The ClusterRoles list only namespaced kubenova resources (and reading Events, which
`kubectl describe` shows), and are only ever bound by RoleBindings inside a project's
namespace: a role grants nothing cluster-wide and nothing outside its project. No Secrets,
no status writes (status belongs to the operator and the agents).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kubenova.api.v1alpha1 import GROUP
from kubenova.operator.auth.backend import Member, Role
from kubenova.wellknown import PROJECT_LABEL

RBAC_API = "rbac.authorization.k8s.io/v1"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "kubenova-operator"

READ = ["get", "list", "watch"]
WRITE = [*READ, "create", "update", "patch", "delete", "deletecollection"]
TENANT_RESOURCES = ["instances", "volumes", "servergroups"]
ADMIN_RESOURCES = ["networks"]

Manifest = dict[str, Any]


def cluster_role_name(role: Role) -> str:
    return f"kubenova-project-{role.value}"


def binding_name(role: Role) -> str:
    """The RoleBinding for `role` in a project namespace."""
    return f"kubenova-{role.value}"


def _rules(role: Role) -> list[dict[str, Any]]:
    events = {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": READ}
    everything = TENANT_RESOURCES + ADMIN_RESOURCES
    if role is Role.ADMIN:
        return [{"apiGroups": [GROUP], "resources": everything, "verbs": WRITE}, events]
    if role is Role.MEMBER:
        return [
            {"apiGroups": [GROUP], "resources": TENANT_RESOURCES, "verbs": WRITE},
            {"apiGroups": [GROUP], "resources": ADMIN_RESOURCES, "verbs": READ},
            events,
        ]
    return [{"apiGroups": [GROUP], "resources": everything, "verbs": READ}, events]


def cluster_roles() -> list[Manifest]:
    """The three ClusterRoles the operator applies at start-up."""
    return [
        {
            "apiVersion": RBAC_API,
            "kind": "ClusterRole",
            "metadata": {"name": cluster_role_name(role), "labels": {MANAGED_BY: MANAGER}},
            "rules": _rules(role),
        }
        for role in Role
    ]


def role_bindings(project: str, namespace: str, members: Iterable[Member]) -> dict[Role, Manifest]:
    """The RoleBinding of each role that has members (roles without members get none)."""
    users: dict[Role, set[str]] = {}
    for member in members:
        users.setdefault(member.role, set()).add(member.user)
    return {
        role: {
            "apiVersion": RBAC_API,
            "kind": "RoleBinding",
            "metadata": {
                "name": binding_name(role),
                "namespace": namespace,
                "labels": {MANAGED_BY: MANAGER, PROJECT_LABEL: project},
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cluster_role_name(role),
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                for user in sorted(names)
            ],
        }
        for role, names in sorted(users.items())
    }


def same_binding(existing: Manifest, desired: Manifest) -> bool:
    """Does the live RoleBinding already grant exactly what `desired` says?"""
    labels = (existing.get("metadata") or {}).get("labels") or {}
    wanted_labels = desired["metadata"]["labels"]
    subjects = [
        {k: s.get(k) for k in ("apiGroup", "kind", "name")} for s in existing.get("subjects") or []
    ]
    return (
        existing.get("roleRef") == desired["roleRef"]
        and subjects == desired["subjects"]
        and all(labels.get(k) == v for k, v in wanted_labels.items())
    )
