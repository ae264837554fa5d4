"""The compute agent's half of a cold move: an InstanceMigration of spec.mode Cold (a resize
whose own host has no room, or an administrator's `migrate`).

The migration service (migration_service.py) holds the guest on both hosts from
PreparingTarget on, as for a live move (`moving`: no spawn, no restart, no teardown by the
domain reconciler), and hands the cold ones here:
- the source stops the guest (ACPI, then off after the agent's shutdown timeout) and keeps
  its domain and files: the target's `forget_on_source` removes them, never this host. Once
  no pass of its domain reconciler is at work on the guest and it is shut off, the source
  reports condition SourceHeld (under its own field manager, so the target's reports keep
  it): from then on this process starts it for nothing but the move's end. A start asked
  for meanwhile (spec.powerState Running) waits for that end, said in the Instance's Ready;
- the target, in PreparingTarget, waits for SourceHeld (so nothing the guest writes on the
  source can come after the copy), pulls the overlay and seed through the source's libvirtd
  (the source Host's
  status.migration.libvirtURI), grows the overlay to the size claimed here and reports
  TargetPrepared; everything so far is undone by a roll-back (its files go);
- in Running the target has the source forget the guest (undefine, delete its directory)
  and reports Migrated=True; the operator then hands the Instance over (`status.host`), and
  the target's domain reconciler defines it from the pulled files and starts it if its
  spec says Running. A guest found running on the source again is reported Migrated=False
  (it stays there). Every step is idempotent, so a restarted agent resumes where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from kubenova import conditions as cond
from kubenova.agents.compute.cold_migration import (
    forget_on_source,
    pull_from_source,
    runs_on_source,
)
from kubenova.agents.compute.driver import ComputeFailure, DomainState, InstanceNotFound
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver
from kubenova.agents.compute.migration import bridges_missing
from kubenova.agents.compute.migration_reports import (
    MIGRATED,
    MIGRATIONS,
    PREPARED,
    condition_status,
    peer_endpoint,
)
from kubenova.agents.compute.reconciler import DomainReconciler
from kubenova.api.v1alpha1 import InstanceMigration, MigrationMode
from kubenova.errors import KubenovaError, TemporaryError
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.meta import Body, deleting, uid_of
from kubenova.kube.objects import apply_status
from kubenova.wellknown import AGENT_MANAGER

log = logging.getLogger(__name__)

HELD = "SourceHeld"
HOLD_MANAGER = f"{AGENT_MANAGER}-source"  # the source's SourceHeld; the target's reports
HOLD_WAIT = 0.1  # seconds between two looks for a domain reconciler pass to end
SOURCE_STOP_WAIT = 1.0  # seconds between two looks for the source's guest being shut off
BRIDGE_WAIT = 0.2
FORGET_RETRY = 5.0  # the source's libvirtd did not answer: asked again

Report = Callable[[Body, dict[str, Any]], Awaitable[None]]


def is_cold(body: Body) -> bool:
    return InstanceMigration.model_validate(body).spec.mode == MigrationMode.COLD


class ColdMoves:
    """Both roles of this host in cold moves; called by the migration service's handlers."""

    def __init__(
        self,
        client: KubeClient,
        driver: LibvirtDriver,
        reconciler: DomainReconciler,
        host: str,
        report: Report,
        *,
        mark: Callable[[str], None],
    ) -> None:
        self.client = client
        self.mark = mark  # an Instance key into the domain reconciler's queue
        self.driver = driver
        self.reconciler = reconciler
        self.host = host
        self.report = report

    # -- source ----------------------------------------------------------------------------

    async def hold_source(self, key: str, body: Body, guest: str, instance: Body) -> float | None:
        """The guest (in `moving` already) stops here and is held so before its files are
        pulled: SourceHeld says so to the target once no earlier pass can start it."""
        uid, status = uid_of(instance), body.get("status") or {}
        if cond.find(status.get("conditions"), MIGRATED) is not None:
            return None  # the move is decided; the migration's end releases the guest
        if uid in self.reconciler.converging:
            return HOLD_WAIT  # a pass begun before the hold (a start, say) ends first
        try:
            info = await asyncio.to_thread(self.driver.get_info, uid)
            if info.state != DomainState.SHUTOFF:
                log.info("migration %s: stopping %s on %s for a cold move", key, uid, self.host)
                await asyncio.to_thread(self.driver.power_off, uid)
                info = await asyncio.to_thread(self.driver.get_info, uid)
        except InstanceNotFound:
            return None  # forgotten here already: the target has it
        if info.state != DomainState.SHUTOFF:
            return SOURCE_STOP_WAIT
        target = status.get("targetHost")
        if self.reconciler.held.get(uid) is None:
            self.reconciler.held[uid] = f"on {self.host} for its cold move to {target}"
            self.mark(guest)  # its Ready says so
        if not cond.is_true(status.get("conditions"), HELD):
            why = f"shut off on {self.host} and held so until the move ends"
            with contextlib.suppress(NotFound):
                await apply_status(
                    self.client,
                    MIGRATIONS,
                    body,
                    condition_status(HELD, True, "Held", why),
                    manager=HOLD_MANAGER,
                )
        return None

    # -- target ----------------------------------------------------------------------------

    async def target(self, key: str, body: Body, instance: Body) -> float | None:
        status = body.get("status") or {}
        conditions = status.get("conditions")
        phase = status.get("phase")
        if phase == "PreparingTarget" and not cond.is_true(conditions, HELD):
            log.info("migration %s: waiting for %s to hold it", key, status.get("sourceHost"))
            return None  # its report wakes this; the prepare timeout bounds the wait
        try:
            source = await peer_endpoint(self.client, str(status.get("sourceHost")))
        except (KubenovaError, NotFound) as exc:
            if phase == "PreparingTarget" and cond.find(conditions, PREPARED) is None:
                await self.report(body, condition_status(PREPARED, False, "NoPeer", str(exc)))
                return None
            log.warning("migration %s: the source is not reachable yet: %s", key, exc)
            return FORGET_RETRY
        uid, peer_uri, source_dir = uid_of(instance), source.libvirt_uri, source.instances_dir
        if phase == "PreparingTarget":
            if deleting(body) or cond.find(conditions, PREPARED) is not None:
                return None
            return await self._pull(key, body, instance, peer_uri, source_dir)
        if phase != "Running" or cond.find(conditions, MIGRATED) is not None:
            return None
        try:
            if await asyncio.to_thread(runs_on_source, peer_uri, uid):
                why = f"the guest runs on {status.get('sourceHost')} again: it stays there"
                await self.report(body, condition_status(MIGRATED, False, "SourceRuns", why))
                return None
            if deleting(body):
                await self.report(body, condition_status(MIGRATED, False, "Cancelled", "deleted"))
                return None
            await asyncio.to_thread(forget_on_source, peer_uri, source_dir, uid)
        except ComputeFailure as exc:
            log.warning("migration %s: the source forgets %s later: %s", key, uid, exc)
            return FORGET_RETRY
        log.info("migration %s: %s holds the guest, its source forgot it", key, self.host)
        message = f"its disk and seed are on {self.host}; {status.get('sourceHost')} forgot it"
        await self.report(body, condition_status(MIGRATED, True, "Moved", message))
        return None

    async def _pull(
        self, key: str, body: Body, instance: Body, peer_uri: str, source_dir: Path
    ) -> float | None:
        uid = uid_of(instance)
        try:
            spec = await self.reconciler.incoming_spec(instance, resized=True)
            if missing := bridges_missing(spec):
                log.info("migration %s: waiting for %s on %s", key, ", ".join(missing), self.host)
                return BRIDGE_WAIT
            if await asyncio.to_thread(runs_on_source, peer_uri, uid):
                return SOURCE_STOP_WAIT  # the source agent stops it (the prepare timeout bounds it)
            assert spec.root_disk is not None  # a cold move has a disk to move
            await asyncio.to_thread(
                pull_from_source,
                peer_uri,
                source_dir,
                uid,
                self.driver.files,
                spec.root_disk,
                grow_to=spec.root_disk.size_gib,
            )
        except TemporaryError as exc:
            log.info("migration %s: pulling later: %s", key, exc)
            return exc.delay
        except KubenovaError as exc:
            log.warning("migration %s: pulling to %s failed: %s", key, self.host, exc)
            await self.report(body, condition_status(PREPARED, False, "PullFailed", str(exc)))
            return None
        log.info("migration %s: %s pulled the files of %s", key, self.host, uid)
        message = f"{self.host} holds a copy of the guest's disk and seed"
        await self.report(body, condition_status(PREPARED, True, "Pulled", message))
        return None
