"""The webhook configurations the operator publishes for its endpoint: validating, mutating.

kopf serves the endpoint; the configuration is ours (not kopf's managed one) because it
needs `matchConditions`: an UPDATE reaches the webhook only when `spec` changed, so the
operator's and the agents' metadata writes (finalizers, labels) and every status write
(a subresource, never matched) go through even while the operator is down.

Failure policy: Fail. While the webhook cannot answer, creating or changing the spec of
an Instance, Volume, Network or Project is refused ("failed calling webhook"), because admitting
it unchecked could break a quota or let a bad reference in; nothing could schedule it
meanwhile anyway. Deletes of Instances and Volumes are never intercepted.

The mutating configuration (same server, same CA) is called on CREATE only and adds the
finalizers each kind carries from creation (`wellknown.FINALIZERS_AT_CREATION`), so that
placing an object is one status write. Failure policy Fail as well: an object created
without them would be placed with two writes, and a create refused is retried by its
maker. It reads nothing and writes nothing (sideEffects None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.paths import ResourceKind

CONFIGURATION_NAME = "kubenova-admission"
VALIDATING_WEBHOOKS = ResourceKind(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    False,
    "ValidatingWebhookConfiguration",
)
MUTATING_WEBHOOKS = ResourceKind(
    "admissionregistration.k8s.io",
    "v1",
    "mutatingwebhookconfigurations",
    False,
    "MutatingWebhookConfiguration",
)
CLUSTER_ROLES = ResourceKind(
    "rbac.authorization.k8s.io", "v1", "clusterroles", False, "ClusterRole"
)
SPEC_CHANGED = "request.operation != 'UPDATE' || object.spec != oldObject.spec"


@dataclass(frozen=True)
class Hook:
    """One kopf admission handler (`handler_id`) and what it is called for."""

    handler_id: str
    plural: str
    operations: tuple[str, ...]
    namespaced: bool = True
    purpose: str = "validate"  # or "finalize": the mutating hook adding finalizers

    @property
    def webhook_name(self) -> str:
        return f"{self.plural}.{self.purpose}.{GROUP}"


def webhook_configuration(
    hooks: list[Hook],
    client_config: dict[str, Any],
    *,
    timeout_seconds: int = 10,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The validating configuration pointing every hook at `{url}/{handler_id}` with kopf's
    CA bundle.

    With a `service` ({namespace, name, port}) in `client_config` instead of a `url`, every
    hook points at that Service (path `/{handler_id}`): the apiserver then reaches any
    ready replica, not whichever one published last.
    """
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": _metadata(owner),
        "webhooks": [
            {
                "name": hook.webhook_name,
                "admissionReviewVersions": ["v1"],
                # Admission only reads: quota is charged by the claim, never here.
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                "timeoutSeconds": timeout_seconds,
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "resources": [hook.plural],  # never the status subresource
                        "operations": list(hook.operations),
                        "scope": "Namespaced" if hook.namespaced else "Cluster",
                    }
                ],
                "matchConditions": [{"name": "spec-changed", "expression": SPEC_CHANGED}],
                "clientConfig": _client_config(client_config, hook),
            }
            for hook in hooks
        ],
    }


def mutating_configuration(
    hooks: list[Hook],
    client_config: dict[str, Any],
    *,
    timeout_seconds: int = 10,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The mutating configuration: each hook on CREATE of its kind, at the same endpoint."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": _metadata(owner),
        "webhooks": [
            {
                "name": hook.webhook_name,
                "admissionReviewVersions": ["v1"],
                "sideEffects": "None",
                "failurePolicy": "Fail",
                "matchPolicy": "Equivalent",
                # Another plugin's change is nothing to us: finalizers are added once.
                "reinvocationPolicy": "Never",
                "timeoutSeconds": timeout_seconds,
                "rules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": [VERSION],
                        "resources": [hook.plural],
                        "operations": list(hook.operations),
                        "scope": "Namespaced" if hook.namespaced else "Cluster",
                    }
                ],
                "clientConfig": _client_config(client_config, hook),
            }
            for hook in hooks
        ],
    }


def _client_config(client_config: dict[str, Any], hook: Hook) -> dict[str, Any]:
    if "service" in client_config:
        where: dict[str, Any] = {
            "service": {**client_config["service"], "path": f"/{hook.handler_id}"}
        }
    else:
        where = {"url": f"{client_config['url'].rstrip('/')}/{hook.handler_id}"}
    if "caBundle" in client_config:
        where["caBundle"] = client_config["caBundle"]
    return where


def _metadata(owner: dict[str, Any] | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": CONFIGURATION_NAME,
        "labels": {"app.kubernetes.io/managed-by": "kubenova-operator"},
    }
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return metadata


def owner_reference(cluster_role: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to `cluster_role` (as read back). No blockOwnerDeletion: deleting
    the role must never wait on the webhook (nor need rights on the role's finalizers)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "name": cluster_role["metadata"]["name"],
        "uid": cluster_role["metadata"]["uid"],
    }
