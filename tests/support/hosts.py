"""Simulated hosts for operator tests: the agent's own registration and heartbeat code,
run in a background event loop, without libvirt."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubenova.agents.host import Capacity, HostRegistration
from kubenova.kube import KubeClient, load_config


class SimulatedHosts:
    """Registers hosts and keeps their Leases fresh until told to stop one."""

    def __init__(self, kubeconfig: Path, heartbeat_interval: float = 0.5) -> None:
        self._kubeconfig = kubeconfig
        self._interval = heartbeat_interval
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client: KubeClient = self._run(self._make_client())
        self._beats: dict[str, asyncio.Task[None]] = {}

    async def _make_client(self) -> KubeClient:
        return KubeClient(load_config(self._kubeconfig), user_agent="test-hosts")

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    def add(
        self,
        name: str,
        *,
        vcpus: int = 8,
        memory_mib: int = 8192,
        disk_gib: int = 100,
        zone: str = "nova",
        services: Iterable[str] = ("compute",),
        underlay_ip: str | None = None,
        clock_skew: timedelta = timedelta(0),
    ) -> None:
        """Register `name` and start its heartbeat (stamped by a clock `clock_skew` off)."""
        registration = HostRegistration(
            self._client,
            name,
            capacity=Capacity(vcpus=vcpus, memory_mib=memory_mib, disk_gib=disk_gib),
            zone=zone,
            services=tuple(services),
            underlay_ip=underlay_ip,
            heartbeat_interval=self._interval,
            lease_clock=lambda: datetime.now(UTC) + clock_skew,
        )
        self._run(registration.register())
        self._run(registration.renew())
        self._beats[name] = self._run(self._spawn(registration))

    async def _spawn(self, registration: HostRegistration) -> asyncio.Task[None]:
        return asyncio.create_task(registration.run_heartbeat())

    def stop_heartbeat(self, name: str) -> None:
        """The host's agent dies: its Lease is no longer renewed."""
        beat = self._beats.pop(name)
        self._loop.call_soon_threadsafe(beat.cancel)

    def close(self) -> None:
        for name in list(self._beats):
            self.stop_heartbeat(name)
        self._run(self._client.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
