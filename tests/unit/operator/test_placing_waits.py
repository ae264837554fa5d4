"""Placing starts only once the Hosts and Leases are judged and the catalog is filed: the
Flavors, Images and ServerGroups of our own watches, and the Networks and Volumes that
exist now, which their kopf domains file."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, cast

from kubenova.kube import KubeClient
from kubenova.kube.meta import Body
from kubenova.operator.catalog import Catalog, CatalogWatches
from kubenova.operator.runtime import Runtime


class Lister:
    """One Network exists; no Volume."""

    async def list(self, kind: Any, *_: Any, **__: Any) -> Body:
        items = [{"metadata": {"name": "net", "namespace": "demo"}}]
        return {"metadata": {}, "items": items if kind.plural == "networks" else []}


def test_placing_waits_for_the_judged_hosts_our_catalog_watches_and_kopfs_networks() -> None:
    async def scenario() -> list[str]:
        steps: list[str] = []
        hosts_synced = asyncio.Event()
        catalog = Catalog()
        catalog_watches = CatalogWatches(cast(KubeClient, Lister()), catalog)

        def catalog_synced() -> None:
            for watch in catalog_watches.watches:
                watch.synced.set()

        async def judged() -> None:
            steps.append("judged")

        runtime = cast(Runtime, Runtime.__new__(Runtime))
        runtime.host_watches = cast(Any, SimpleNamespace(synced=hosts_synced.wait))
        runtime.catalog_watches = catalog_watches
        runtime.hosts = cast(Any, SimpleNamespace(check_leases=judged, judged={}))
        gate = asyncio.create_task(runtime._wait_for_hosts())
        for step, done in (
            ("hosts", hosts_synced.set),
            ("catalog", catalog_synced),
            ("network", lambda: catalog.put("Network", "demo/net", {"metadata": {}})),
        ):
            await asyncio.sleep(0.05)
            assert not gate.done(), f"placing before {step}"
            steps.append(step)
            done()
        await asyncio.wait_for(gate, timeout=1)
        return steps

    assert asyncio.run(scenario()) == ["hosts", "catalog", "network", "judged"]


class NoList:
    async def list(self, kind: Any, *_: Any, **__: Any) -> Body:
        if kind.plural == "networks":
            raise AssertionError("the prefetched list of Networks was listed again")
        return {"metadata": {}, "items": []}


def test_the_networks_read_at_start_up_are_waited_for_without_listing_them_again() -> None:
    async def scenario() -> None:
        catalog = Catalog()
        watches = CatalogWatches(cast(KubeClient, NoList()), catalog)
        for watch in watches.watches:
            watch.synced.set()
        listing: Future[list[Body]] = Future()
        listing.set_result([{"items": [{"metadata": {"name": "n", "namespace": "demo"}}]}])
        watches.prefetched["/apis/kubenova.io/v1alpha1/networks"] = listing
        waiting = asyncio.create_task(watches.complete())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        catalog.put("Network", "demo/n", {"metadata": {}})
        await asyncio.wait_for(waiting, timeout=1)

    asyncio.run(scenario())
