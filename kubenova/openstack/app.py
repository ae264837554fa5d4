"""The one aiohttp application serving every endpoint of the catalog, and `serve()`.

Layout (as devstack's): /identity, /compute/v2.1, /image/v2, /volume/v3/{project},
/network/v2.0, each root answering a version discovery document. A middleware checks the
token (locally) of everything but discovery and token issuing, negotiates the compute
microversion, and turns a Fault into the error body of the service asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from kubenova.errors import ApiError
from kubenova.kube import KubeClient
from kubenova.openstack import (
    attachments,
    blockstorage,
    compute,
    identity,
    image,
    network,
    servers,
    upload,
)
from kubenova.openstack.cache import WatchCache
from kubenova.openstack.cloud import CLOUD_KEY, TOKEN_KEY, Cloud
from kubenova.openstack.faults import Fault, Service, from_api_error, render
from kubenova.openstack.microversion import MICROVERSION_KEY, negotiate, version_headers
from kubenova.openstack.tokens import TokenInvalid, TokenIssuer
from kubenova.operator.auth import AuthBackend

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC = {"/identity/v3/auth/tokens"}  # POST only; discovery documents are public too


def service_of(path: str) -> Service:
    head = path.strip("/").split("/", 1)[0]
    try:
        return Service(head)
    except ValueError:
        return Service.COMPUTE


def is_discovery(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    return len(parts) <= 1 or (len(parts) == 2 and parts[1] in ("v3", "v2.1", "v2", "v2.0"))


@web.middleware
async def openstack(request: web.Request, handler: Handler) -> web.StreamResponse:
    service = service_of(request.path)
    try:
        if not (
            is_discovery(request.path) or (request.path in PUBLIC and request.method == "POST")
        ):
            text = request.headers.get("X-Auth-Token", "")
            try:
                token = request.app[CLOUD_KEY].issuer.validate(text)
            except TokenInvalid as exc:
                raise Fault(401, "The request you have made requires authentication.") from exc
            if service is not Service.IDENTITY and not token.project:
                # An unscoped token names no namespace: nothing but Identity is for it.
                raise Fault(401, "a project-scoped token is needed for this service")
            if not await request.app[CLOUD_KEY].still_allowed(token):
                raise Fault(401, "The request you have made requires authentication.")
            request[TOKEN_KEY] = token
        if service is Service.COMPUTE:
            request[MICROVERSION_KEY] = negotiate(request.headers)
        response = await handler(request)
    except Fault as fault:
        response = render(service, fault)
    except ApiError as exc:
        response = render(service, from_api_error(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = render(service, Fault(exc.status, exc.reason))
    if service is Service.COMPUTE and MICROVERSION_KEY in request:
        response.headers.update(version_headers(request[MICROVERSION_KEY]))
    return response


def build_app(cloud: Cloud, store: upload.UploadStore | None = None) -> web.Application:
    # client_max_size bounds JSON bodies; image data is streamed (upload.py), never read whole.
    app = web.Application(middlewares=[openstack], client_max_size=1024**2)
    app[CLOUD_KEY] = cloud
    app[upload.STORE_KEY] = store
    app[image.UPLOADS_KEY] = {}
    app[network.RESERVATIONS_KEY] = {}
    app[servers.VIEWS_KEY] = {}
    for module in (identity, compute, servers, attachments, image, upload, blockstorage, network):
        app.router.add_routes(module.routes)
    return app


async def serve(
    client: KubeClient,
    backend: AuthBackend,
    issuer: TokenIssuer,
    *,
    host: str,
    port: int,
    public_url: str | None = None,
    ready: Callable[[int], None] | None = None,
    store: upload.UploadStore | None = None,
) -> None:
    """Fill the watch cache, then serve until cancelled."""
    cache = WatchCache(client)
    cloud = Cloud(issuer, cache, client, backend, public_url)
    caching = asyncio.create_task(cache.run(), name="osapi-cache")
    try:
        await cache.synced()
        runner = web.AppRunner(build_app(cloud, store), access_log=log)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = port
        for socket in runner.addresses:  # the port actually bound (port 0: a free one)
            bound = int(socket[1])
        log.info("OpenStack API on %s:%d", host, bound)
        if ready is not None:
            ready(bound)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
    finally:
        caching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await caching
