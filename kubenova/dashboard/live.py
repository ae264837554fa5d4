"""Server-sent events: watches as the user per open page, pushed as they happen (no polling).

A page hands over the resourceVersion it was rendered from, so the stream starts exactly
where the page ends: nothing is missed and nothing is sent twice. The Instances list and
the Instance page get the objects' fields (dashboard.js fills the cells); every other live
table gets `fragment` events: the server-rendered HTML of one keyed row (or card), which
replaces the element of that key (empty HTML removes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

from kubenova.dashboard.admin import HOSTS, host_card, image_row, placement_row, placements
from kubenova.dashboard.context import context, object_name
from kubenova.dashboard.identity import ImpersonatingClient, acting_as
from kubenova.dashboard.instances import (
    IMAGES,
    INSTANCES,
    NETWORKS,
    VOLUMES,
    attached_rows,
    event_row,
    summary,
)
from kubenova.dashboard.render import age
from kubenova.dashboard.resources import floating_rows, network_row, volume_row
from kubenova.errors import ApiError
from kubenova.kube import ResourceKind
from kubenova.kube.paths import CORE_EVENTS

# A comment line now and then keeps proxies from closing an idle stream.
KEEPALIVE = 20.0
# Host cards are redrawn at most this often: the first listing of a thousand Instances
# touches each card a thousand times, one redraw says the same.
HOST_REDRAW = 0.1

Send = Callable[[bytes], Awaitable[None]]
Feed = Callable[[Send], Coroutine[Any, Any, None]]


def fragment(key: str, markup: str, *, target: str | None = None) -> bytes:
    """A `fragment` event; `target`: the id of the element it goes into, when a page's
    stream feeds more than one (else the element that opened the stream)."""
    data: dict[str, str] = {"key": key, "html": markup}
    if target:
        data["target"] = target
    return f"event: fragment\ndata: {json.dumps(data)}\n\n".encode()


async def _serve(request: web.Request, user: str, feeds: list[Feed]) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)
    with acting_as(user):  # the feeds' tasks inherit it
        tasks: set[asyncio.Task[None]] = {asyncio.create_task(feed(queue.put)) for feed in feeds}
    try:
        while tasks:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, *tasks}, timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                await response.write(getter.result())
                continue
            getter.cancel()
            ended = done & tasks
            tasks -= ended
            for task in ended:
                error = task.exception()
                if error is None:
                    continue  # a feed with nothing (more) to watch
                message = str(error) if isinstance(error, ApiError) else "watch ended"
                await response.write(f"event: failed\ndata: {json.dumps(message)}\n\n".encode())
                return response
            if not done:
                await response.write(b": keepalive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return response


def _rows(
    client: ImpersonatingClient,
    kind: ResourceKind,
    namespace: str | None,
    render: Callable[[str, dict[str, Any]], str],
    *,
    rv: str | None,
    field_selector: str | None = None,
) -> Feed:
    """A feed of one kind: each change becomes the fragment of the changed object."""

    async def feed(send: Send) -> None:
        async for event in client.watch(
            kind, namespace, field_selector=field_selector, resource_version=rv
        ):
            key = event.object["metadata"]["name"]
            await send(fragment(key, "" if event.type == "DELETED" else render(key, event.object)))

    return feed


async def instances(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    rv = request.query.get("rv") or None
    client = ctx.dash.client

    async def feed(send: Send) -> None:
        async for event in client.watch(INSTANCES, ctx.namespace, resource_version=rv):
            data = {"type": event.type, **summary(event.object)}
            await send(f"data: {json.dumps(data)}\n\n".encode())

    return await _serve(request, ctx.user, [feed])


async def instance(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    name = object_name(request)
    rv, events_rv = request.query.get("rv") or None, request.query.get("erv") or None
    client = ctx.dash.client

    async def feed(send: Send) -> None:
        async for event in client.watch(
            INSTANCES, ctx.namespace, field_selector=f"metadata.name={name}", resource_version=rv
        ):
            status = event.object.get("status") or {}
            data: dict[str, Any] = {"type": event.type, **summary(event.object)}
            data["console"] = (status.get("console") or {}).get("tail") or ""
            data["power"] = (event.object.get("spec") or {}).get("powerState", "Running")
            data["conditions"] = [
                {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
                | {"since": age(c.get("lastTransitionTime"))}
                for c in status.get("conditions") or []
            ]
            await send(f"data: {json.dumps(data)}\n\n".encode())
            if event.type != "DELETED":
                base = f"/p/{ctx.project}/instances/{name}"
                rows = attached_rows(base, ctx.csrf, event.object)
                await send(fragment("attached", rows, target="attached"))

    events = _rows(
        client,
        CORE_EVENTS,
        ctx.namespace,
        lambda _key, body: event_row(body),
        rv=events_rv,
        field_selector=f"involvedObject.name={name},involvedObject.kind=Instance",
    )
    return await _serve(request, ctx.user, [feed, events])


async def volumes(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    project = ctx.project or ""
    feed = _rows(
        ctx.dash.client,
        VOLUMES,
        ctx.namespace,
        lambda _key, body: volume_row(project, ctx.csrf, body),
        rv=request.query.get("rv") or None,
    )
    return await _serve(request, ctx.user, [feed])


async def networks(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    render = floating_rows if request.query.get("view") == "floating" else network_row
    feed = _rows(
        ctx.dash.client,
        NETWORKS,
        ctx.namespace,
        lambda _key, body: render(body),
        rv=request.query.get("rv") or None,
    )
    return await _serve(request, ctx.user, [feed])


async def hosts(request: web.Request) -> web.StreamResponse:
    """Host cards: redrawn when the Host changes (capacity, readiness, cordon) and when an
    Instance lands on it or leaves it (the count). Both watches list first: a reconnect
    redraws every card from the truth. Like every stream it is not gated on the cached
    admin flag: the watches as the user are the authority (a 403 ends the stream)."""
    ctx = await context(request, project=False)
    client = ctx.dash.client
    known: dict[str, dict[str, Any]] = {}
    placed: dict[tuple[str, str], str] = {}
    counted = True  # until the Instances turn out unreadable
    dirty: set[str] = set()
    gone: set[str] = set()
    wake = asyncio.Event()

    def count(host: str) -> int | None:
        return sum(1 for h in placed.values() if h == host) if counted else None

    async def host_feed(_send: Send) -> None:
        async for event in client.watch(HOSTS):
            name = event.object["metadata"]["name"]
            if event.type == "DELETED":
                known.pop(name, None)
                gone.add(name)
            else:
                known[name] = event.object
            dirty.add(name)
            wake.set()

    async def instance_feed(_send: Send) -> None:
        nonlocal counted
        try:
            first, rv = await placements(client)
            placed.update(first)
            dirty.update(first.values())
            wake.set()
            async for event in client.watch(INSTANCES, resource_version=rv):
                meta = event.object["metadata"]
                key = (meta["namespace"], meta["name"])
                before = placed.pop(key, None)
                host = (event.object.get("status") or {}).get("host")
                if host and event.type != "DELETED":
                    placed[key] = host
                if before != placed.get(key):
                    dirty.update(h for h in (before, placed.get(key)) if h)
                    wake.set()
        except ApiError as error:
            if error.status != 403:
                raise
            counted = False  # may read Hosts but not every project's Instances: no counts
            dirty.update(known)
            wake.set()

    async def redraw(send: Send) -> None:
        while True:
            await wake.wait()
            await asyncio.sleep(HOST_REDRAW)
            wake.clear()
            names = sorted(dirty)
            dirty.clear()
            for name in names:
                if name in known:
                    await send(fragment(name, host_card(known[name], count(name))))
                elif name in gone:  # not merely a host the Host watch has not listed yet
                    gone.discard(name)
                    await send(fragment(name, ""))

    return await _serve(request, ctx.user, [host_feed, instance_feed, redraw])


async def placement(request: web.Request) -> web.StreamResponse:
    ctx = await context(request, project=False)
    client = ctx.dash.client
    rv = request.query.get("rv") or None

    async def feed(send: Send) -> None:
        async for event in client.watch(INSTANCES, resource_version=rv):
            meta = event.object["metadata"]
            key = f"{meta['namespace']}/{meta['name']}"
            row = "" if event.type == "DELETED" else placement_row(event.object)
            await send(fragment(key, row))

    return await _serve(request, ctx.user, [feed])


async def images(request: web.Request) -> web.StreamResponse:
    ctx = await context(request, project=False)
    feed = _rows(
        ctx.dash.client,
        IMAGES,
        None,
        lambda _k, body: image_row(body),
        rv=request.query.get("rv") or None,
    )
    return await _serve(request, ctx.user, [feed])


def register(app: web.Application) -> None:
    app.router.add_get("/p/{project}/live/instances", instances)
    app.router.add_get("/p/{project}/live/instances/{name}", instance)
    app.router.add_get("/p/{project}/live/volumes", volumes)
    app.router.add_get("/p/{project}/live/networks", networks)
    app.router.add_get("/admin/live/hosts", hosts)
    app.router.add_get("/admin/live/placement", placement)
    app.router.add_get("/admin/live/images", images)
