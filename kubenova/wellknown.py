"""Names the operator and the agents agree on over the API: finalizers, labels, managers."""

from __future__ import annotations

OPERATOR_FINALIZER = "kubenova.io/operator"
AGENT_FINALIZER = "kubenova.io/agent"
PROJECT_FINALIZER = "kubenova.io/project"
# What an Instance or Volume carries before its status.host hands it to an agent: the
# agent tears down, then the operator releases.
HANDOVER_FINALIZERS = (OPERATOR_FINALIZER, AGENT_FINALIZER)
# Each kind's finalizers from creation on (the operator's mutating webhook adds them; the
# reconcilers add any still missing, e.g. on objects created while it was off).
FINALIZERS_AT_CREATION: dict[str, tuple[str, ...]] = {
    "instances": HANDOVER_FINALIZERS,
    "volumes": HANDOVER_FINALIZERS,
    "networks": (OPERATOR_FINALIZER,),
    "projects": (PROJECT_FINALIZER,),
}
PROJECT_LABEL = "kubenova.io/project"
# On a Network, one label per host that must wire it (`wired.kubenova.io/<host>: "true"`).
WIRED_LABEL_PREFIX = "wired.kubenova.io/"

OPERATOR_MANAGER = "kubenova-operator"
AGENT_MANAGER = "kubenova-agent"

SYSTEM_NAMESPACE = "kubenova-system"


def lease_name(host: str) -> str:
    """The Lease a host's agent renews as its heartbeat (in the system namespace)."""
    return f"host-{host}"


def host_of_lease(name: str) -> str | None:
    return name.removeprefix("host-") if name.startswith("host-") else None


def wired_label(host: str) -> str:
    """The Network label that tells `host`'s agent to wire the network there."""
    return f"{WIRED_LABEL_PREFIX}{host}"
