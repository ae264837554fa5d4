"""Names the operator and the agents agree on over the API: finalizers, labels, managers."""

from __future__ import annotations

OPERATOR_FINALIZER = "kubenova.io/operator"
AGENT_FINALIZER = "kubenova.io/agent"
HOST_LABEL = "kubenova.io/host"
PROJECT_LABEL = "kubenova.io/project"

OPERATOR_MANAGER = "kubenova-operator"
AGENT_MANAGER = "kubenova-agent"

SYSTEM_NAMESPACE = "kubenova-system"


def lease_name(host: str) -> str:
    """The Lease a host's agent renews as its heartbeat (in the system namespace)."""
    return f"host-{host}"


def host_of_lease(name: str) -> str | None:
    return name.removeprefix("host-") if name.startswith("host-") else None
