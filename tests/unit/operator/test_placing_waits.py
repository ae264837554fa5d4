"""Placing starts only once the Hosts and Leases are judged and the catalog is filed: the
Flavors, Images and ServerGroups of our own watches, and the Networks and Volumes that
exist now, which their kopf domains file."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from kubenova.kube.meta import Body
from kubenova.operator.catalog.store import Catalog
from kubenova.operator.runtime import Runtime


class Lister:
    """One Network exists; no Volume."""

    async def list(self, kind: Any, *_: Any, **__: Any) -> Body:
        items = [{"metadata": {"name": "net", "namespace": "demo"}}]
        return {"metadata": {}, "items": items if kind.plural == "networks" else []}


def test_placing_waits_for_the_judged_hosts_our_catalog_watches_and_kopfs_networks() -> None:
    async def scenario() -> list[str]:
        steps: list[str] = []
        hosts_synced, catalog_synced = asyncio.Event(), asyncio.Event()
        catalog = Catalog()

        async def judged() -> None:
            steps.append("judged")

        runtime = cast(Runtime, Runtime.__new__(Runtime))
        runtime.client = cast(Any, Lister())
        runtime.catalog = catalog
        runtime.host_watches = cast(Any, SimpleNamespace(synced=hosts_synced.wait))
        runtime.catalog_watches = cast(Any, SimpleNamespace(synced=catalog_synced.wait))
        runtime.hosts = cast(Any, SimpleNamespace(check_leases=judged, judged={}))
        gate = asyncio.create_task(runtime._wait_for_hosts())
        for step, done in (
            ("hosts", hosts_synced.set),
            ("catalog", catalog_synced.set),
            ("network", lambda: catalog.put("Network", "demo/net", {"metadata": {}})),
        ):
            await asyncio.sleep(0.05)
            assert not gate.done(), f"placing before {step}"
            steps.append(step)
            done()
        await asyncio.wait_for(gate, timeout=1)
        return steps

    assert asyncio.run(scenario()) == ["hosts", "catalog", "network", "judged"]
