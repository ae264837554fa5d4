"""The first lists read while the operator imports: exactly the lists its watches need,
read page by page, taken once, and listed anew by the watch when the prefetch failed."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from aiohttp import web

from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.config import ConnectionConfig
from kubenova.kube.meta import Body, slim
from kubenova.kube.watch import ListWatch
from kubenova.operator.catalog import FILED_BY_DOMAINS
from kubenova.operator.hosts import HostMonitor, HostWatches
from kubenova.operator.instances import InstanceReconciler, instance_watch
from kubenova.operator.prefetch import HOSTS as HOSTS_KIND
from kubenova.operator.prefetch import Prefetch, paths
from kubenova.wellknown import SYSTEM_NAMESPACE


def test_what_is_prefetched_is_what_the_placement_watches_list() -> None:
    client = cast(KubeClient, object())
    watches = HostWatches(client, cast(HostMonitor, object()), SYSTEM_NAMESPACE)
    reconciler = SimpleNamespace(echoes=SimpleNamespace(came_back=lambda body: False), uids={})
    instances = instance_watch(client, cast(InstanceReconciler, reconciler), workers=1)
    wanted = [w.kind.path(w.namespace) for w in (watches.hosts, watches.leases, instances)]
    wanted += [kubenova_kind(model).path() for model in FILED_BY_DOMAINS]
    assert paths(SYSTEM_NAMESPACE) == wanted


def host(name: str) -> Body:
    return {"metadata": {"name": name, "resourceVersion": "7"}}


async def serve(
    pages: dict[str, Body], requests: list[dict[str, str]], failing: bool
) -> tuple[web.AppRunner, str]:
    """An apiserver's list of Hosts in pages (`continue` tokens), or a 403 for every list."""

    async def handle(request: web.Request) -> web.Response:
        requests.append({**request.query, "auth": request.headers.get("Authorization", "")})
        if failing:
            return web.json_response({"reason": "Forbidden"}, status=403)
        return web.json_response(pages[request.query.get("continue", "")])

    app = web.Application()
    app.router.add_get("/apis/kubenova.io/v1alpha1/hosts", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


class NoList:
    """A client whose lists fail the test: the watch must start from the prefetched one."""

    async def list(self, *_: Any, **__: Any) -> Body:
        raise AssertionError("listed again")


class OwnList:
    async def list(self, *_: Any, **__: Any) -> Body:
        return {"metadata": {"resourceVersion": "9"}, "items": [host("c")]}


def test_a_watch_starts_from_the_prefetched_pages_once_and_lists_anew_if_it_failed() -> None:
    pages = {
        "": {"metadata": {"resourceVersion": "8", "continue": "p2"}, "items": [host("a")]},
        "p2": {"metadata": {"resourceVersion": "8"}, "items": [host("b")]},
    }

    async def scenario(failing: bool, client: Any) -> tuple[Body, list[dict[str, str]]]:
        requests: list[dict[str, str]] = []
        runner, server = await serve(pages, requests, failing)
        try:
            prefetch = Prefetch()
            prefetch.read(ConnectionConfig(server=server, token="t0k"), paths("ns")[0], slim)

            async def handler(key: str, body: Body | None) -> None:
                pass

            watch = ListWatch(cast(KubeClient, client), HOSTS_KIND, handler)
            prefetch.hand_to(watch)
            again = ListWatch(cast(KubeClient, client), HOSTS_KIND, handler)
            prefetch.hand_to(again)
            assert again.prefetched is None  # taken once
            listing = await watch._first_list(queue_pages=False)
            return listing, requests
        finally:
            await runner.cleanup()

    listing, requests = asyncio.run(scenario(False, NoList()))
    assert [item["metadata"]["name"] for item in listing["items"]] == ["a", "b"]
    assert listing["metadata"]["resourceVersion"] == "8"
    assert listing["items"][0]["kind"] == "Host"  # stamped like a watch event
    assert [r.get("continue") for r in requests] == [None, "p2"]
    assert all(r["limit"] == "500" and r["auth"] == "Bearer t0k" for r in requests)

    listing, _ = asyncio.run(scenario(True, OwnList()))
    assert [item["metadata"]["name"] for item in listing["items"]] == ["c"]
