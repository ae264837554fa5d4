"""The start-up wait for the catalog ends when the last listed object is filed, not on a poll."""

from __future__ import annotations

import asyncio

from kubenova.operator.catalog.store import Catalog


def test_filed_returns_when_the_last_wanted_object_arrives_and_not_before() -> None:
    async def scenario() -> None:
        catalog = Catalog()
        catalog.put("Flavor", "m1.small", {"metadata": {"name": "m1.small"}})
        wanted = [("Flavor", "m1.small"), ("Network", "demo/net"), ("Image", "cirros")]
        waiting = asyncio.create_task(catalog.filed(wanted))
        await asyncio.sleep(0)
        catalog.put("Network", "demo/net", {"metadata": {"name": "net"}})
        catalog.put("Image", "other", {"metadata": {"name": "other"}})
        await asyncio.sleep(0)
        assert not waiting.done()
        catalog.put("Image", "cirros", {"metadata": {"name": "cirros"}})
        await asyncio.wait_for(waiting, timeout=1)
        # Everything there already: no wait at all; nothing wanted: neither.
        await asyncio.wait_for(catalog.filed(wanted), timeout=0.01)
        await asyncio.wait_for(catalog.filed([]), timeout=0.01)

    asyncio.run(scenario())


def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        catalog = Catalog()
        waiting = asyncio.create_task(catalog.filed([("Flavor", "gone")]))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        catalog.put("Flavor", "gone", {"metadata": {"name": "gone"}})  # no stale future set

    asyncio.run(scenario())
