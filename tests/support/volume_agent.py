"""A volume host's agent service for tests: the real VolumeService (with the driver a test
picks) in a background event loop, with its own API client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import ExportDriver
from kubenova.agents.volume.service import VolumeService, VolumeServiceSettings
from tests.support.background import BackgroundService


class VolumeAgent(BackgroundService[VolumeService]):
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
        options = VolumeServiceSettings(host=host, **({"resync_interval": 3600.0} | settings))

        def build(client: Any) -> VolumeService:
            return VolumeService(client, drivers, self.store, options)

        super().__init__(
            kubeconfig, build, ready=lambda s: s.synced.wait(), user_agent=f"volume-{host}"
        )

    def resync(self) -> None:
        self.call(self.service.resync())
