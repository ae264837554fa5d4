"""A volume host's agent service for operator tests: the real VolumeService (with the driver a
test picks) in a background event loop, its own API client."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from pathlib import Path
from typing import Any

from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import ExportDriver
from kubenova.agents.volume.service import VolumeService, VolumeServiceSettings
from kubenova.kube import KubeClient, load_config


class VolumeAgent:
    """Runs `VolumeService` for `host` until `stop()`."""

    def __init__(
        self,
        kubeconfig: Path,
        host: str,
        drivers: dict[str, ExportDriver],
        storage_dir: Path,
        **settings: Any,
    ) -> None:
        self.host = host
        self.drivers = drivers
        self.store = BackingStore(storage_dir)
        self._kubeconfig = kubeconfig
        self._settings = VolumeServiceSettings(
            host=host, **({"resync_interval": 3600.0} | settings)
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.service: VolumeService = self._run(self._build())
        self._task: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(
            self.service.run(), self._loop
        )
        self._run(asyncio.wait_for(self.service.synced.wait(), timeout=30))

    async def _build(self) -> VolumeService:
        self._client = KubeClient(load_config(self._kubeconfig), user_agent=f"volume-{self.host}")
        return VolumeService(self._client, self.drivers, self.store, self._settings)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=120)

    @property
    def writes(self) -> int:
        return sum(self._client.writes.values())

    def resync(self) -> None:
        self._run(self.service.resync())

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._task.cancel)
        with contextlib.suppress(concurrent.futures.CancelledError):
            self._task.result(timeout=30)
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
