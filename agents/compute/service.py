"""The agent's compute service: this host's Instances in, converged libvirt domains out.

Inputs that mark an Instance for reconcile (never act directly):
- a watch of Instances whose `status.host` is this host (cluster-wide path, field
  selector on the operator's own field: the agent never lists what is not its own);
- the driver's domain lifecycle events (a guest shut down, crashed, was destroyed...);
- a periodic resync that also refreshes console tails.
After the first full list, domains of ours with no Instance are destroyed (orphans, e.g.
deleted while the agent was down), and again at every resync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import cast

from kubenova.agents.compute.driver import ComputeDriver, LifecycleEvent
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver
from kubenova.agents.compute.migration import MigrationTuning
from kubenova.agents.compute.migration_service import MigrationService
from kubenova.agents.compute.reconciler import INSTANCES, DomainReconciler, DomainReconcilerSettings
from kubenova.agents.images.fetcher import ImageFetcher
from kubenova.errors import KubenovaError
from kubenova.kube import KubeClient
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, uid_of
from kubenova.kube.watch import ListWatch
from kubenova.wellknown import AGENT_MANAGER

log = logging.getLogger(__name__)

RESYNC_INTERVAL = 60.0


@dataclass(frozen=True)
class ComputeSettings:
    host: str
    domain_type: str | None = None
    workers: int = 4
    resync_interval: float = RESYNC_INTERVAL
    building_after: float = 1.0
    recheck_missing: float = 30.0
    events: bool = True
    migration: MigrationTuning = field(default_factory=MigrationTuning)
    # Plug NICs into the bridges this host's network service made (it runs in this agent,
    # in the root namespace where QEMU's taps are created).
    wire_nics: bool = False


class ComputeService:
    """Runs one host's domain reconciler; `await run()` until cancelled."""

    def __init__(
        self,
        client: KubeClient,
        driver: ComputeDriver,
        images: ImageFetcher,
        settings: ComputeSettings,
    ) -> None:
        self.client = client
        self.driver = driver
        self.settings = settings
        self.events = EventRecorder(client, AGENT_MANAGER, enabled=settings.events)
        self.reconciler = DomainReconciler(
            client,
            driver,
            images,
            DomainReconcilerSettings(
                host=settings.host,
                domain_type=settings.domain_type,
                building_after=settings.building_after,
                recheck_missing=settings.recheck_missing,
                wire_nics=settings.wire_nics,
            ),
            self.events,
        )
        self.watch = ListWatch.placed_on(
            client,
            INSTANCES,
            self.reconciler,
            settings.host,
            workers=settings.workers,
            what="instances",
        )
        # Only a libvirt driver moves guests (the fake one has no libvirtd to migrate with).
        self.migrations = (
            MigrationService(
                client,
                cast(LibvirtDriver, driver),
                self.reconciler,
                settings.host,
                self.watch.queue.mark,
                tuning=settings.migration,
            )
            if hasattr(driver, "files")
            else None
        )

    @property
    def synced(self) -> asyncio.Event:
        """Set once the first full list is queued and orphans are swept."""
        return self.watch.synced

    async def run(self) -> None:
        """Watch, reconcile and resync until cancelled (and take part in live migrations)."""
        if self.migrations is None:
            await self._run_instances()
            return
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.migrations.run(), name="migrations")
            await self.migrations.ready.wait()  # guests on the move held first
            tasks.create_task(self._run_instances(), name="instances")

    async def _run_instances(self) -> None:
        loop = asyncio.get_running_loop()

        def from_driver_thread(event: LifecycleEvent) -> None:
            # The driver may outlive this service (and its loop): drop events then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_domain_event, event)

        self.driver.subscribe(from_driver_thread)
        try:
            await self.watch.run(
                self._synced, resync=self.resync, resync_interval=self.settings.resync_interval
            )
        finally:
            await self.events.flush()

    async def resync(self) -> None:
        """Catch up with a fresh list, re-read every Instance (console tails too), sweep orphans."""
        await self.watch.relist()
        for key in self.watch.known():
            if self.watch.queue.body(key) is not None:
                self.reconciler.refresh_console.add(key)
                self.watch.queue.mark(key)
        # Kept after leaving the watch while still placed here: read again (deleted or moved?).
        queued = set(self.watch.known())
        for key in sorted(self.reconciler.retained - queued):
            self.watch.queue.put(key, None)
        await self.sweep_orphans()

    async def sweep_orphans(self) -> list[str]:
        """Destroy our domains that belong to no Instance placed here; their UIDs."""
        live = {uid_of(body) for body in self.watch.bodies()}
        # Out of the watch but, as the operator says, still placed here.
        live |= {uid for key in self.reconciler.retained if (uid := self.reconciler.uids.get(key))}
        live |= self.reconciler.moving  # arriving or leaving: the migration service's
        domains = await asyncio.to_thread(self.driver.list_instances)
        destroyed = []
        for info in domains:
            if info.uid in live or await self.reconciler.still_placed_here(info):
                continue
            log.warning(
                "destroying orphan domain %s: no Instance with uid %s is placed on %s",
                info.domain_name,
                info.uid,
                self.settings.host,
            )
            try:
                await asyncio.to_thread(self.driver.destroy, info.uid)
            except KubenovaError as exc:
                log.error("orphan domain %s not destroyed: %s", info.domain_name, exc)
                continue
            destroyed.append(info.uid)
        return destroyed

    # -- inputs ------------------------------------------------------------------------------

    async def _synced(self, listed: list[Body]) -> None:
        await self.sweep_orphans()
        log.info(
            "compute on %s: %d instance(s) placed here; watching", self.settings.host, len(listed)
        )

    def _on_domain_event(self, event: LifecycleEvent) -> None:
        key = self.reconciler.key_of_uid(event.uid)
        log.debug("domain %s: %s (instance %s)", event.domain_name, event.detail, key)
        if key is not None:
            self.watch.queue.mark(key)
