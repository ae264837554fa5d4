"""The dashboard's own RBAC: impersonate users and the one dashboard group; read Projects.

The Helm chart renders the same rules (charts/kubenova/templates/dashboard-rbac.yaml);
`kubenova dev up` and the tests apply these manifests for a client-certificate identity.
"""

from __future__ import annotations

from typing import Any

from kubenova.dashboard.identity import DASHBOARD_GROUP

CLUSTER_ROLE = "kubenova-dashboard"


def rules() -> list[dict[str, Any]]:
    return [
        # User names are the auth manager's, not known in advance: RBAC cannot name them
        # (nor a prefix), so the dashboard itself refuses system: and kubenova: names.
        # Not "serviceaccounts", not "userextras": no ServiceAccount and no extra can be worn.
        {"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"]},
        {
            "apiGroups": [""],
            "resources": ["groups"],
            "verbs": ["impersonate"],
            "resourceNames": [DASHBOARD_GROUP],
        },
        {"apiGroups": ["kubenova.io"], "resources": ["projects"], "verbs": ["get", "list"]},
    ]


def manifests(subject: dict[str, str]) -> list[dict[str, Any]]:
    """The ClusterRole and its binding to `subject` (a User or ServiceAccount subject)."""
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CLUSTER_ROLE},
            "rules": rules(),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CLUSTER_ROLE},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": CLUSTER_ROLE,
            },
            "subjects": [subject],
        },
    ]
