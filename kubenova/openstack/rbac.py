"""What the API's own identity may do: read what it caches, review access, impersonate users.

Kubernetes cannot scope `impersonate` to a name prefix, so the identity may impersonate
any user name but no group, no ServiceAccount and no extra; the API itself only ever
impersonates a name the auth backend has just checked the password of, and never a
`system:` name (`kubenova.openstack.cloud`). Every write is then the user's own.
The chart's `openstack-rbac.yaml` grants the same rules (a unit test compares them).
"""

from __future__ import annotations

from typing import Any

NAME = "kubenova-openstack-api"
CACHED = ["instances", "volumes", "networks", "flavors", "images", "servergroups", "projects"]


def rules() -> list[dict[str, Any]]:
    return [
        {"apiGroups": ["kubenova.io"], "resources": CACHED, "verbs": ["get", "list", "watch"]},
        {
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["subjectaccessreviews"],
            "verbs": ["create"],
        },
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
    ]


def cluster_role() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": NAME},
        "rules": rules(),
    }
