"""Per-host agent identities for a local plane: user `kubenova:agent:<host>`, group
`kubenova:agents`.

A bare apiserver has no kubelet and so no node-bound ServiceAccount tokens; each agent gets
a client certificate naming its host instead, which the chart's host policy
(charts/kubenova/policies/host-agents-touch-only-their-host.yaml) reads just like a node
name. The group is bound to the same rules the chart gives the agents' ServiceAccount
(charts/kubenova/rbac/agent.yaml), so an agent here holds exactly a real agent's rights.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.crds import apply_objects
from kubenova.devcluster.errors import ControlPlaneError
from kubenova.wellknown import SYSTEM_NAMESPACE

AGENT_RULES = Path("charts") / "kubenova" / "rbac" / "agent.yaml"
AGENTS_GROUP = "kubenova:agents"
AGENT_USER_PREFIX = "kubenova:agent:"
# Not the chart's names (kubenova-agent…): a Helm release in the same plane must not find
# objects it does not own.
ROLE_NAME = "kubenova-host-agents"
# A host name is a Host's metadata.name: a DNS subdomain.
_HOST = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def agent_user(host: str) -> str:
    """The user name of `host`'s agent; ValueError naming the host if it is no Host name."""
    if not _HOST.fullmatch(host):
        raise ValueError(f"host name {host!r} is not a valid Host name (a DNS subdomain)")
    return f"{AGENT_USER_PREFIX}{host}"


def agent_rbac(rules_file: Path) -> list[dict[str, Any]]:
    """The ClusterRole, Role and their bindings for group kubenova:agents, from `rules_file`."""
    try:
        rules = yaml.safe_load(rules_file.read_text())
        cluster, heartbeat = rules["cluster"], rules["heartbeat"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ControlPlaneError(
            f"{rules_file}: expected the agents' RBAC rules under the keys cluster and "
            f"heartbeat ({exc})"
        ) from exc
    rbac = "rbac.authorization.k8s.io/v1"
    group = [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": AGENTS_GROUP}]
    namespaced = {"name": ROLE_NAME, "namespace": SYSTEM_NAMESPACE}

    def ref(kind: str) -> dict[str, str]:
        return {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": ROLE_NAME}

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
        {
            "apiVersion": rbac,
            "kind": "ClusterRole",
            "metadata": {"name": ROLE_NAME},
            "rules": cluster,
        },
        {
            "apiVersion": rbac,
            "kind": "ClusterRoleBinding",
            "metadata": {"name": ROLE_NAME},
            "roleRef": ref("ClusterRole"),
            "subjects": group,
        },
        {"apiVersion": rbac, "kind": "Role", "metadata": namespaced, "rules": heartbeat},
        {
            "apiVersion": rbac,
            "kind": "RoleBinding",
            "metadata": namespaced,
            "roleRef": ref("Role"),
            "subjects": group,
        },
    ]


def install_agent_rbac(access: ClusterAccess, rules_file: Path) -> None:
    """Server-side apply the agents' rights for group kubenova:agents (idempotent)."""
    apply_objects(access, agent_rbac(rules_file))


def agent_kubeconfig(access: ClusterAccess, host: str) -> Path:
    """A kubeconfig for `host`'s agent: its own client certificate, group kubenova:agents."""
    return access.user_kubeconfig(agent_user(host), (AGENTS_GROUP,))
