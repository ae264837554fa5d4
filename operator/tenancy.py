"""A Project's namespace and what it still holds: one answer for the webhook and the reconciler.

The admission webhook refuses deleting a Project whose namespace holds Instances or
Volumes; the Project reconciler holds the deletion with its finalizer for the same reason.
Both read these two facts here, so neither domain imports the other.
"""

from __future__ import annotations

from kubenova.api.v1alpha1 import Instance, Volume
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.meta import Body
from kubenova.kube.watch import count_objects

INSTANCES = kubenova_kind(Instance)
VOLUMES = kubenova_kind(Volume)


def project_namespace(body: Body) -> str:
    """The namespace a Project holds: spec.namespace, else its own name."""
    return str((body.get("spec") or {}).get("namespace") or body["metadata"]["name"])


async def holdings(client: KubeClient, namespace: str) -> dict[str, int]:
    """How many Instances and Volumes the namespace holds, by kind."""
    return {
        Instance.crd.kind: await count_objects(client, INSTANCES, namespace),
        Volume.crd.kind: await count_objects(client, VOLUMES, namespace),
    }
