"""The ValidatingWebhookConfiguration the operator publishes for its webhook endpoint.

kopf serves the endpoint; the configuration is ours (not kopf's managed one) because it
needs `matchConditions`: an UPDATE reaches the webhook only when `spec` changed, so the
operator's and the agents' metadata writes (finalizers, labels) and every status write
(a subresource, never matched) go through even while the operator is down.

Failure policy: Fail. While the webhook cannot answer, creating or changing the spec of
an Instance, Volume, Network or Project is refused ("failed calling webhook"), because admitting
it unchecked could break a quota or let a bad reference in; nothing could schedule it
meanwhile anyway. Deletes of Instances and Volumes are never intercepted.
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
SPEC_CHANGED = "request.operation != 'UPDATE' || object.spec != oldObject.spec"


@dataclass(frozen=True)
class Hook:
    """One kopf validating handler (`handler_id`) and what it is called for."""

    handler_id: str
    plural: str
    operations: tuple[str, ...]
    namespaced: bool = True

    @property
    def webhook_name(self) -> str:
        return f"{self.plural}.validate.{GROUP}"


def webhook_configuration(
    hooks: list[Hook], client_config: dict[str, Any], *, timeout_seconds: int = 10
) -> dict[str, Any]:
    """The configuration pointing every hook at `{url}/{handler_id}` with kopf's CA bundle.

    With a `service` ({namespace, name, port}) in `client_config` instead of a `url`, every
    hook points at that Service (path `/{handler_id}`): the apiserver then reaches any
    ready replica, not whichever one published last.
    """
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {
            "name": CONFIGURATION_NAME,
            "labels": {"app.kubernetes.io/managed-by": "kubenova-operator"},
        },
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
