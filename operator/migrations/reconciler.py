"""The operator's InstanceMigration reconciler: claim the target, hand the move to the two
agents, then hand the inventory over (or roll it back) from what they report.

Level-triggered on the migration's newest body. The operator writes phase, sourceHost and
targetHost (the agents select their migrations by the two hosts; tenants cannot write
status); the target agent reports condition TargetPrepared, the source agent progress and
condition Migrated (True: the guest runs on the target; False: it still runs on the
source). Only those reports move the phase on, so a restarted operator picks up where the
guest is: `settle` makes the inventory agree with the Migrated report.

The operator's finalizer holds a deleted migration until the move is over: the source
agent aborts the job when it sees the deletion, and what it then reports decides between
hand-over and roll-back, so the inventory never disagrees with where the guest runs.

A cold move (spec.mode Cold; the Resizer makes one when the Instance's own host has no
room for its new size) goes the same way with other reports: the source agent stops the
guest and holds it (SourceHeld: a start asked meanwhile waits for the move's end), then
the target pulls its files in PreparingTarget (TargetPrepared; the pull is undone by a
roll-back, and the prepare timeout bounds it), then in Running has the source forget it
and reports Migrated. The target's claim is of the Instance's spec size
(its new flavor) and the project is charged for it in the claim's transaction; the
hand-over writes that size in the Instance's `status.resources`, a failure its Resized
condition. A live migration waits while a resize of its Instance is pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field, replace

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Instance, InstanceMigration, MigrationMode, MigrationPhase
from kubenova.errors import UserError
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import (
    Body,
    deleting,
    finalizers_of,
    key_of,
    name_of,
    namespace_of,
    uid_of,
)
from kubenova.kube.objects import apply_status, ensure_metadata, remove_finalizer
from kubenova.operator import inventory as inv
from kubenova.operator.catalog import Catalog
from kubenova.operator.instances import (
    INSTANCES,
    InstanceReconciler,
    claimed_resources,
    resize_pending,
)
from kubenova.operator.migrations.claims import roll_back, settle
from kubenova.operator.migrations.target import place_target
from kubenova.operator.placement import Placer, build_request
from kubenova.operator.scheduler import NoValidHost
from kubenova.wellknown import OPERATOR_FINALIZER, OPERATOR_MANAGER

log = logging.getLogger(__name__)

MIGRATIONS = kubenova_kind(InstanceMigration)
PREPARED = "TargetPrepared"  # written by the target's agent
MIGRATED = "Migrated"  # written by the source's agent
TERMINAL = (MigrationPhase.COMPLETED, MigrationPhase.FAILED)
# A target that has not reported TargetPrepared by then (agent down, its bridges never
# wired, the image not fetched) fails the migration: nothing has moved yet, so the roll-back
# is safe. Running has no such bound: libvirtd drives the job, and only the source's
# report (or a restarted source agent's) says where the guest is.
PREPARE_TIMEOUT = 300.0
RESIZE_WAIT = 5.0  # seconds between two looks at an Instance whose resize is pending


@dataclass
class MigrationReconciler:
    """Reconciles one InstanceMigration key at a time (the work queue serialises per key)."""

    client: KubeClient
    placer: Placer
    catalog: Catalog
    events: EventRecorder
    instances: InstanceReconciler
    uids: dict[str, str] = field(default_factory=dict)  # key -> uid, to roll back after DELETED
    prepare_timeout: float = PREPARE_TIMEOUT
    preparing: dict[str, float] = field(default_factory=dict)  # key -> first seen waiting
    # key -> the Instance a cold move charges (its quota goes back after a forced delete)
    cold: dict[str, inv.Consumer] = field(default_factory=dict)

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None:
            uid = self.uids.pop(key, None)
            if uid is not None:  # gone without our finalizer (forced): free the target
                await self._roll_back(uid, self.cold.pop(key, None))
            return None
        self.uids[key] = uid_of(body)
        status = body.get("status") or {}
        phase = status.get("phase")
        if phase != MigrationPhase.PREPARING_TARGET:
            self.preparing.pop(key, None)
        if phase in TERMINAL:
            if deleting(body):
                await remove_finalizer(self.client, MIGRATIONS, body, OPERATOR_FINALIZER)
            return None
        migrated = cond.find(status.get("conditions"), MIGRATED)
        if migrated is not None and migrated.get("status") in ("True", "False"):
            await self._finish(body, migrated.get("status") == "True", migrated)
            return None
        if deleting(body) and phase != MigrationPhase.RUNNING:
            # Nothing moves yet (the source agent starts only in Running): roll back now.
            await self._fail(body, "Cancelled", "the migration was deleted before the move")
            return None
        if phase in (None, MigrationPhase.PENDING, MigrationPhase.SCHEDULING):
            return await self._schedule(key, body)
        prepared = cond.find(status.get("conditions"), PREPARED)
        if phase == MigrationPhase.PREPARING_TARGET and prepared is not None:
            if prepared.get("status") == "True":
                await self._phase(body, MigrationPhase.RUNNING, "Migrating", "moving the guest")
            elif prepared.get("status") == "False":
                await self._fail(body, "TargetNotPrepared", str(prepared.get("message", "")))
        if phase == MigrationPhase.PREPARING_TARGET and prepared is None:
            return await self._waiting_for_target(key, body)
        return None  # the agents' reports wake us

    async def _waiting_for_target(self, key: str, body: Body) -> float | None:
        """Bounded: a target that never says it is prepared fails the migration."""
        since = self.preparing.setdefault(key, time.monotonic())
        left = since + self.prepare_timeout - time.monotonic()
        if left > 0:
            return left  # woken earlier by the target's report
        self.preparing.pop(key, None)
        target = (body.get("status") or {}).get("targetHost")
        await self._fail(
            body,
            "TargetNotPrepared",
            f"{target} did not prepare the guest within {self.prepare_timeout:.0f} s "
            "(is its agent running, are the guest's networks wired there?)",
        )
        return None

    # -- scheduling ------------------------------------------------------------------------

    async def _schedule(self, key: str, body: Body) -> float | None:
        migration = InstanceMigration.model_validate(body)
        namespace = namespace_of(body)
        cold = migration.spec.mode == MigrationMode.COLD
        try:
            instance = await self.client.get(INSTANCES, migration.spec.instance_name, namespace)
        except NotFound:
            await self._fail(
                body, "InstanceNotFound", f"no instance {migration.spec.instance_name} here"
            )
            return None
        istatus = instance.get("status") or {}
        source = istatus.get("host")
        if not source or deleting(instance) or (not cold and istatus.get("phase") != "Running"):
            await self._fail(
                body,
                "InstanceNotRunning",
                f"instance {migration.spec.instance_name} is not "
                + ("on a host" if cold else "running on a host")
                + f" (phase {istatus.get('phase')})"
                + ("" if cold else ": only a running guest moves live"),
            )
            return None
        if not cold and resize_pending(instance, self.catalog):
            # Its claim and its guest are about to change size: moved once they did.
            log.info("migration %s: waits for the resize of its instance", key_of(body))
            return RESIZE_WAIT
        if (ensured := await self._ensure_finalizer(body)) is None:
            return None
        body = ensured
        if (body.get("status") or {}).get("phase") is None:
            body = await self._phase(body, MigrationPhase.SCHEDULING, "Scheduling", "")
        try:
            request = build_request(instance, Instance.model_validate(instance), self.catalog)
            request = replace(request, host=migration.spec.target_host)
            consumer = inv.Consumer(uid_of(body), name_of(body), namespace)
            if cold:
                self.cold[key] = request.consumer
            outcome = await asyncio.to_thread(
                place_target,
                self.placer.engine,
                self.placer.scheduler,
                request,
                consumer,
                source,
                cold=cold,
            )
        except UserError as exc:
            await self._fail(body, exc.reason, exc.message)
            return None
        except inv.QuotaExceeded as exc:
            await self._fail(body, "QuotaExceeded", exc.message)
            return None
        if isinstance(outcome, NoValidHost):
            await self._fail(body, "NoValidHost", outcome.message)
            return None
        self.placer.host_changed(outcome.host)
        message = f"target {outcome.host} claimed; moving from {source}"
        status = {
            "phase": str(MigrationPhase.PREPARING_TARGET),
            "sourceHost": source,
            "targetHost": outcome.host,
        }
        try:
            body = await apply_status(
                self.client, MIGRATIONS, body, status, manager=OPERATOR_MANAGER
            )
        except NotFound:
            await self._roll_back(uid_of(body), self.cold.pop(key, None))
            return None
        self.events.record(body, "Normal", "TargetClaimed", message)
        log.info("migration %s: %s", key_of(body), message)
        self._placed(instance, outcome.host)  # its networks get wired on the target now
        return None

    def _placed(self, instance: Body, host: str) -> None:
        """The domains that wire an Instance's attachments look again: during a move, its
        networks are wired on the target as well (operator/moves.py); after
        it, only where the guest runs."""
        for hook in self.instances.hooks:
            hook.on_placed(instance, host)

    async def _ensure_finalizer(self, body: Body) -> Body | None:
        try:
            updated = await ensure_metadata(
                self.client, MIGRATIONS, body, finalizers=(OPERATOR_FINALIZER,)
            )
        except NotFound:
            return None
        return updated or body

    # -- the end ---------------------------------------------------------------------------

    async def _finish(self, body: Body, on_target: bool, report: dict[str, object]) -> None:
        """The source agent said where the guest runs: the inventory follows, then the phase."""
        status = body.get("status") or {}
        source, target = status.get("sourceHost"), status.get("targetHost")
        migration = InstanceMigration.model_validate(body)
        name, cold = migration.spec.instance_name, migration.spec.mode == MigrationMode.COLD
        try:
            instance = await self.client.get(INSTANCES, name, namespace_of(body))
        except NotFound:
            await self._fail(body, "InstanceDeleted", f"instance {name} was deleted meanwhile")
            return
        running_on = target if on_target else source
        consumer = inv.Consumer(uid_of(instance), name, namespace_of(body))
        try:
            claim = await asyncio.to_thread(
                settle, self.placer.engine, uid_of(body), consumer, str(running_on), cold=cold
            )
        except ValueError as exc:
            # Nothing to hand over or back (the instance's claim went meanwhile): final.
            await self._fail(body, "InventoryDisagrees", str(exc))
            return
        for host in (source, target):
            if host:
                self.placer.host_changed(str(host))
        self.placer.on_release()
        if not on_target:
            await self._fail(
                body,
                str(report.get("reason", "MigrationFailed")),
                str(report.get("message", "")),
                rolled_back=True,
            )
            return
        self.cold.pop(key_of(body), None)  # handed over: nothing to give back any more
        how = "cold" if cold else "live"
        # A resize's cold move claimed another size than the Instance shows (a drain's did not).
        resized = claim.resources if cold and claim is not None else None
        if resized == claimed_resources(instance):
            resized = None
        if (instance.get("status") or {}).get("host") != target or resized is not None:
            await self.instances.moved(
                instance, str(target), f"migrated {how} from {source}", resized=resized
            )
        message = f"instance {name} is on {target} (moved {how} from {source})"
        await self._phase(body, MigrationPhase.COMPLETED, "Completed", message)
        self._placed(instance, str(target))  # the source's plumbing goes
        self.events.record(instance, "Normal", "Migrated", message)
        if deleting(body):
            await remove_finalizer(self.client, MIGRATIONS, body, OPERATOR_FINALIZER)

    async def _fail(
        self, body: Body, reason: str, message: str, *, rolled_back: bool = False
    ) -> None:
        cold = InstanceMigration.model_validate(body).spec.mode == MigrationMode.COLD
        if not rolled_back:
            await self._roll_back(uid_of(body), await self._charged(body) if cold else None)
        self.cold.pop(key_of(body), None)
        text = f"{message}; the guest stays on its source" if message else "rolled back"
        try:
            body = await self._phase(body, MigrationPhase.FAILED, reason, text, ok=False)
        except NotFound:
            return
        self.events.record(body, "Warning", reason, text)
        await self._unwire_target(body, reason if cold else None, text)
        if deleting(body) and OPERATOR_FINALIZER in finalizers_of(body):
            await remove_finalizer(self.client, MIGRATIONS, body, OPERATOR_FINALIZER)

    async def _unwire_target(self, body: Body, cold_reason: str | None, why: str) -> None:
        """A failed move's target plumbing goes: the guest's networks are looked at again.
        A failed cold move's Instance says why its resize (if one is pending) did not happen."""
        status = body.get("status") or {}
        if not status.get("targetHost") and cold_reason is None:
            return  # never claimed, never wired
        name = InstanceMigration.model_validate(body).spec.instance_name
        with contextlib.suppress(NotFound):
            instance = await self.client.get(INSTANCES, name, namespace_of(body))
            if cold_reason is not None:
                await self.instances.resize.move_failed(instance, cold_reason, why)
            if status.get("targetHost"):
                self._placed(instance, str(status.get("sourceHost")))

    async def _charged(self, body: Body) -> inv.Consumer | None:
        """The Instance a cold move charged (its quota goes back with the roll-back)."""
        if (known := self.cold.get(key_of(body))) is not None:
            return known
        name = InstanceMigration.model_validate(body).spec.instance_name
        try:
            instance = await self.client.get(INSTANCES, name, namespace_of(body))
        except NotFound:
            return None  # gone: its charge went with its claim
        return inv.Consumer(uid_of(instance), name, namespace_of(body))

    async def _roll_back(self, uid: str, instance: inv.Consumer | None = None) -> None:
        freed = await asyncio.to_thread(roll_back, self.placer.engine, uid, instance)
        if freed is not None:
            self.placer.host_changed(freed.host)
            self.placer.on_release()

    async def _phase(
        self, body: Body, phase: MigrationPhase, reason: str, message: str, *, ok: bool = True
    ) -> Body:
        """One status apply of the phase (keeping the hosts we wrote) and its condition."""
        current = body.get("status") or {}
        status: Body = {"phase": str(phase)}
        for name in ("sourceHost", "targetHost"):
            if current.get(name):
                status[name] = current[name]
        status["conditions"] = [
            cond.condition(
                "Succeeded" if phase in TERMINAL else "Progressing",
                ok if phase in TERMINAL else True,
                reason,
                message,
                previous=current.get("conditions"),
            )
        ]
        updated = await apply_status(
            self.client, MIGRATIONS, body, status, manager=OPERATOR_MANAGER
        )
        if message and phase not in TERMINAL:
            self.events.record(updated, "Normal", reason, message)
        return updated
