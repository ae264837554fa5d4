"""Evacuation (Nova's `evacuate`): an Instance whose host failed is rebuilt on another host.

Once its host is NotReady *and* an administrator marked it out of service (fenced: the
guest cannot run there any more), an Instance that is not being deleted is placed again:
the scheduler picks a host (the filters and the server group's policy apply; the failed
host never), and one inventory transaction moves its claim there (`Placer.evacuate`),
keeping its fixed IPs, MACs and floating IPs (per Instance) and moving its volume
attachments' host, so the volume hosts' access lists follow. One status apply then hands it
over as at its first placement: `status.host` is the new host, phase `Scheduled`, and the
new host's agent builds it from its image (the root disk was the failed host's).

Crash-safe as the first placement is: the claim's move commits first, `status.host` is the
commit point. Killed between the two, the Instance is still on the failed host's record
with its claim on the new host; the next reconcile finds that claim (the move is
idempotent) and writes the hand-over. A Manual Instance waits for the go-ahead annotation;
no room anywhere leaves it on the failed host's record, tried again when capacity appears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import EVACUATE_ANNOTATION, Evacuation, Instance
from kubenova.errors import UserError
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, generation_of, key_of, name_of, namespace_of, uid_of
from kubenova.kube.objects import LastWrites, apply_status
from kubenova.operator.catalog import Catalog
from kubenova.operator.instances.handover import (
    EVACUATED,
    INSTANCES,
    READY,
    SCHEDULED,
    still_handed_over,
)
from kubenova.operator.instances.hooks import InstanceHook
from kubenova.operator.instances.resize import resources_status
from kubenova.operator.placement import Placer, build_request
from kubenova.operator.scheduler.decision import NoValidHost
from kubenova.wellknown import OPERATOR_MANAGER

log = logging.getLogger(__name__)


def awaiting_go_ahead(body: Body, host: str) -> str | None:
    """Why the Instance may not leave the failed `host` yet (Manual, no go-ahead), or None."""
    if (body.get("spec") or {}).get("evacuation", Evacuation.AUTOMATIC) != Evacuation.MANUAL:
        return None
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if annotations.get(EVACUATE_ANNOTATION) == host:
        return None
    return (
        f"host {host} failed and is out of service; spec.evacuation is Manual, so a cloud "
        f"administrator rebuilds it on another host with: kubectl annotate instance "
        f"{name_of(body)} -n {namespace_of(body)} {EVACUATE_ANNOTATION}={host}"
    )


def evacuated_status(
    body: Body, away_from: str, host: str, extra: dict[str, Any], generation: int | None
) -> Body:
    """The one status apply handing an evacuated Instance to its new host."""
    message = f"evacuated from host {away_from} (failed, out of service) to host {host}"
    previous = (body.get("status") or {}).get("conditions")
    return {
        **extra,
        "phase": "Scheduled",  # the new host's agent builds it afresh from its image
        "host": host,
        "observedGeneration": generation,
        "conditions": [
            cond.condition(
                SCHEDULED, True, "Evacuated", message, generation=generation, previous=previous
            ),
            cond.condition(
                EVACUATED, True, "Evacuated", message, generation=generation, previous=previous
            ),
            # The failed host's agent said Ready last, of a guest that no longer runs
            # anywhere: left as it was, Ready would read True until the new host builds it.
            cond.condition(
                READY, False, "Evacuated", message, generation=generation, previous=previous
            ),
        ],
    }


@dataclass
class Evacuator:
    """Rebuilds the reconciler's Instances away from fenced hosts; shares its bookkeeping."""

    client: KubeClient
    placer: Placer
    catalog: Catalog
    events: EventRecorder
    hooks: list[InstanceHook]
    handed_over: LastWrites
    # Called with (key, waits for capacity?) so the reconciler retries it when room appears.
    waiting: Callable[[str, bool], None]

    def __post_init__(self) -> None:
        self._announced: set[tuple[str, str]] = set()  # (uid, host): Evacuating Event sent

    async def __call__(self, key: str, body: Body, away_from: str) -> str | None:
        """Rebuild the Instance away from `away_from`; its new host, or None while it waits."""
        if (why := awaiting_go_ahead(body, away_from)) is not None:
            self.waiting(key, False)
            await self._show_waiting(body, away_from, "AwaitingGoAhead", why)
            return None
        uid = uid_of(body)
        if (uid, away_from) not in self._announced:
            self._announced.add((uid, away_from))
            message = f"host {away_from} failed and is out of service: rebuilding elsewhere"
            self.events.record(body, "Warning", "Evacuating", message)
            log.warning("instance %s: %s", key, message)
        instance = Instance.model_validate(body)
        self.waiting(key, True)  # before deciding: room appearing meanwhile re-marks it
        try:
            request = build_request(body, instance, self.catalog, waiter=key)
            steps = [s for hook in self.hooks if (s := hook.claim_step(body)) is not None]
            outcome = await asyncio.to_thread(self.placer.evacuate, request, away_from, steps)
        except UserError as exc:
            await self._show_waiting(body, away_from, exc.reason, exc.message)
            return None
        if isinstance(outcome, NoValidHost):
            message = (
                f"host {away_from} failed and is out of service, and no other host can take "
                f"the Instance: {outcome.message} (tried again when capacity appears)"
            )
            await self._show_waiting(body, away_from, "NoValidHost", message)
            return None
        _, claim = outcome
        self.waiting(key, False)
        extra = dict(claim.status) | {"resources": resources_status(claim.resources)}
        status = evacuated_status(body, away_from, claim.host, extra, generation_of(body))
        moved = {**body, "status": {**(body.get("status") or {}), "host": claim.host}}
        for hook in self.hooks:
            hook.on_placed(moved, claim.host)  # republish addresses' and volumes' host
        try:
            body = await apply_status(
                self.client, INSTANCES, body, status, manager=OPERATOR_MANAGER
            )
        except NotFound:
            return None  # deleted meanwhile: the DELETED event releases the claim
        self.handed_over.remember(uid, body, {"host": claim.host})
        self._announced.discard((uid, away_from))
        message = status["conditions"][1]["message"]
        self.events.record(body, "Normal", "Evacuated", message)
        log.warning("instance %s %s", key_of(body), message)
        return claim.host

    def forget(self, uid: str) -> None:
        self._announced = {(u, h) for u, h in self._announced if u != uid}

    async def _show_waiting(self, body: Body, host: str, reason: str, message: str) -> None:
        """Evacuated=False saying why; the Instance stays on the failed host's record."""
        previous = (body.get("status") or {}).get("conditions")
        entry = cond.condition(
            EVACUATED, False, reason, message, generation=generation_of(body), previous=previous
        )
        if cond.same(cond.find(previous, EVACUATED), entry):
            return  # already says so: no write, no repeated Event
        log.warning("instance %s: %s", key_of(body), message)
        self.events.record(body, "Warning", reason, message)
        try:
            await apply_status(
                self.client,
                INSTANCES,
                body,
                still_handed_over(body, host, {"conditions": [entry]}),
                manager=OPERATOR_MANAGER,
            )
        except NotFound:
            return
