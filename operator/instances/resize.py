"""Resize (Nova's `resize`, on the Instance's own host): a changed spec.flavor / spec.resources
is claimed in one inventory transaction, then handed to the agent by one status apply.

The API accepts the change only while the guest is (to be) stopped, or with
spec.resizePolicy: Restart (a CEL rule), and admission checks the new sizing like a
creation's. Here the claim is swapped for the new size on the host the Instance is on
(`Placer.resize`: the host re-checked for the growth, the project's quota charged the
difference). `status.resources` is what the claim holds and what the agent sizes the
domain by, so it is written only after the claim committed: that write is the commit
point, as `status.host` is for a placement. Phase Resizing until the agent has resized
the guest (it then reports Stopped or Running, and the domain's vcpus and memory).

Refused (quota, or no room on any host): the claim and `status.resources` keep the old
size, the Resized condition says why, and the Instance is tried again when capacity is
released. Killed between the claim's commit and the status write, the next reconcile finds
the claim already of the new size (`resize_in` is idempotent) and writes the status.

No room on its own host but on another (the scheduler's filters, dry): the Instance moves
there cold (Nova's resize to another host). The Resizer creates one InstanceMigration of
mode Cold per Instance UID and generation (`resize-<uid>-<generation>`: never twice, and a
failed one is not retried for the same spec) and says Resized=False "Moving"; the
migrations domain claims the new size on the target, moves the guest's files and writes
the new host and size (or the failure) here. Only a guest that may be stopped moves (spec
stopped, or resizePolicy Restart); another waits for its next stop. While any migration of
the Instance is under way, the Resizer does nothing: a live one is looked at again every
few seconds, a cold one writes the Instance when it ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Instance, InstanceMigration, MigrationMode, ResizePolicy
from kubenova.errors import Conflict, UserError
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, generation_of, key_of, name_of, namespace_of, uid_of
from kubenova.kube.objects import LastWrites, apply_status
from kubenova.operator import inventory as inv
from kubenova.operator.catalog import Catalog
from kubenova.operator.instances.handover import (
    INSTANCES,
    RESIZED,
    SCHEDULED,
    status_host,
    still_handed_over,
)
from kubenova.operator.placement import Placer, build_request, host_state
from kubenova.operator.resources import Resources
from kubenova.operator.scheduler import PlacementRequest
from kubenova.operator.scheduler.decision import NoValidHost
from kubenova.wellknown import OPERATOR_MANAGER

log = logging.getLogger(__name__)

MIGRATIONS = kubenova_kind(InstanceMigration)
RESIZE_LABEL = "kubenova.io/resize-of"  # the Instance a cold move resizes (its name)
LIVE_WAIT = 5.0  # seconds between two looks while a live migration of the Instance runs
TERMINAL = ("Completed", "Failed")


def move_name(body: Body) -> str:
    """The one cold move a resize of this Instance UID and generation may make."""
    return f"resize-{uid_of(body)}-{generation_of(body)}"


def resize_pending(body: Body, catalog: Catalog) -> bool:
    """Does the Instance's spec ask for another size than its claim holds, or has its guest
    not been resized yet (phase Resizing)?"""
    status = body.get("status") or {}
    if status.get("phase") == "Resizing":
        return True
    current = claimed_resources(body)
    if current is None:
        return False
    try:
        return build_request(body, Instance.model_validate(body), catalog).resources != current
    except UserError:
        return False  # its Flavor gone: nothing to resize to


def resources_status(resources: Resources) -> dict[str, Any]:
    """`status.resources`: what the claim holds, in the API's units."""
    return {
        "vcpus": resources.vcpus,
        "memoryMiB": resources.memory_mb,
        "diskGiB": resources.disk_gb,
    }


def claimed_resources(body: Body) -> Resources | None:
    """The sizing our status says the claim holds (None before our first write of it)."""
    shown = (body.get("status") or {}).get("resources")
    if not shown:
        return None
    return Resources(shown["vcpus"], shown["memoryMiB"], shown["diskGiB"])


def describe(resources: Resources) -> str:
    return f"{resources.vcpus} vCPUs, {resources.memory_mb} MiB, {resources.disk_gb} GiB"


def moved_status(body: Body, host: str, message: str, resized: Resources | None) -> Body:
    """The status a migration's end writes: the new host (Scheduled says how it got there)
    with the rest of our hand-over; a cold move's also the size its claim holds there."""
    previous = (body.get("status") or {}).get("conditions")
    generation = generation_of(body)
    entry = cond.condition(
        SCHEDULED, True, "Migrated", message, generation=generation, previous=previous
    )
    conditions, extra = [entry], {}
    if resized is not None:
        extra["resources"] = resources_status(resized)
        conditions.append(
            cond.condition(
                RESIZED,
                True,
                "Resized",
                f"resized to {describe(resized)} on host {host}, {message}",
                generation=generation,
                previous=previous,
            )
        )
    return still_handed_over(body, host, extra | {"conditions": conditions})


@dataclass
class Resizer:
    """Claims a placed Instance's new size when its spec asks for another one."""

    client: KubeClient
    placer: Placer
    catalog: Catalog
    events: EventRecorder
    handed_over: LastWrites
    # Called with (key, waits for capacity?) so the reconciler retries it when room appears.
    waiting: Callable[[str, bool], None]

    def __post_init__(self) -> None:
        # uid -> the generation whose sizing the claim was found to have: every later event
        # of that generation (status writes, mostly) costs nothing here.
        self._sized: dict[str, int | None] = {}

    def forget(self, uid: str) -> None:
        self._sized.pop(uid, None)

    async def __call__(self, key: str, body: Body, host: str) -> float | None:
        """Resize the Instance's claim on `host` to what its spec asks, if it differs (or
        move it cold to a host with room); a delay to look again after, or None."""
        uid, generation = uid_of(body), generation_of(body)
        if uid in self._sized and self._sized[uid] == generation:
            return None
        if self.handed_over.predates(body):
            # Our status apply would keep what this stale body shows (none of the hand-over,
            # say): the event of our own last write brings the body to decide on.
            return None
        try:
            request = build_request(body, Instance.model_validate(body), self.catalog, waiter=key)
        except UserError:
            return None  # a Flavor gone since: nothing to resize to (admission checked it)
        current = claimed_resources(body)
        if current is None:
            claim = await asyncio.to_thread(inv.find_claim, self.placer.engine, uid_of(body))
            if claim is None:
                return None  # re-claimed by the reconciler first
            current = claim.resources
        if current == request.resources:
            previous = (body.get("status") or {}).get("conditions")
            refused = cond.find(previous, RESIZED) or {}
            if refused.get("status") == "False":  # the spec went back to the size it has
                message = f"keeps {describe(current)} as spec asks again"
                entry = cond.condition(
                    RESIZED,
                    True,
                    "Unchanged",
                    message,
                    generation=generation_of(body),
                    previous=previous,
                )
                await self._show(body, host, current, entry)
            elif claimed_resources(body) is None:
                await self._show(body, host, current, None)  # record it once
            self.waiting(key, False)
            self._sized[uid] = generation
            return None
        under_way = await self._migration_under_way(body)
        if under_way is not None:
            # Its claim moves meanwhile: a live move is waited for, a cold one (ours, most
            # likely) writes the Instance when it ends.
            return LIVE_WAIT if under_way == MigrationMode.LIVE else None
        if self.handed_over.predates(body):
            return None  # a move ended meanwhile and handed it over: its echo brings the body
        self.waiting(key, True)  # before deciding: room appearing meanwhile re-marks it
        try:
            outcome = await asyncio.to_thread(self.placer.resize, request)
        except inv.QuotaExceeded as exceeded:
            await self._refused(body, host, "QuotaExceeded", exceeded.message, current)
            return None
        except inv.NothingToResize:
            self.waiting(key, False)
            return None
        if isinstance(outcome, NoValidHost):
            await self._elsewhere(key, body, host, current, request=request, own=outcome)
            return None
        self.waiting(key, False)
        _, after = outcome
        message = (
            f"resized to {describe(after.resources)} on host {host} (was "
            f"{describe(current)}): the agent resizes the guest while it is stopped"
        )
        entry = cond.condition(
            RESIZED,
            True,
            "Resized",
            message,
            generation=generation_of(body),
            previous=(body.get("status") or {}).get("conditions"),
        )
        # Decided from a body read before the claim's thread: were the Instance moved
        # meanwhile, its claim (already this size) would be found on another host, and this
        # apply of `host` would hand it back. Only onto the body as read, then.
        if await self._show(body, host, after.resources, entry, phase="Resizing", guarded=True):
            self.events.record(body, "Normal", "Resizing", message)
            log.info("instance %s %s", key_of(body), message)
        return None

    # -- a cold move to a host with room -----------------------------------------------------

    async def _migration_under_way(self, body: Body) -> str | None:
        """The mode of a migration of this Instance that has not ended, if any."""
        listed = await self.client.list(MIGRATIONS, namespace_of(body))
        for item in listed.get("items") or []:
            spec, status = item.get("spec") or {}, item.get("status") or {}
            if spec.get("instanceName") == name_of(body) and status.get("phase") not in TERMINAL:
                return str(spec.get("mode") or MigrationMode.LIVE)
        return None

    async def _elsewhere(
        self,
        key: str,
        body: Body,
        host: str,
        current: Resources,
        *,
        request: PlacementRequest,
        own: NoValidHost,
    ) -> None:
        """Its own host has no room: move it cold where the new size fits, if one does."""
        spec = body.get("spec") or {}
        if spec.get("powerState") != "Stopped" and spec.get("resizePolicy") != ResizePolicy.RESTART:
            why = f"{own.message}; it moves to a host with room at its next stop"
            await self._refused(body, host, "WaitingForStop", why, current)
            return
        other = await asyncio.to_thread(self._fits_elsewhere, request, host)
        if other is not None:
            why = f"{own.message}, and no other host fits it: {other.message}"
            await self._refused(body, host, "NoValidHost", why, current)
            return
        name, namespace = move_name(body), namespace_of(body)
        migration = {
            "apiVersion": MIGRATIONS.api_version,
            "kind": MIGRATIONS.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {RESIZE_LABEL: name_of(body)},
            },
            "spec": {"instanceName": name_of(body), "mode": str(MigrationMode.COLD)},
        }
        try:
            await self.client.create(MIGRATIONS, migration, namespace)
        except Conflict:
            return  # this generation's move ended (failed: Resized says why); room re-marks it
        self.waiting(key, False)
        message = (
            f"its host {host} has no room for {describe(request.resources)}: moving it cold "
            f"to a host that fits (InstanceMigration {name})"
        )
        previous = (body.get("status") or {}).get("conditions")
        entry = cond.condition(
            RESIZED, False, "Moving", message, generation=generation_of(body), previous=previous
        )
        if await self._show(body, host, current, entry):
            self.events.record(body, "Normal", "Moving", message)
            log.info("instance %s: %s", key_of(body), message)

    def _fits_elsewhere(self, request: PlacementRequest, host: str) -> NoValidHost | None:
        """The scheduler's answer for the new size on any host but `host` (nothing claimed:
        the migration claims, and the database has the last word)."""
        engine = self.placer.engine
        hosts = [host_state(s) for s in inv.load_hosts(engine) if s.record.name != host]
        group_hosts = inv.member_hosts(engine, request.group.uid) if request.group else {}
        chosen = self.placer.scheduler.schedule(replace(request, group_hosts=group_hosts), hosts)
        return chosen if isinstance(chosen, NoValidHost) else None

    async def move_failed(self, body: Body, reason: str, why: str) -> None:
        """A cold move of the Instance failed: its pending resize says so (Resized=False)."""
        current, host = claimed_resources(body), status_host(body)
        if current is None or host is None or not resize_pending(body, self.catalog):
            return
        await self._refused(
            body, host, reason, f"moving it to a host with room failed: {why}", current
        )

    async def _refused(
        self, body: Body, host: str, reason: str, why: str, current: Resources
    ) -> None:
        message = f"cannot resize: {why}; it keeps {describe(current)}"
        previous = (body.get("status") or {}).get("conditions")
        entry = cond.condition(
            RESIZED, False, reason, message, generation=generation_of(body), previous=previous
        )
        if cond.same(cond.find(previous, RESIZED), entry):
            return  # already says so: no write, no repeated Event
        if await self._show(body, host, current, entry):
            self.events.record(body, "Warning", reason, message)
            log.warning("instance %s: %s", key_of(body), message)

    async def _show(
        self,
        body: Body,
        host: str,
        resources: Resources,
        entry: dict[str, Any] | None,
        *,
        phase: str | None = None,
        guarded: bool = False,
    ) -> bool:
        """One status apply: `status.resources` (and the condition, phase); False if gone
        (or, `guarded`, if the object changed since `body`: its event decides again)."""
        status: dict[str, Any] = {"resources": resources_status(resources)}
        if entry is not None:
            status["conditions"] = [entry]
        if phase is not None:
            status["phase"] = phase
        try:
            body = await apply_status(
                self.client,
                INSTANCES,
                body,
                still_handed_over(body, host, status),
                manager=OPERATOR_MANAGER,
                if_unchanged=guarded,
            )
        except (NotFound, Conflict):
            return False
        self.handed_over.remember(uid_of(body), body, {"host": host})
        return True
