"""The network services of several simulated hosts, run in a background event loop.

Each host's service is the agent's own `NetworkService` (built by `make_network_service`)
with its own API client, acting inside that host's network namespace.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from kubenova.agents.network.assembly import NetworkOptions, make_network_service
from kubenova.agents.network.service import NetworkService
from kubenova.kube import KubeClient, load_config


class NetworkAgents:
    def __init__(self, kubeconfig: Path) -> None:
        self._kubeconfig = kubeconfig
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.services: dict[str, NetworkService] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._clients: list[KubeClient] = []

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def start(self, options: NetworkOptions) -> NetworkService:
        async def start() -> NetworkService:
            client = KubeClient(load_config(self._kubeconfig), user_agent=f"net/{options.host}")
            self._clients.append(client)
            service = make_network_service(client, options)
            self._tasks[options.host] = asyncio.create_task(service.run())
            await asyncio.wait_for(service.synced.wait(), 30)
            return service

        service: NetworkService = self._run(start())
        self.services[options.host] = service
        return service

    def stop(self, host: str) -> None:
        async def stop() -> None:
            task = self._tasks.pop(host)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        self._run(stop())
        self.services.pop(host, None)

    def close(self) -> None:
        for host in list(self._tasks):
            self.stop(host)
        for client in self._clients:
            self._run(client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
