"""The compute agent's half of a live migration: InstanceMigrations naming this host.

Two watches, one per role, selected by the operator's own status fields (selectableFields
of the CRD; tenants cannot write status): `status.targetHost=<host>` prepares the incoming
guest's files when the operator says PreparingTarget (condition TargetPrepared), and
abandons them after a failure; `status.sourceHost=<host>` runs libvirt's migration when the
operator says Running, writes progress while it runs and condition Migrated when it ends
(True: the guest runs on the target; False: it still runs here). A deleted migration aborts
the job. While a guest moves, the domain reconciler leaves it alone (`moving`): no second
copy is spawned on either side and no orphan sweep takes the incoming domain. A cold move
(spec.mode Cold) is held the same way; its steps are cold_moves.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from kubenova import conditions as cond
from kubenova.agents.assignment import Whereabouts, recheck
from kubenova.agents.compute.attacher import AttacherSettings, NotYet, VolumeAttacher
from kubenova.agents.compute.cold_moves import ColdMoves, is_cold
from kubenova.agents.compute.driver import ComputeFailure, InstanceNotFound
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver
from kubenova.agents.compute.migration import (
    LiveMigration,
    MigrationTuning,
    PeerEndpoint,
    abandon_target,
    arrived,
    bridges_missing,
    defined,
    finish_source,
    idle_domain,
    prepare_target,
)
from kubenova.agents.compute.migration_reports import (
    MIGRATED,
    MIGRATIONS,
    PREPARED,
    condition_status,
    initiator_names,
    peer_endpoint,
    plugged_volumes,
    progress_status,
)
from kubenova.agents.compute.reconciler import INSTANCES, DomainReconciler
from kubenova.agents.compute.spec import DomainSpec
from kubenova.api.v1alpha1 import InstanceMigration
from kubenova.errors import ApiError, KubenovaError, TemporaryError
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, deleting, key_of, namespace_of, uid_of
from kubenova.kube.objects import apply_status
from kubenova.kube.watch import ListWatch
from kubenova.wellknown import AGENT_MANAGER

log = logging.getLogger(__name__)

PROGRESS_WRITES = 0.5  # seconds between two progress writes: the apiserver is shared
# Both waits are on the move's critical path (the target reports TargetPrepared only after
# them) and each look is cheap once the guest's spec and files are made: a sysfs stat, and
# one or two API reads per volume for the few seconds a migration's target prepares.
BRIDGE_WAIT = 0.05  # seconds between two looks for the guest's bridges on the target
VOLUME_WAIT = 0.1  # ... for its volumes' admission
LOST_ASK_MAX = 30.0  # seconds between two questions to a target that does not answer
LEFT_LOOK = 0.05  # seconds between two looks for the departed guest's instance watch event
LEFT_RECHECK = 100  # looks between two API reads of where it is (a watch may lag)


class MigrationService:
    """Both roles of this host; `await run()` until cancelled."""

    def __init__(
        self,
        client: KubeClient,
        driver: LibvirtDriver,
        reconciler: DomainReconciler,
        host: str,
        mark: Callable[[str], None],
        *,
        tuning: MigrationTuning | None = None,
    ) -> None:
        self.client = client
        self.tuning = tuning or MigrationTuning()
        self.mark = mark  # an Instance key into the domain reconciler's queue
        self.driver = driver
        self.reconciler = reconciler
        self.host = host
        self.jobs: dict[str, LiveMigration] = {}  # migration key -> its job (source side)
        self.running: dict[str, asyncio.Task[None]] = {}  # migration key -> its _migrate
        self.releasing: set[asyncio.Task[None]] = set()  # departed guests still held
        self.guests: dict[str, tuple[str, str]] = {}  # migration key -> (instance key, uid)
        # Migration key -> the incoming guest's spec, its files already made here: made
        # once, while the bridges and volume admissions it waits for are still coming.
        self.incoming: dict[str, DomainSpec] = {}
        self.cold = ColdMoves(client, driver, reconciler, host, self._report, mark=mark)
        # The target opens iSCSI volumes as the attacher would: CHAP secrets, once admitted.
        self.volumes = VolumeAttacher(
            client,
            driver,
            AttacherSettings(host),
            EventRecorder(client, AGENT_MANAGER, enabled=False),
        )
        self.target_watch = ListWatch(
            client,
            MIGRATIONS,
            self._target,
            field_selector=f"status.targetHost={host}",
            workers=2,
            name=f"incoming@{host}",
        )
        self.source_watch = ListWatch(
            client,
            MIGRATIONS,
            self._source,
            field_selector=f"status.sourceHost={host}",
            workers=2,
            name=f"outgoing@{host}",
        )
        # Set once both first lists are in and their guests held (`moving`): the instance
        # watch starts only then, so a restarted agent never respawns a leaving guest nor
        # sweeps an arriving one as an orphan before it knows of the move.
        self.ready = asyncio.Event()
        self._listed_watches = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.target_watch.run(self._listed))
            tasks.create_task(self.source_watch.run(self._listed))

    async def _listed(self, listed: list[Body]) -> None:
        for body in listed:
            if ((body.get("status") or {}).get("phase")) in ("Completed", "Failed"):
                continue
            try:
                await self._guest(key_of(body), body)
            except (ApiError, OSError) as exc:
                # Held when its own reconcile reads it; the instance watch need not wait.
                log.warning("migration %s: its guest not read yet: %s", key_of(body), exc)
        self._listed_watches += 1
        if self._listed_watches == len((self.target_watch, self.source_watch)):
            self.ready.set()

    # -- shared ----------------------------------------------------------------------------

    async def _guest(self, key: str, body: Body) -> tuple[str, Body] | None:
        """The Instance the migration moves (its key and body); None if it is gone."""
        name = InstanceMigration.model_validate(body).spec.instance_name
        namespace = namespace_of(body)
        try:
            instance = await self.client.get(INSTANCES, name, namespace)
        except NotFound:
            return None
        self.guests[key] = (f"{namespace}/{name}", uid_of(instance))
        self.reconciler.moving.add(uid_of(instance))
        return f"{namespace}/{name}", instance

    def _over(self, key: str, *, left: bool = False) -> None:
        """The move is over: the domain reconciler looks at the guest again. `left` (it runs
        on the target): held until this host's watch says so, else the reconciler acts on
        the old body (placed here, no domain) and spawns a second copy (seen: 1.2 s)."""
        self.incoming.pop(key, None)
        guest = self.guests.pop(key, None)
        if guest is None:
            return
        if left:
            task = asyncio.create_task(self._release_when_left(*guest))
            self.releasing.add(task)
            task.add_done_callback(self.releasing.discard)
            return
        self._release(*guest)

    def _release(self, key: str, uid: str) -> None:
        if uid not in {u for _, u in self.guests.values()}:  # no other move holds it
            self.reconciler.moving.discard(uid)
            self.mark(key)

    async def _release_when_left(self, key: str, uid: str) -> None:
        """Once the domain reconciler forgot the guest (its watch delivered the Instance's
        departure), or a fresh read says it is still placed here after all."""
        looks = 0
        while self.reconciler.key_of_uid(uid) is not None:
            await asyncio.sleep(LEFT_LOOK)
            looks += 1
            if looks % LEFT_RECHECK == 0:
                with contextlib.suppress(ApiError, OSError):
                    where = await recheck(self.client, INSTANCES, key, uid, self.host)
                    if where.whereabouts is Whereabouts.STILL_HERE:
                        break
        self._release(key, uid)

    async def _report(self, body: Body, status: dict[str, Any]) -> None:
        with contextlib.suppress(NotFound):
            await apply_status(self.client, MIGRATIONS, body, status, manager=AGENT_MANAGER)

    # -- target ----------------------------------------------------------------------------

    async def _target(self, key: str, body: Body | None) -> float | None:
        status = (body or {}).get("status") or {}
        phase = status.get("phase")
        if body is None or phase == "Failed" or status.get("targetHost") != self.host:
            if body is not None and key not in self.guests:
                await self._guest(key, body)  # after a restart: which guest to abandon
            if (
                body is not None
                and is_cold(body)
                and cond.is_true(status.get("conditions"), MIGRATED)
            ):
                self._over(key)  # its source forgot it: these files are its only copy
                return None
            await self._abandon(key)
            return None
        if phase == "Completed":
            self._over(key)
            return None
        if is_cold(body):
            found = await self._guest(key, body)
            return None if found is None else await self.cold.target(key, body, found[1])
        if phase != "PreparingTarget" and key in self.guests:
            return None  # prepared; the source moves it
        found = await self._guest(key, body)
        if found is None or phase != "PreparingTarget" or deleting(body):
            return None
        if cond.find(status.get("conditions"), PREPARED) is not None:
            return None
        _, instance = found
        try:
            # The image and the files first: they need nothing of the network or volume
            # hosts, which wire and admit this host meanwhile (from the same claim on).
            spec = self.incoming.get(key)
            if spec is None:
                spec = await self.reconciler.incoming_spec(instance)
                await asyncio.to_thread(prepare_target, self.driver, spec)
                self.incoming[key] = spec
            if missing := bridges_missing(spec):
                # Not a failure: the operator's bounded wait for TargetPrepared is.
                log.info("migration %s: waiting for %s on %s", key, ", ".join(missing), self.host)
                return BRIDGE_WAIT
            for volume in plugged_volumes(instance):
                await self.volumes.volume_source(instance, volume)
        except (TemporaryError, NotYet) as exc:
            log.info("migration %s: preparing %s later: %s", key, self.host, exc)
            return exc.delay if isinstance(exc, TemporaryError) else VOLUME_WAIT
        except KubenovaError as exc:
            self.incoming.pop(key, None)
            log.warning("migration %s: preparing %s failed: %s", key, self.host, exc)
            await self._report(body, condition_status(PREPARED, False, "PrepareFailed", str(exc)))
            return None
        log.info("migration %s: %s prepared for %s", key, self.host, spec.domain_name)
        ready = condition_status(PREPARED, True, "Prepared", f"{self.host} is ready")
        await self._report(body, ready)
        return None

    async def _abandon(self, key: str) -> None:
        self.incoming.pop(key, None)
        guest = self.guests.get(key)
        if guest is None:
            return
        try:
            await asyncio.to_thread(abandon_target, self.driver, guest[1])
        except ComputeFailure as exc:
            # Defined here: the guest arrived after all; the operator's settle decides.
            log.warning("migration %s: target files kept: %s", key, exc)
        self._over(key)

    # -- source ----------------------------------------------------------------------------

    async def _source(self, key: str, body: Body | None) -> float | None:
        job = self.jobs.get(key)
        status = (body or {}).get("status") or {}
        if body is None or deleting(body):
            if job is not None and not job.done:
                log.info("migration %s cancelled: aborting the job", key)
                await asyncio.to_thread(job.abort)
            if body is None:
                self._over(key)
                return None
        phase = status.get("phase")
        assert body is not None
        if phase in ("Completed", "Failed"):
            self._over(key, left=phase == "Completed")
            return None
        if is_cold(body):  # held and stopped here; the target moves its files
            if phase in ("PreparingTarget", "Running") and (found := await self._guest(key, body)):
                return await self.cold.hold_source(key, body, *found)
            return None
        if phase != "Running" or status.get("sourceHost") != self.host:
            if phase == "PreparingTarget":
                await self._guest(key, body)  # hold the guest from now on
            return None
        if cond.find(status.get("conditions"), MIGRATED) is not None or key in self.running:
            return None
        found = await self._guest(key, body)
        if found is None:
            await self._report(body, condition_status(MIGRATED, False, "InstanceGone", "deleted"))
            return None
        if deleting(body):
            await self._report(body, condition_status(MIGRATED, False, "Cancelled", "deleted"))
            return None
        task = asyncio.create_task(self._migrate(key, body, found[1]), name=key)
        self.running[key] = task
        task.add_done_callback(lambda _: self.running.pop(key, None))
        return None

    async def _lost(self, body: Body, peer: PeerEndpoint, uid: str) -> None:
        """The guest is not here: say where it is (its files here go if it arrived), once the
        target's libvirtd answers. No answer is never taken for "not there" (a roll-back would
        let this host spawn a second copy beside the one that arrived): it stays Running."""
        delay = 1.0
        while True:
            try:
                there = await asyncio.to_thread(arrived, peer, uid)
                break
            except ComputeFailure as exc:
                log.warning("migration of %s: asking again in %.0f s: %s", uid, delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, LOST_ASK_MAX)
        if there:  # the move is still Running: the guest cannot be back here meanwhile
            with contextlib.suppress(ComputeFailure):
                await asyncio.to_thread(finish_source, self.driver, uid)
            await self._report(body, condition_status(MIGRATED, True, "LeftSource", "not here"))
            return
        message = f"the guest runs on neither {self.host} nor {body['status'].get('targetHost')}"
        await self._report(body, condition_status(MIGRATED, False, "GuestNotFound", message))

    async def _migrate(self, key: str, body: Body, instance: Body) -> None:
        """Run the job to its end and report where the guest runs."""
        status = body.get("status") or {}
        uid = uid_of(instance)
        try:
            peer = await peer_endpoint(self.client, str(status.get("targetHost")))
            # A job of an earlier agent process (killed mid-move) is the source libvirtd's
            # and runs on: wait for its end, never start a second one beside it.
            while (domain := await asyncio.to_thread(idle_domain, self.driver, uid)) is None:
                await asyncio.sleep(PROGRESS_WRITES)
        except InstanceNotFound:
            # Undefined here: the job's switch-over does that (UNDEFINE_SOURCE), e.g. while
            # an earlier agent process was down. Said only if the target runs it: a guest on
            # neither host ends the migration Failed, never moved by a guess.
            await self._lost(body, peer, uid)
            return
        except (KubenovaError, NotFound) as exc:
            await self._report(body, condition_status(MIGRATED, False, "NoPeer", str(exc)))
            return
        try:
            initiators = await initiator_names(
                self.client, instance, self.host, str(status.get("targetHost"))
            )
        except (ApiError, OSError) as exc:
            await self._report(body, condition_status(MIGRATED, False, "NoVolumes", str(exc)))
            return
        job = LiveMigration(
            domain,
            peer,
            self.driver.files.directory(uid),
            bandwidth_mib=self.tuning.bandwidth_mib,
            max_downtime_ms=self.tuning.max_downtime_ms,
            initiators=initiators,
        )
        self.jobs[key] = job
        # Progress is written from here only, one write at a time: a late progress write
        # can never land after (and so take away) the Migrated report.
        try:
            await asyncio.to_thread(job.start)
            log.info("migration %s: job started towards %s", key, peer.libvirt_uri)
            waiting = asyncio.create_task(asyncio.to_thread(job.wait))
            while not (await asyncio.wait({waiting}, timeout=PROGRESS_WRITES))[0]:
                if job.last.data_total is not None:
                    await self._report(body, progress_status(job.last))
            final = await waiting
        except KubenovaError as exc:
            log.warning("migration %s failed: %s", key, exc)
            if not await asyncio.to_thread(defined, self.driver, uid):
                # Gone from here all the same: an earlier agent's job switched it over
                # between our lookup and our start. Only the target may say where it is.
                await self._lost(body, peer, uid)
                return
            failed = condition_status(MIGRATED, False, "MigrationFailed", str(exc))
            report = progress_status(job.last) | failed
            await self._report(body, report)
            return
        finally:
            self.jobs.pop(key, None)
        with contextlib.suppress(ComputeFailure):
            await asyncio.to_thread(finish_source, self.driver, uid)
        log.info("migration %s: the guest left %s", key, self.host)
        moved = condition_status(MIGRATED, True, "Migrated", "runs on the target")
        report = progress_status(final) | moved
        await self._report(body, report)
