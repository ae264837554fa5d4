"""`list_pages` against the real apiserver: every object once, across continue tokens.

The informers' first lists and the audit read through it, a page at a time, so that
10,000 Instances are never held whole; a lost or repeated page would be a lost or doubled
object. Pages of two here, so that five objects take three pages.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient, load_config, watch
from kubenova.kube.meta import Body
from kubenova.kube.paths import LEASES, NAMESPACES

pytestmark = pytest.mark.apiserver


def a_lease(name: str) -> Body:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "labels": {"page-test": "yes"}},
        "spec": {"holderIdentity": name},
    }


def test_every_object_comes_once_across_pages(
    apiserver: ClusterAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "LIST_PAGE", 2)
    namespace = f"pages-{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[list[tuple[str, str, str]]]:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            await client.create(NAMESPACES, {"metadata": {"name": namespace}})
            try:
                for i in range(5):
                    await client.create(LEASES, a_lease(f"l{i}"), namespace)
                pages = []
                async for page in watch.list_pages(
                    client,
                    LEASES,
                    namespace,
                    label_selector="page-test=yes",
                    transform=lambda body: {**body, "seen": True},
                ):
                    pages.append(
                        [
                            (item["kind"], item["metadata"]["name"], str(item.get("seen")))
                            for item in page["items"]
                        ]
                    )
                return pages
            finally:
                await client.delete(NAMESPACES, namespace)

    pages = asyncio.run(scenario())
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(item for page in pages for item in page) == [
        ("Lease", f"l{i}", "True") for i in range(5)
    ]


def test_objects_are_counted_without_reading_them_all(apiserver: ClusterAccess) -> None:
    namespace = f"count-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[int, int, int, int]:
        async with KubeClient(load_config(apiserver.kubeconfig)) as client:
            await client.create(NAMESPACES, {"metadata": {"name": namespace}})
            try:
                empty = await watch.count_objects(client, LEASES, namespace)
                for i in range(7):
                    await client.create(LEASES, a_lease(f"l{i}"), namespace)
                extra = a_lease("other")
                extra["metadata"]["labels"] = {"page-test": "no"}
                await client.create(LEASES, extra, namespace)
                everything = await watch.count_objects(client, LEASES, namespace)
                # A selector leaves out remainingItemCount: counted page by page instead.
                selected = await watch.count_objects(
                    client, LEASES, namespace, label_selector="page-test=yes"
                )
                single = await watch.count_objects(
                    client, LEASES, namespace, label_selector="page-test=no"
                )
                return empty, everything, selected, single
            finally:
                await client.delete(NAMESPACES, namespace)

    assert asyncio.run(scenario()) == (0, 8, 7, 1)
