"""An agent service (anything with `async run()`) in a background event loop with its own client."""

from __future__ import annotations

import asyncio
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

        async def start() -> asyncio.Task[None]:
            return asyncio.get_running_loop().create_task(self.service.run())

        self._task: asyncio.Task[None] = self.call(start())
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

        async def finish() -> None:
            # The service's own clean-up (its `finally`: flushing Events, closing drivers)
            # runs to its end here, and so does every task it left: a task still pending
            # when the loop stops is finalised by some later garbage collection, in the
            # middle of whatever runs then (CPython 3.11.7 then fails an ast.parse).
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            await self.client.close()
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.call(finish())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
