"""The client's watch and credentials against a scripted HTTP server: a silent connection
is given up after the idle timeout, a garbled line restarts the watch, a rotated token file
is read again, and a relist catches up with what a stalled watch missed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web

from kubenova.errors import ApiError
from kubenova.kube.client import KubeClient, WatchEvent
from kubenova.kube.config import ConnectionConfig, from_kubeconfig
from kubenova.kube.meta import Body
from kubenova.kube.paths import ResourceKind
from kubenova.kube.watch import ListWatch

THINGS = ResourceKind("", "v1", "configmaps", True, "ConfigMap")
PATH = "/api/v1/configmaps"


def thing(name: str, version: str) -> Body:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": version}}


def line(kind: str, obj: Body) -> bytes:
    return json.dumps({"type": kind, "object": obj}).encode() + b"\n"


class Scripted:
    """An HTTP server whose watch responses are scripted, one per connection, in order."""

    def __init__(self, watches: list[Callable[[web.StreamResponse], Awaitable[None]]]) -> None:
        self.watches = watches
        self.requests: list[web.Request] = []
        self.tokens: list[str] = []
        self.accepted: set[str] | None = None  # bearer tokens let in; None lets all in
        self.refusals: list[int] = []  # statuses the next watch requests are answered with

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        self.tokens.append(token)
        if self.accepted is not None and token not in self.accepted:
            return web.json_response({"reason": "Unauthorized"}, status=401)
        if "watch" not in request.query:
            return web.json_response({"metadata": {"resourceVersion": "1"}, "items": []})
        if self.refusals:
            status = self.refusals.pop(0)
            return web.json_response({"reason": "Refused", "message": "scripted"}, status=status)
        response = web.StreamResponse()
        await response.prepare(request)
        script = self.watches.pop(0) if self.watches else None
        if script is not None:
            await script(response)
        await asyncio.sleep(3600)  # a connection that is open and silent
        return response

    def watched_from(self) -> list[str]:
        return [r.query["resourceVersion"] for r in self.requests if "watch" in r.query]


async def serving(server: Scripted) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


async def first_events(stream: AsyncIterator[WatchEvent], count: int) -> list[WatchEvent]:
    events = []
    async for event in stream:
        events.append(event)
        if len(events) == count:
            break
    return events


def sends(*lines: bytes) -> Callable[[web.StreamResponse], Awaitable[None]]:
    async def script(response: web.StreamResponse) -> None:
        for chunk in lines:
            await response.write(chunk)

    return script


async def watch_against(server: Scripted, count: int, **client: Any) -> list[WatchEvent]:
    runner, url = await serving(server)
    try:
        async with KubeClient(ConnectionConfig(server=url, insecure=True), **client) as kube:
            stream = kube.watch(THINGS, resource_version="1")
            return await asyncio.wait_for(first_events(stream, count), 10)
    finally:
        await runner.cleanup()


def test_a_silent_connection_is_given_up_and_the_watch_resumes_where_it_was() -> None:
    server = Scripted(
        [sends(line("ADDED", thing("a", "5"))), sends(line("ADDED", thing("b", "6")))]
    )
    events = asyncio.run(watch_against(server, 2, watch_idle_timeout=0.5))
    assert [e.object["metadata"]["name"] for e in events] == ["a", "b"]
    assert server.watched_from() == ["1", "5"]
    first = server.requests[0].query
    assert first["allowWatchBookmarks"] == "true"
    assert int(first["timeoutSeconds"]) > 0


def test_bookmarks_keep_a_quiet_watch_alive_and_move_it_forward() -> None:
    async def quiet(response: web.StreamResponse) -> None:
        for version in ("2", "3", "4"):
            await response.write(line("BOOKMARK", thing("", version)))
            await asyncio.sleep(0.3)
        await response.write(line("ADDED", thing("a", "5")))

    server = Scripted([quiet])
    events = asyncio.run(watch_against(server, 1, watch_idle_timeout=0.6))
    assert [e.type for e in events] == ["ADDED"]
    assert server.watched_from() == ["1"]  # 1.2 s of bookmarks, never idle for 0.6 s


def test_a_garbled_or_truncated_line_restarts_the_watch_from_the_last_good_event() -> None:
    server = Scripted(
        [
            sends(line("ADDED", thing("a", "5")), b'{"type": "ADDED", "obj\n'),
            sends(b'{"type": "MODIFIED"}\n'),
            sends(b"\x00\xffnot json at all\n"),
            sends(line("ADDED", thing("b", "6"))),
        ]
    )
    events = asyncio.run(watch_against(server, 2, watch_idle_timeout=5))
    assert [e.object["metadata"]["name"] for e in events] == ["a", "b"]
    assert server.watched_from() == ["1", "5", "5", "5"]


def write_token(path: Path, token: str) -> None:
    # In place (same inode), as a careless rotation would, so only the content tells.
    with path.open("r+" if path.exists() else "w") as handle:
        handle.truncate(0)
        handle.write(token + "\n")


def test_the_token_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    write_token(token_file, "first")

    async def scenario() -> list[str]:
        server = Scripted([])
        runner, url = await serving(server)
        config = ConnectionConfig(
            server=url, insecure=True, token="stale", token_file=str(token_file)
        )
        try:
            async with KubeClient(config) as kube:
                await kube.list(THINGS)
                await asyncio.sleep(0.01)  # a new mtime, on coarse clocks too
                write_token(token_file, "second")
                os.utime(token_file, ns=(0, 0))
                await kube.list(THINGS)
        finally:
            await runner.cleanup()
        return server.tokens

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_401_reads_the_token_file_again_and_retries_once(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    write_token(token_file, "old-token")

    async def scenario() -> list[str]:
        server = Scripted([])
        runner, url = await serving(server)
        config = ConnectionConfig(server=url, insecure=True, token_file=str(token_file))
        try:
            async with KubeClient(config) as kube:
                before = token_file.stat()
                # Rotated and the old token revoked, unseen by stat: same size, inode, mtime.
                write_token(token_file, "new-token")
                os.utime(token_file, ns=(before.st_atime_ns, before.st_mtime_ns))
                server.accepted = {"new-token"}
                await kube.list(THINGS)
                server.accepted = {"nobody"}
                with pytest.raises(ApiError) as refused:
                    await kube.list(THINGS)
                assert refused.value.status == 401
        finally:
            await runner.cleanup()
        return server.tokens

    # Old token refused, new one read and accepted; then refused with no newer token: no loop.
    assert asyncio.run(scenario()) == ["old-token", "new-token", "new-token"]


class FakeLister:
    """Just enough of KubeClient for ListWatch.relist."""

    def __init__(self, listing: Body) -> None:
        self.listing = listing

    async def list(self, *_: Any, **__: Any) -> Body:
        return self.listing


def test_relist_queues_what_a_stalled_watch_missed_and_drops_what_vanished() -> None:
    async def scenario() -> dict[str, Body | None]:
        async def handler(key: str, body: Body | None) -> None:
            pass

        listing = {
            "metadata": {"resourceVersion": "20"},
            "items": [
                thing("same", "5"),
                thing("changed", "12"),
                thing("new", "15"),
                thing("deleted-meanwhile", "3"),
                thing("newer-here", "9"),
            ],
        }
        watch = ListWatch(cast(KubeClient, FakeLister(listing)), THINGS, handler)
        known = {"same": "5", "changed": "4", "vanished": "4", "created-after": "25"}
        for name, version in known.items():
            watch.queue.put(f"ns/{name}", thing(name, version))
        watch.queue.put("ns/newer-here", thing("newer-here", "21"))
        watch.queue.put("ns/deleted-meanwhile", None)  # a DELETED event after the list's read
        await watch.relist()
        return {key: watch.queue.body(key) for key in watch.known()}

    bodies = asyncio.run(scenario())
    versions = {k: b["metadata"]["resourceVersion"] if b else None for k, b in bodies.items()}
    assert versions == {
        "ns/same": "5",
        "ns/changed": "12",
        "ns/new": "15",
        "ns/vanished": None,
        "ns/created-after": "25",
        "ns/newer-here": "21",
        "ns/deleted-meanwhile": None,
    }
    assert (bodies["ns/new"] or {}).get("kind") == "ConfigMap"


class PagedLister:
    """Serves a list in pages of `limit`, as the apiserver does (continue tokens)."""

    def __init__(self, items: list[Body], version: str) -> None:
        self.items, self.version = items, version
        self.pages = 0

    async def list(
        self, *_: Any, limit: int | None = None, continue_: str | None = None, **__: Any
    ) -> Body:
        assert limit is not None, "a relist must not read everything at once"
        self.pages += 1
        start = int(continue_ or 0)
        rest = start + limit < len(self.items)
        metadata = {"resourceVersion": self.version} | (
            {"continue": str(start + limit)} if rest else {}
        )
        return {"metadata": metadata, "items": self.items[start : start + limit]}


def test_a_relist_reads_pages_and_keeps_each_object_transformed() -> None:
    def trimmed(body: Body) -> Body:
        return {**body, "metadata": {k: v for k, v in body["metadata"].items() if k != "bulky"}}

    async def scenario() -> tuple[ListWatch, PagedLister]:
        async def handler(key: str, body: Body | None) -> None:
            pass

        items = [thing(f"t{i:04d}", "5") for i in range(1201)]
        for item in items:
            item["metadata"]["bulky"] = "x" * 100
        lister = PagedLister(items, "30")
        watch = ListWatch(cast(KubeClient, lister), THINGS, handler, transform=trimmed)
        watch.queue.put("ns/vanished", thing("vanished", "4"))
        await watch.relist()
        return watch, lister

    watch, lister = asyncio.run(scenario())
    assert lister.pages == 3  # 500 + 500 + 201
    assert len(watch.known()) == 1202
    assert watch.queue.body("ns/vanished") is None  # older than the list, not in it: gone
    assert all("bulky" not in b["metadata"] for b in watch.bodies())


def test_an_apiserver_not_ready_yet_is_waited_for_and_a_refusal_for_good_is_raised() -> None:
    # What a restarting apiserver answers (503 before its paths are installed, 429 while its
    # etcd storage initialises) is retried from where the watch was ...
    server = Scripted([sends(line("ADDED", thing("a", "5")))])
    server.refusals = [503, 429, 500]
    events = asyncio.run(watch_against(server, 1))
    assert [e.object["metadata"]["name"] for e in events] == ["a"]
    assert server.watched_from() == ["1", "1", "1", "1"]
    # ... what no retry changes (here 403 Forbidden) ends the watch.
    server = Scripted([])
    server.refusals = [403]
    with pytest.raises(ApiError) as refused:
        asyncio.run(watch_against(server, 1))
    assert refused.value.status == 403


def test_a_connection_dropped_mid_request_is_an_os_error_like_a_refused_one() -> None:
    # What an apiserver being killed does to a request in flight; the heartbeat and the
    # resyncs retry transport failures as OSError, and died of ServerDisconnectedError.
    async def scenario() -> None:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.close()

        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            config = ConnectionConfig(server=f"http://127.0.0.1:{port}", insecure=True)
            async with KubeClient(config) as kube:
                with pytest.raises(OSError, match="GET /api/v1/configmaps"):
                    await kube.list(THINGS)
        finally:
            server.close()
            await server.wait_closed()

    asyncio.run(scenario())


def test_client_errors_are_what_the_watch_survives() -> None:
    # The idle timeout surfaces as aiohttp's ServerTimeoutError: both kinds the watch catches.
    assert issubclass(aiohttp.ServerTimeoutError, TimeoutError)
    assert issubclass(aiohttp.ServerTimeoutError, aiohttp.ClientError)


def test_a_kubeconfig_token_file_is_named_and_read_at_each_login(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    write_token(token_file, "first")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "clusters": [{"name": "c", "cluster": {"server": "https://k:6443/"}}],
                "users": [{"name": "u", "user": {"tokenFile": str(token_file)}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    config = from_kubeconfig(kubeconfig)
    assert (config.token, config.token_file) == (None, str(token_file))
    assert config.current_token() == "first"
    rotated = tmp_path / "rotated"
    rotated.write_text("second\n")
    os.replace(rotated, token_file)
    assert config.current_token() == "second"  # what kopf's login handler sends after a 401


class StaleLister(FakeLister):
    """A list served from a cache behind the watch we had, then a watch of `events`."""

    def __init__(self, listing: Body, events: list[WatchEvent]) -> None:
        super().__init__(listing)
        self.events = events

    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[WatchEvent]:
        for event in self.events:
            yield event


def test_a_restarted_watch_never_takes_an_older_listed_body_over_a_newer_held_one() -> None:
    """The first list of a restarted watch (from a lagging cache) is older for one object:
    the newer body the last watch delivered stays; what is newer in the list is taken."""

    async def scenario() -> dict[str, str | None]:
        async def handler(key: str, body: Body | None) -> None:
            pass

        listing = {
            "metadata": {"resourceVersion": "8"},
            "items": [thing("ahead", "7"), thing("behind", "8")],
        }
        events = [WatchEvent("MODIFIED", thing("behind", "9"))]
        watch = ListWatch(cast(KubeClient, StaleLister(listing, events)), THINGS, handler)
        watch.queue.put("ns/ahead", thing("ahead", "10"))  # from the watch before the restart
        watch.queue.put("ns/behind", thing("behind", "6"))
        await watch._follow(None)
        return {
            key: (watch.queue.body(key) or {})["metadata"]["resourceVersion"]
            for key in watch.known()
        }

    assert asyncio.run(scenario()) == {"ns/ahead": "10", "ns/behind": "9"}


class GatedLister:
    """Serves a list in two pages; the second only once `release` is set. Fails the second
    page once first when `fail_once`, and then leaves out `gone` from the next attempt."""

    def __init__(self, release: asyncio.Event, *, fail_once: bool = False) -> None:
        self.release, self.fail_once = release, fail_once
        self.gone: str | None = "b" if fail_once else None

    async def list(self, *_: Any, continue_: str | None = None, **__: Any) -> Body:
        if continue_ is None:
            first = [thing("a", "5")] + ([thing(self.gone, "5")] if self.gone else [])
            return {"metadata": {"resourceVersion": "10", "continue": "p2"}, "items": first}
        if self.fail_once:
            self.fail_once = False
            self.gone = None  # deleted before the retry's list
            raise ConnectionResetError("dropped mid-list")
        await self.release.wait()
        return {"metadata": {"resourceVersion": "10"}, "items": [thing("c", "6")]}

    async def watch(self, *_: Any, **__: Any) -> AsyncIterator[WatchEvent]:
        await asyncio.sleep(3600)
        yield WatchEvent("ADDED", {})


def test_the_first_list_is_worked_on_page_by_page_and_a_failed_attempt_leaves_no_ghost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kubenova.kube.watch.asyncio.sleep", _no_sleep)

    async def scenario(fail_once: bool) -> tuple[dict[str, Body | None], dict[str, Body | None]]:
        first_page_worked = asyncio.Event()
        seen: dict[str, Body | None] = {}

        async def handler(key: str, body: Body | None) -> None:
            seen[key] = body
            if key == "ns/a":
                first_page_worked.set()  # only then is the second page served

        lister = GatedLister(first_page_worked, fail_once=fail_once)
        watch = ListWatch(cast(KubeClient, lister), THINGS, handler)
        running = asyncio.create_task(watch.run())
        await asyncio.wait_for(watch.synced.wait(), timeout=5)
        await asyncio.sleep(0.05)
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return {key: watch.queue.body(key) for key in watch.known()}, seen

    bodies, _ = asyncio.run(scenario(False))
    assert set(bodies) == {"ns/a", "ns/c"}
    bodies, seen = asyncio.run(scenario(True))
    # Queued by the failed attempt, absent from the complete list: reconciled as deleted.
    assert "ns/b" in seen
    assert seen["ns/b"] is None
    assert bodies.get("ns/b") is None
    assert bodies["ns/a"] is not None
    assert bodies["ns/c"] is not None


_real_sleep = asyncio.sleep


async def _no_sleep(delay: float) -> None:
    await _real_sleep(min(delay, 0.01))
