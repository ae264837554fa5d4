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

Refused (no room on the host, quota): the claim and `status.resources` keep the old size,
the Resized condition says why, and the Instance is tried again when capacity is released.
Killed between the claim's commit and the status write, the next reconcile finds the claim
already of the new size (`resize_in` is idempotent) and writes the status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Instance
from kubenova.errors import UserError
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, generation_of, key_of, uid_of
from kubenova.kube.objects import LastWrites, apply_status
from kubenova.operator import inventory as inv
from kubenova.operator.catalog import Catalog
from kubenova.operator.instances.handover import INSTANCES, still_handed_over
from kubenova.operator.placement import Placer, build_request
from kubenova.operator.resources import Resources
from kubenova.operator.scheduler.decision import NoValidHost
from kubenova.wellknown import OPERATOR_MANAGER

log = logging.getLogger(__name__)

RESIZED = "Resized"


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

    async def __call__(self, key: str, body: Body, host: str) -> None:
        """Resize the Instance's claim on `host` to what its spec asks, if it differs."""
        uid, generation = uid_of(body), generation_of(body)
        if uid in self._sized and self._sized[uid] == generation:
            return
        if self.handed_over.predates(body):
            # Our status apply would keep what this stale body shows (none of the hand-over,
            # say): the event of our own last write brings the body to decide on.
            return
        try:
            request = build_request(body, Instance.model_validate(body), self.catalog, waiter=key)
        except UserError:
            return  # a Flavor gone since: nothing to resize to (admission checked the change)
        current = claimed_resources(body)
        if current is None:
            claim = await asyncio.to_thread(inv.find_claim, self.placer.engine, uid_of(body))
            if claim is None:
                return  # re-claimed by the reconciler first
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
            return
        self.waiting(key, True)  # before deciding: room appearing meanwhile re-marks it
        try:
            outcome = await asyncio.to_thread(self.placer.resize, request)
        except inv.QuotaExceeded as exceeded:
            await self._refused(body, host, "QuotaExceeded", exceeded.message, current)
            return
        except inv.NothingToResize:
            self.waiting(key, False)
            return
        if isinstance(outcome, NoValidHost):
            await self._refused(body, host, "NoValidHost", outcome.message, current)
            return
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
        if await self._show(body, host, after.resources, entry, phase="Resizing"):
            self.events.record(body, "Normal", "Resizing", message)
            log.info("instance %s %s", key_of(body), message)

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
        phase: str | None = None,
    ) -> bool:
        """One status apply: `status.resources` (and the condition, phase); False if gone."""
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
            )
        except NotFound:
            return False
        self.handed_over.remember(uid_of(body), body, {"host": host})
        return True
