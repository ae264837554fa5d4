"""An agent service (anything with `async run()`) in a background event loop with its own client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar


class Service(Protocol):
    async def run(self) -> None: ...


S = TypeVar("S", bound=Service)


class BackgroundService(Generic[S]):
    """Builds the service with a fresh KubeClient inside the loop, runs it until `stop()`."""

    def __init__(
        self,
        kubeconfig: Path,
        build: Callable[[Any], S],
        *,
        ready: Callable[[S], Awaitable[Any]] | None = None,
        user_agent: str = "test-service",
    ) -> None:
        from kubenova.kube import KubeClient, load_config  # noqa: PLC0415

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

        async def make() -> tuple[Any, S]:
            client = KubeClient(load_config(kubeconfig), user_agent=user_agent)
            return client, build(client)

        self.client, self.service = self.call(make())
        self._task = asyncio.run_coroutine_threadsafe(self.service.run(), self._loop)
        if ready is not None:
            self.call(asyncio.wait_for(ready(self.service), timeout=60))

    def call(self, coro: Awaitable[Any]) -> Any:
        """Run a coroutine in the service's loop and wait for its result."""

        async def wrapped() -> Any:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout=300)

    @property
    def writes(self) -> int:
        return sum(self.client.writes.values())

    def stop(self) -> None:
        """Cancel the service and close its client and loop (again: nothing happens)."""
        if not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(self._task.cancel)
        with contextlib.suppress(concurrent.futures.CancelledError):
            self._task.result(timeout=60)
        self.call(self.client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
