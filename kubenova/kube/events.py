"""Kubernetes Events for what a user should see, posted in the background."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from kubenova.conditions import now_rfc3339
from kubenova.errors import ApiError

from .client import KubeClient
from .meta import Body
from .paths import CORE_EVENTS

log = logging.getLogger(__name__)


class EventRecorder:
    """Posts core/v1 Events without blocking the caller; repeats of the last one are dropped."""

    def __init__(self, client: KubeClient, component: str, *, enabled: bool = True) -> None:
        self._client = client
        self._component = component
        self._host = socket.gethostname()
        self._last: dict[str, tuple[str, str]] = {}  # object uid -> (reason, message)
        self._tasks: set[asyncio.Task[None]] = set()
        self.enabled = enabled

    def record(self, body: Body, type_: str, reason: str, message: str) -> None:
        """Queue an Event about `body` (type Normal or Warning)."""
        if not self.enabled:
            return
        meta = body["metadata"]
        uid = meta.get("uid", "")
        if self._last.get(uid) == (reason, message):
            return
        self._last[uid] = (reason, message)
        task = asyncio.create_task(self._post(body, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget(self, uid: str) -> None:
        self._last.pop(uid, None)

    async def flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _post(self, body: Body, type_: str, reason: str, message: str) -> None:
        meta = body["metadata"]
        namespace = meta.get("namespace") or "default"
        now = now_rfc3339()
        event: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": body.get("apiVersion"),
                "kind": body.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component, "host": self._host},
            "reportingComponent": self._component,
            "reportingInstance": self._host,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._client.create(CORE_EVENTS, event, namespace)
        except (ApiError, OSError) as exc:  # an Event is best effort, never a failure
            log.debug("event %s for %s not posted: %s", reason, meta["name"], exc)
