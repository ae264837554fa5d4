"""Runs the volume attacher for this compute host: its Instances in, plugged volumes out;
and the sweep of the CHAP secrets no attachment here needs any more."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from kubenova.agents.compute.attacher import (
    ATTACHER_MANAGER,
    INSTANCES,
    AttacherSettings,
    VolumeAttacher,
)
from kubenova.agents.compute.chap_secrets import SWEEP_INTERVAL, SecretSweeper
from kubenova.agents.compute.driver import ComputeDriver
from kubenova.api.v1alpha1 import Host
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.objects import apply_status
from kubenova.kube.watch import ListWatch

HOSTS = kubenova_kind(Host)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttacherServiceSettings:
    host: str
    workers: int = 4
    resync_interval: float = 60.0
    events: bool = True
    # The interface AoE traffic leaves by; its MAC goes to Host.status.storageMAC, which
    # volume hosts' vblade access lists admit.
    storage_interface: str | None = None
    secret_sweep_interval: float = SWEEP_INTERVAL


class AttacherService:
    """Watches this host's Instances and plugs their volumes; `await run()` until cancelled."""

    def __init__(
        self, client: KubeClient, driver: ComputeDriver, settings: AttacherServiceSettings
    ) -> None:
        self.settings = settings
        self.client = client
        self.events = EventRecorder(client, ATTACHER_MANAGER, enabled=settings.events)
        self.secrets = SecretSweeper(
            client, driver, settings.host, interval=settings.secret_sweep_interval
        )
        self.attacher = VolumeAttacher(
            client, driver, AttacherSettings(host=settings.host), self.events, self.secrets.poke
        )
        self.watch = ListWatch.placed_on(
            client,
            INSTANCES,
            self.attacher,
            settings.host,
            workers=settings.workers,
            what="attacher",
        )

    async def run(self) -> None:
        if self.settings.storage_interface:
            await self.publish_storage_mac(self.settings.storage_interface)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self.secrets.run(), name="chap-secret-sweep")
                tasks.create_task(
                    self.watch.run(
                        resync=self.resync, resync_interval=self.settings.resync_interval
                    ),
                    name="attacher-watch",
                )
        finally:
            await self.events.flush()

    async def publish_storage_mac(self, interface: str) -> str:
        """Report the storage interface's MAC on this host's Host (own field manager)."""
        mac = Path(f"/sys/class/net/{interface}/address").read_text().strip()
        host = {"metadata": {"name": self.settings.host}}
        await apply_status(self.client, HOSTS, host, {"storageMAC": mac}, manager=ATTACHER_MANAGER)
        log.info("host %s: storage MAC %s (%s)", self.settings.host, mac, interface)
        return mac

    async def resync(self) -> None:
        """Catch up with a fresh list and look at every Instance again."""
        try:
            await self.watch.relist()
        except Exception as exc:  # a failed relist is retried at the next resync
            log.warning("attacher resync on %s failed: %s", self.settings.host, exc)
        self.watch.mark_all()
