"""Server-sent events: one watch as the user per open page, pushed as it happens (no polling).

The page hands over the resourceVersion it was rendered from, so the stream starts exactly
where the page ends: nothing is missed and nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from kubenova.dashboard.app import dashboard_of
from kubenova.dashboard.context import context, object_name
from kubenova.dashboard.identity import acting_as
from kubenova.dashboard.instances import INSTANCES, summary
from kubenova.dashboard.render import age
from kubenova.errors import ApiError

# A comment line now and then keeps proxies from closing an idle stream.
KEEPALIVE = 20.0


async def _stream(
    request: web.Request, user: str, namespace: str, field_selector: str | None, full: bool
) -> web.StreamResponse:
    rv = request.query.get("rv") or None
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"}
    )
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    client = dashboard_of(request).client
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

    async def pump() -> None:
        with acting_as(user):
            async for event in client.watch(
                INSTANCES, namespace, field_selector=field_selector, resource_version=rv
            ):
                data: dict[str, Any] = {"type": event.type, **summary(event.object)}
                if full:
                    status = event.object.get("status") or {}
                    data["console"] = (status.get("console") or {}).get("tail") or ""
                    data["power"] = (event.object.get("spec") or {}).get("powerState", "Running")
                    data["conditions"] = [
                        {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
                        | {"since": age(c.get("lastTransitionTime"))}
                        for c in status.get("conditions") or []
                    ]
                await queue.put(f"data: {json.dumps(data)}\n\n".encode())

    task = asyncio.create_task(pump())
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, task}, timeout=KEEPALIVE, return_when=asyncio.FIRST_COMPLETED
            )
            if getter in done:
                await response.write(getter.result())
                continue
            getter.cancel()
            if task in done:
                error = task.exception()
                message = str(error) if isinstance(error, ApiError) else "watch ended"
                await response.write(f"event: failed\ndata: {json.dumps(message)}\n\n".encode())
                break
            await response.write(b": keepalive\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    return response


async def instances(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    return await _stream(request, ctx.user, ctx.namespace, None, False)


async def instance(request: web.Request) -> web.StreamResponse:
    ctx = await context(request)
    selector = f"metadata.name={object_name(request)}"
    return await _stream(request, ctx.user, ctx.namespace, selector, True)


def register(app: web.Application) -> None:
    app.router.add_get("/p/{project}/live/instances", instances)
    app.router.add_get("/p/{project}/live/instances/{name}", instance)
