"""The agent's volume service: the Volumes placed on this host in, exports and status out.

Inputs that mark a Volume for reconcile: a watch of Volumes whose `status.host` (the
operator's decision, a selectable field) is this host, and a periodic resync that
exports every volume again (that is how a restarted tgtd gets its targets back). After
the first full list and at every resync, exports and backing files of ours that belong to
no Volume placed here are removed (orphans, e.g. a volume deleted while this host was
down), each only after its Volume was read again: one the fresh read still places here
is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from kubenova.agents.assignment import keys_by_uid
from kubenova.agents.images.fetcher import ImageFetcher
from kubenova.agents.volume.backing import SUFFIX, BackingStore
from kubenova.agents.volume.driver import Export, ExportDriver
from kubenova.agents.volume.reconciler import VOLUMES, ExportReconciler, ExportSettings
from kubenova.errors import ApiError, KubenovaError
from kubenova.kube import KubeClient
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, uid_of
from kubenova.kube.watch import ListWatch
from kubenova.wellknown import AGENT_MANAGER

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VolumeServiceSettings:
    host: str
    workers: int = 4
    resync_interval: float = 60.0
    recheck_missing: float = 10.0
    events: bool = True


class VolumeService:
    """Runs one host's export reconciler; `await run()` until cancelled."""

    def __init__(
        self,
        client: KubeClient,
        drivers: dict[str, ExportDriver],
        store: BackingStore,
        settings: VolumeServiceSettings,
        images: ImageFetcher | None = None,
    ) -> None:
        self.client = client
        self.drivers = drivers
        self.store = store
        self.settings = settings
        self.events = EventRecorder(client, AGENT_MANAGER, enabled=settings.events)
        self.reconciler = ExportReconciler(
            client,
            drivers,
            store,
            ExportSettings(host=settings.host, recheck_missing=settings.recheck_missing),
            events=self.events,
            images=images,
        )
        self.watch = ListWatch.placed_on(
            client,
            VOLUMES,
            self.reconciler,
            settings.host,
            workers=settings.workers,
            what="volumes",
        )

    @property
    def synced(self) -> asyncio.Event:
        return self.watch.synced

    async def run(self) -> None:
        """Watch, reconcile and resync until cancelled."""
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(
                    self.watch.run(
                        self._synced,
                        resync=self.resync,
                        resync_interval=self.settings.resync_interval,
                    )
                )
        finally:
            await self.events.flush()
            for driver in self.drivers.values():
                with contextlib.suppress(KubenovaError):
                    driver.close()

    async def resync(self) -> None:
        """Export every volume again (healing a restarted daemon) and sweep orphans."""
        await self.watch.relist()
        self.watch.mark_all()
        # Kept after leaving the watch (or held while attached): read them again.
        known = set(self.watch.known())
        for key in sorted(self.reconciler.retained - known):
            self.watch.queue.put(key, None)
        await self.watch.queue.drained(timeout=600)
        await self.sweep_orphans()

    async def _synced(self, _listed: list[Body]) -> None:
        removed = await self.sweep_orphans()
        log.info(
            "volumes on %s: %d placed here, %d orphan(s) removed; watching",
            self.settings.host,
            len(self.watch.bodies()),
            len(removed),
        )

    async def sweep_orphans(self) -> list[str]:
        """Remove exports and files of ours that no Volume placed here owns; their uids.

        A file no watched Volume explains is not removed on that alone: the watch's cache
        may lag. Every candidate's Volume is read again, and its data stays while the
        operator still places it here.
        """
        live = {uid_of(body) for body in self.watch.bodies()}
        # Out of the watch but, as the operator says, still placed here.
        live |= {uid for key in self.reconciler.retained if (uid := self.reconciler.uids.get(key))}
        exports: dict[str, list[tuple[str, Export]]] = {}
        for protocol, driver in self.drivers.items():
            for export in await asyncio.to_thread(driver.exports):
                if export.backing.parent == self.store.directory:
                    uid = export.backing.name.removesuffix(SUFFIX)
                    exports.setdefault(uid, []).append((protocol, export))
        candidates = (set(exports) | await asyncio.to_thread(self.store.volume_uids)) - live
        if not candidates:
            return []
        try:
            keys = await keys_by_uid(self.client, VOLUMES)
        except (ApiError, OSError) as exc:
            log.warning(
                "orphan sweep on %s skipped: listing Volumes failed: %s", self.settings.host, exc
            )
            return []
        removed = []
        for uid in sorted(candidates):
            try:
                if await self.reconciler.still_placed_here(uid, keys.get(uid)):
                    continue
            except (KubenovaError, OSError) as exc:
                log.warning("volume %s kept for now: reading it again failed: %s", uid, exc)
                continue  # never destroy on a guess; the next sweep looks again
            for protocol, export in exports.get(uid, []):
                log.warning(
                    "removing orphan %s export %s on %s: no Volume %s is placed here",
                    protocol,
                    export.target.key,
                    self.settings.host,
                    uid,
                )
                await asyncio.to_thread(self.drivers[protocol].unexport, export.target)
            if await asyncio.to_thread(self.store.remove, uid):
                log.warning("removed orphan volume file %s on %s", uid, self.settings.host)
            removed.append(uid)
        return removed
