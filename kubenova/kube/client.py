"""The async REST client: JSON in, JSON out, typed errors, counted writes, resumable watches."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp.http_exceptions import LineTooLong

from kubenova.errors import ApiError, Conflict, Gone, NotFound
from kubenova.metrics import API_WRITES

from .config import ConnectionConfig
from .credentials import BearerToken
from .meta import Body
from .paths import ResourceKind

log = logging.getLogger(__name__)

THROTTLE_RETRIES = 10
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# The apiserver sends a watch a BOOKMARK about once a minute even when nothing changes:
# a watch silent for longer is on a dead (say half-open) connection and is reopened.
WATCH_IDLE_TIMEOUT = 90.0
# The apiserver ends a watch after this long (cleanly, with a last bookmark); it is reopened.
WATCH_SERVER_TIMEOUT = 300
# An event is one object (etcd keeps at most ~1.5 MiB) as one JSON line: a longer line is
# garbage, not an event.
MAX_WATCH_LINE = 16 * 1024 * 1024

_ERRORS: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 410: Gone}


class MalformedEvent(ValueError):
    """A watch line that is not a whole event (truncated, garbled): the watch is reopened."""


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED (BOOKMARK and ERROR are handled inside)
    object: Body


class KubeClient:
    """One aiohttp session to one API server; create inside a running event loop."""

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        user_agent: str = "kubenova",
        watch_idle_timeout: float = WATCH_IDLE_TIMEOUT,
        write_guard: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.watch_idle_timeout = watch_idle_timeout
        # Called before every write; raising refuses it (a leader that cannot prove it
        # still leads must not write: kubenova.kube.leader).
        self._write_guard = write_guard
        self._user_agent = user_agent
        self._token = BearerToken(config.token, config.token_file)
        self._connector = _CountingConnector(ssl=config.ssl_context(), limit=64)
        self._session = aiohttp.ClientSession(
            base_url=config.server,
            headers={"User-Agent": user_agent, "Accept": "application/json"},
            connector=self._connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        self.writes: Counter[str] = Counter()  # "PATCH instances/status" -> count
        # The metric's children, looked up once: `labels()` per write shows in a drain.
        self._write_metrics: dict[tuple[str, str], Any] = {}
        self._warnings_logged: set[str] = set()

    @property
    def connections_opened(self) -> int:
        """New connections so far: a benchmark tells a pool that churns from one that keeps
        its connections (each new one is a TCP + TLS handshake)."""
        return self._connector.opened

    def _log_warnings(self, method: str, path: str, warnings: list[str]) -> None:
        """Log what the apiserver warns about (a deprecated API, a field it dropped), each
        text once per client as client-go's deduplicating handler does: a bug in a body we
        build shows in the log without flooding it."""
        for warning in warnings:
            if warning not in self._warnings_logged and len(self._warnings_logged) < 1000:
                self._warnings_logged.add(warning)
                log.warning("%s %s: the apiserver warns: %s", method, path, warning)

    async def close(self) -> None:
        log.info("%s: api connections opened: %d", self._user_agent, self.connections_opened)
        await self._session.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
    ) -> Body:
        """One request; raises ApiError (or a subclass) on any non-2xx answer.

        `headers` are sent as well (Impersonate-User: a request made as someone else)."""
        if method != "GET":
            if self._write_guard is not None:
                self._write_guard()
            resource = _counted(path)
            self.writes[f"{method} {resource}"] += 1
            if (metric := self._write_metrics.get((method, resource))) is None:
                metric = API_WRITES.labels(self._user_agent, method, resource)
                self._write_metrics[(method, resource)] = metric
            metric.inc()
        # orjson: several times faster than json, and every answer and watch event of a
        # drain is decoded on the event loop (a twentieth of it with json).
        data = None if body is None else orjson.dumps(body)
        for attempt in range(THROTTLE_RETRIES + 1):
            try:
                async with self._open(
                    method,
                    path,
                    data=data,
                    params=params,
                    headers=(headers or {})
                    | ({"Content-Type": content_type} if data is not None else {}),
                    timeout=_timeout(timeout),
                ) as response:
                    payload = await response.read()
                    if "Warning" in response.headers:
                        self._log_warnings(method, path, response.headers.getall("Warning"))
            except aiohttp.ClientError as exc:
                if isinstance(exc, OSError):
                    raise  # a refused connection already is one
                # A connection the server dropped mid-request (an apiserver restarting) is
                # as transient as a refused one: raised as an OSError like it, so that every
                # caller's retry of transport failures (`except OSError`) covers it too.
                raise ConnectionResetError(f"{method} {path}: {exc!r}") from exc
            if response.status == 429 and attempt < THROTTLE_RETRIES:
                # Throttled, or a resource's storage still initialising: the request was
                # not processed, so sending it again is safe.
                await asyncio.sleep(_retry_after(response.headers.get("Retry-After")))
                continue
            if response.status >= 300:
                raise _error(response.status, payload)
            return orjson.loads(payload) if payload else {}
        raise AssertionError("unreachable")

    @contextlib.asynccontextmanager
    async def _open(
        self, method: str, path: str, *, headers: dict[str, str], **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One response, sent with the current token; once more after a 401 if the token
        file holds another token by then (rotated between our stat and the server's check)."""
        token = self._token.current()
        response = await self._session.request(
            method, path, headers=_with_token(headers, token), **kwargs
        )
        try:
            if response.status == 401 and (newer := self._token.reload()) not in (None, token):
                response.release()
                log.info("%s %s: 401 with a stale token; retrying with the new one", method, path)
                response = await self._session.request(
                    method, path, headers=_with_token(headers, newer), **kwargs
                )
            yield response
        finally:
            response.release()

    # -- typed conveniences ------------------------------------------------------------------

    async def get(self, kind: ResourceKind, name: str, namespace: str | None = None) -> Body:
        return await self.request("GET", kind.path(namespace, name))

    async def list(
        self,
        kind: ResourceKind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_: str | None = None,
    ) -> Body:
        """One list; with `limit`, one page of it (`metadata.continue` names the next:
        every page comes from the snapshot of the first, at its resourceVersion)."""
        params = _selectors(label_selector, field_selector)
        if limit is not None:
            params["limit"] = str(limit)
        if continue_:
            params["continue"] = continue_
        return await self.request("GET", kind.path(namespace), params=params)

    async def create(self, kind: ResourceKind, body: Body, namespace: str | None = None) -> Body:
        return await self.request("POST", kind.path(namespace), body=body)

    async def patch(
        self,
        kind: ResourceKind,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str = "",
        patch_type: str = MERGE_PATCH,
        field_manager: str | None = None,
        force: bool = False,
    ) -> Body:
        params = {"fieldManager": field_manager} if field_manager else {}
        if force:
            params["force"] = "true"
        if patch_type == APPLY_PATCH:
            # The apiserver's strict check of an apply parses its YAML body a second time
            # (~0.1 ms of its CPU per write) to find duplicate keys, which a body serialised
            # from a dict cannot have; an unknown field is refused by name either way, when
            # the typed patch is built.
            params["fieldValidation"] = "Ignore"
        return await self.request(
            "PATCH",
            kind.path(namespace, name, subresource),
            body=patch,
            params=params or None,
            content_type=patch_type,
        )

    async def delete(self, kind: ResourceKind, name: str, namespace: str | None = None) -> Body:
        return await self.request("DELETE", kind.path(namespace, name))

    async def watch(
        self,
        kind: ResourceKind,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
    ) -> AsyncIterator[WatchEvent]:
        """List, then watch from that list's resourceVersion, forever; relists after a 410.

        Every existing object is first yielded as ADDED, so a consumer starting up sees the
        whole (selected) world before the changes: level-triggered by construction.
        """
        # No byte for watch_idle_timeout (not even a bookmark): the connection is dead.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=10, sock_read=self.watch_idle_timeout
        )
        while True:
            try:
                if resource_version is None:  # the relist after a 410 fails like the watch
                    listing = await self.list(
                        kind,
                        namespace,
                        label_selector=label_selector,
                        field_selector=field_selector,
                    )
                    for item in listing.get("items", []):
                        item.setdefault("apiVersion", kind.api_version)
                        item.setdefault("kind", kind.kind)
                        yield WatchEvent("ADDED", item)
                    resource_version = listing["metadata"]["resourceVersion"]
                params = _selectors(label_selector, field_selector) | {
                    "watch": "1",
                    "allowWatchBookmarks": "true",
                    "resourceVersion": resource_version,
                    "timeoutSeconds": str(WATCH_SERVER_TIMEOUT),
                }
                async with self._open(
                    "GET", kind.path(namespace), params=params, headers={}, timeout=timeout
                ) as response:
                    if response.status >= 300:
                        raise _error(response.status, await response.read())
                    while line := await response.content.readline(max_line_length=MAX_WATCH_LINE):
                        if not line.strip():
                            continue
                        event_type, obj = _parse_event(line)
                        resource_version = obj["metadata"]["resourceVersion"]
                        if event_type != "BOOKMARK":
                            yield WatchEvent(event_type, obj)
            except Gone:
                resource_version = None  # too old: list again
            except ApiError as exc:
                if not exc.temporary:
                    raise
                # An apiserver starting up (paths not installed yet: 503) or whose etcd
                # restarts (storage initialising: 429) answers before it can watch. As
                # transient as a refused connection: giving up would end the caller's watch
                # (and with it an agent's service) over a restart.
                log.warning(
                    "watch of %s refused for now (%s); resuming from %s",
                    kind.plural,
                    exc,
                    resource_version,
                )
                await asyncio.sleep(1)
            except (TimeoutError, aiohttp.ClientError, MalformedEvent, LineTooLong) as exc:
                # Closed (not kept for reuse) on the way out of `_open`: the response is
                # unfinished. Resumed from the last event seen, so nothing is lost.
                log.warning(
                    "watch of %s interrupted (%s: %s); resuming from %s",
                    kind.plural,
                    type(exc).__name__,
                    exc,
                    resource_version,
                )
                await asyncio.sleep(1)


class _CountingConnector(aiohttp.TCPConnector):
    """Counts the connections it opens. (A TraceConfig would too, but with one, aiohttp
    builds and awaits half a dozen trace signals for every request: a tenth of its cost.)"""

    opened = 0

    async def _create_connection(
        self, req: aiohttp.ClientRequest, traces: list[Any], timeout: aiohttp.ClientTimeout
    ) -> Any:
        protocol = await super()._create_connection(req, traces, timeout)
        self.opened += 1
        return protocol


def _parse_event(line: bytes) -> tuple[str, Body]:
    """A watch line's type and object; raises Gone or another ApiError for ERROR events."""
    try:
        event = orjson.loads(line)
        event_type, obj = event["type"], event["object"]
        if not isinstance(obj, dict):
            raise TypeError("the object is not a mapping")
        if event_type != "ERROR" and not isinstance(obj["metadata"]["resourceVersion"], str):
            raise TypeError("resourceVersion is not a string")
    except (ValueError, KeyError, TypeError) as exc:
        snippet = line[:200].decode(errors="replace")
        raise MalformedEvent(f"{type(exc).__name__} {exc} in {snippet!r}") from exc
    if event_type == "ERROR":
        if obj.get("code") == 410:
            raise Gone(410, "Expired", obj.get("message", ""))
        raise _error(obj.get("code", 500), json.dumps(obj).encode())
    return event_type, obj


def _with_token(headers: dict[str, str], token: str | None) -> dict[str, str]:
    return headers | {"Authorization": f"Bearer {token}"} if token else headers


@functools.cache
def _timeout(total: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=total)


def _retry_after(header: str | None) -> float:
    try:
        return min(5.0, max(0.1, float(header))) if header else 0.5
    except ValueError:
        return 0.5


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def _counted(path: str) -> str:
    """`/apis/g/v/namespaces/ns/instances/x/status` -> `instances/status` (for write counts)."""
    parts = [p for p in path.split("?", maxsplit=1)[0].split("/") if p]
    if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
        parts = parts[parts.index("namespaces") + 2 :]
    elif parts[:1] == ["apis"]:
        parts = parts[3:]
    elif parts[:1] == ["api"]:
        parts = parts[2:]
    plural = parts[0] if parts else path
    sub = parts[2] if len(parts) > 2 else ""
    return f"{plural}/{sub}" if sub else plural


def _error(status: int, payload: bytes) -> ApiError:
    try:
        doc = json.loads(payload)
        reason, message = doc.get("reason", ""), doc.get("message", "")
    except ValueError:
        reason, message = "", payload.decode(errors="replace")
    return _ERRORS.get(status, ApiError)(status, reason, message)
