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
    """The configuration pointing every hook at `{url}/{handler_id}` with kopf's CA bundle."""
    base_url = client_config["url"].rstrip("/")
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
                # Admission reserves quota in the inventory, except for dry runs.
                "sideEffects": "NoneOnDryRun",
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
                "clientConfig": {
                    "url": f"{base_url}/{hook.handler_id}",
                    **(
                        {"caBundle": client_config["caBundle"]}
                        if "caBundle" in client_config
                        else {}
                    ),
                },
            }
            for hook in hooks
        ],
    }
