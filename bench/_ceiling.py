"""The apiserver's own ceiling: raw create and status-patch rates of a trivial custom resource.

Measured in the same run as the figure it is the yardstick for, from the same Python client,
so a loaded machine lowers both alike.
"""

from __future__ import annotations

import asyncio
import json
import time

from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient
from kubenova.kube.paths import ResourceKind

TRIVIAL = ResourceKind("bench.kubenova.io", "v1", "trivials", True, "Trivial")
TRIVIAL_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "trivials.bench.kubenova.io"},
    "spec": {
        "group": "bench.kubenova.io",
        "scope": "Namespaced",
        "names": {"kind": "Trivial", "plural": "trivials", "singular": "trivial"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}


def install_trivial(access: ClusterAccess) -> None:
    """The Trivial CRD, established (the namespace `bench` must exist to measure)."""
    access.kubectl("apply", "-f", "-", input=json.dumps(TRIVIAL_CRD))
    access.kubectl("wait", "--for=condition=Established", "crd/trivials.bench.kubenova.io")


async def ceiling(
    client: KubeClient, count: int, concurrency: int = 32, namespace: str = "bench"
) -> dict[str, float]:
    """Creates/s, then status patches/s, of `count` Trivials in `namespace`."""
    gate = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        async with gate:
            await client.create(
                TRIVIAL,
                {
                    "apiVersion": "bench.kubenova.io/v1",
                    "kind": "Trivial",
                    "metadata": {"name": f"t{i}"},
                },
                namespace,
            )

    async def patch(i: int) -> None:
        async with gate:
            await client.patch(
                TRIVIAL, f"t{i}", {"status": {"n": i}}, namespace, subresource="status"
            )

    started = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(count)))
    created = time.perf_counter() - started
    started = time.perf_counter()
    await asyncio.gather(*(patch(i) for i in range(count)))
    patched = time.perf_counter() - started
    return {
        "create_per_s": round(count / created, 1),
        "status_patch_per_s": round(count / patched, 1),
    }
