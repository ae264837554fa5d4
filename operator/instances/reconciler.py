"""The operator's Instance reconciler: resolve, schedule, claim, hand over to the agent, release.

Level-triggered: every call looks at the newest Instance body and the inventory and does
what is still missing, so running it twice changes nothing and a restart anywhere loses
nothing. Placing an Instance is one write: a status apply of host + phase + Scheduled.
`status.host` is the hand-over (the agent selects its Instances by that field) and the
commit point; the finalizers are there from creation (the mutating webhook), else added
first. The host's agent takes over `status.phase` from there. An Instance whose host
failed and was fenced is handed to another host the same way (`evacuation`); one whose host
is NotReady shows Ready Unknown until its agent is back (`host_loss`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Instance
from kubenova.errors import Conflict, UserError
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, deleting, finalizers_of, generation_of, key_of, uid_of
from kubenova.kube.objects import LastWrites, apply_status, remove_finalizer
from kubenova.metrics import PLACEMENTS, SCHEDULER_DECISIONS
from kubenova.operator import inventory as inv
from kubenova.operator.catalog import Catalog
from kubenova.operator.hosts import fence_advice
from kubenova.operator.instances.evacuation import Evacuator
from kubenova.operator.instances.handover import (
    DELETED,
    INSTANCES,
    SCHEDULED,
    Echoes,
    ensure_finalizers,
    status_host,
    still_handed_over,
)
from kubenova.operator.instances.hooks import InstanceHook
from kubenova.operator.instances.host_loss import HostLoss
from kubenova.operator.instances.resize import Resizer, moved_status, resources_status
from kubenova.operator.placement import Placer, build_request
from kubenova.operator.resources import Resources
from kubenova.operator.scheduler.decision import NoValidHost
from kubenova.wellknown import AGENT_FINALIZER, OPERATOR_FINALIZER, OPERATOR_MANAGER

log = logging.getLogger(__name__)


@dataclass
class InstanceReconciler:
    """Reconciles one Instance key at a time (the work queue serialises per key)."""

    client: KubeClient
    placer: Placer
    catalog: Catalog
    events: EventRecorder
    host_ready: Callable[[str], bool]  # is this host's agent alive?
    # May what the host's guests hold be given to others (agent back, or out of service)?
    host_fenced: Callable[[str], bool]
    # Has the host's health been decided yet? Until then a deletion waits without a word.
    host_judged: Callable[[str], bool] = lambda host: True
    # Failed and fenced by an administrator: are its Instances to be rebuilt elsewhere?
    host_evacuable: Callable[[str], bool] = lambda host: False
    # Has an administrator declared the host fenced (spec.outOfService)?
    host_out_of_service: Callable[[str], bool] = lambda host: False

    def __post_init__(self) -> None:
        self.pending: set[str] = set()  # keys waiting for capacity (NoValidHost)
        self.deleting_on: dict[str, str] = {}  # key -> host whose agent or fencing it awaits
        self.uids: dict[str, str] = {}  # key -> uid, to release claims after DELETED
        self.claimed: dict[str, str] = {}  # uid -> host of its claim, known to exist
        self.hooks: list[InstanceHook] = []  # networks, volumes: see instances.hooks
        # Our hand-overs ({host}): an older event (the finalizer write's) is not placed again.
        self.handed_over = LastWrites()
        self.placed_on: dict[str, str] = {}  # key -> status.host, for evacuation
        self.echoes = Echoes()  # our hand-overs' writes, whose watch events are not reconciled
        self.evacuate = Evacuator(
            self.client,
            self.placer,
            self.catalog,
            self.events,
            self.hooks,
            self.handed_over,
            self._waiting,
        )
        self.host_loss = HostLoss(self.client, self.events, self.host_judged, self.host_ready)
        self.resize = Resizer(
            self.client, self.placer, self.catalog, self.events, self.handed_over, self._waiting
        )

    def on_host(self, host: str) -> list[str]:
        """Keys of the Instances whose fate hangs on `host` (placed or deleted there)."""
        return [
            key
            for on in (self.deleting_on, self.placed_on)
            for key, where in list(on.items())
            if where == host
        ]

    def _waiting(self, key: str, for_capacity: bool) -> None:
        if for_capacity:
            self.pending.add(key)
        else:
            self.pending.discard(key)

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None:
            await self._forget(key)
            return None
        self.uids[key] = uid_of(body)
        if deleting(body):
            await self._finalize(key, body)
            return None
        # Placement is what the inventory and our status say (status is ours: project
        # roles cannot write it), and status.host is what the agent selects by.
        decided = status_host({"status": self.handed_over.newest_status(body)})
        if decided is not None:
            self.placed_on[key] = decided
            claimed = await self._claimed_host(uid_of(body))
            if self.handed_over.predates(body):  # a migration's hand-over landed meanwhile
                return None  # (a stale re-hand-over would drop its Resized): its echo follows
            # An evacuation killed between the claim's move and the hand-over's write left
            # the claim elsewhere: finished here too, before the host is judged (a restarted
            # operator sees every host Ready for a lease period), as the host is fenced.
            moved = claimed not in (None, decided) and self.host_out_of_service(decided)
            if self.host_evacuable(decided) or moved:
                if (host := await self.evacuate(key, body, decided)) is not None:
                    self.placed_on[key] = host
                    self.claimed[uid_of(body)] = host
                return None
            if claimed in (None, decided):
                await self.host_loss.show(body, decided)  # Ready Unknown on a NotReady host
                await self._keep_scheduled(key, body, decided, claimed is not None)
                return await self.resize(key, body, decided)  # a changed flavor: claimed

        await self._schedule(key, body)  # idempotent: an existing claim is handed over again
        return None

    async def _claimed_host(self, uid: str) -> str | None:
        """The host of the Instance's claim in the inventory (cached once seen), or None."""
        if uid not in self.claimed:
            claim = await asyncio.to_thread(inv.find_claim, self.placer.engine, uid)
            if claim is None:
                return None
            self.claimed[uid] = claim.host
        return self.claimed[uid]

    # -- scheduling --------------------------------------------------------------------------

    async def _schedule(self, key: str, body: Body) -> None:
        instance = Instance.model_validate(body)
        generation = generation_of(body)
        try:
            # Everything the claim takes is resolved up front, from in-memory state.
            request = build_request(body, instance, self.catalog, waiter=key)
            steps = [s for hook in self.hooks if (s := hook.claim_step(body)) is not None]
        except UserError as exc:
            self.pending.discard(key)
            await self._set_unscheduled(body, exc.reason, exc.message, generation)
            self.events.record(body, "Warning", exc.reason, exc.message)
            return
        # Waiting for capacity is registered *before* deciding: capacity that appears while
        # the decision runs in its thread then re-marks this key (it is requeued once the
        # decision returns) instead of waking a set it has not joined yet.
        self.pending.add(key)
        try:
            outcome = await self.placer.place_soon(request, steps)
        except UserError as exc:
            # A step refused (an address in use, a pool exhausted): nothing was claimed.
            if not exc.retry_on_release:
                self.pending.discard(key)  # else another Instance holds it: tried on release
            await self._set_unscheduled(body, exc.reason, exc.message, generation)
            self.events.record(body, "Warning", exc.reason, exc.message)
            return
        if isinstance(outcome, NoValidHost):
            SCHEDULER_DECISIONS.labels("no_valid_host").inc()
            await self._set_unscheduled(body, "NoValidHost", outcome.message, generation)
            self.events.record(body, "Warning", "NoValidHost", outcome.message)
            return
        SCHEDULER_DECISIONS.labels("placed").inc()
        if outcome.created:
            PLACEMENTS.inc()
        self.pending.discard(key)
        self.claimed[uid_of(body)] = outcome.host
        for hook in self.hooks:
            hook.on_placed(body, outcome.host)
        extra = dict(outcome.status) | {"resources": resources_status(outcome.resources)}
        await self._hand_over(body, outcome.host, generation, extra)

    async def _hand_over(
        self, body: Body, host: str, generation: int | None, extra: dict[str, Any]
    ) -> None:
        """One status apply says where the Instance goes: host, phase and Scheduled.

        status.host is the commit point: the agent selects its Instances by it, and a
        restarted operator that finds it only checks the claim. Killed before the write,
        the Instance has no host and is simply scheduled again — the claim and the hooks'
        allocations are idempotent per uid. The finalizers come first when admission did
        not add them, so no agent runs a guest whose deletion nobody waits for.
        """
        # Handed over before (a migration's settled move): the move's own write may have
        # replaced the body meanwhile, and this apply would drop its Resized. Guarded.
        again = status_host(body) is not None
        if (ensured := await ensure_finalizers(self.client, INSTANCES, body)) is None:
            return  # deleted meanwhile: the DELETED event releases the claim
        body = ensured
        message = f"placed on host {host}"
        status = {
            **extra,
            "phase": "Scheduled",
            "host": host,
            "observedGeneration": generation,
            "conditions": [
                cond.condition(
                    SCHEDULED,
                    True,
                    "Scheduled",
                    message,
                    generation=generation,
                    previous=(body.get("status") or {}).get("conditions"),
                )
            ],
        }
        try:
            body = await apply_status(
                self.client, INSTANCES, body, status, manager=OPERATOR_MANAGER, if_unchanged=again
            )
        except NotFound:
            return  # deleted meanwhile: the DELETED event releases the claim
        except Conflict:
            return  # written meanwhile: that write's event decides again
        self.handed_over.remember(uid_of(body), body, {"host": host})
        # What a reconcile of this write's watch echo would do, done with the apply's answer.
        self.echoes.expect(body)
        self.placed_on[key_of(body)] = host
        for hook in self.hooks:
            await hook.on_scheduled(body)
        self.events.record(body, "Normal", "Scheduled", message)
        # Debug, as kube-scheduler's binding line: an info line cost a drain's event loop.
        log.debug("instance %s %s", key_of(body), message)

    async def _set_unscheduled(
        self, body: Body, reason: str, message: str, generation: int | None
    ) -> None:
        previous = (body.get("status") or {}).get("conditions")
        entry = cond.condition(
            SCHEDULED, False, reason, message, generation=generation, previous=previous
        )
        if cond.same(cond.find(previous, SCHEDULED), entry):
            return  # already says so: no write
        status = {"phase": "Pending", "observedGeneration": generation, "conditions": [entry]}
        await apply_status(self.client, INSTANCES, body, status, manager=OPERATOR_MANAGER)

    async def _keep_scheduled(self, key: str, body: Body, host: str, has_claim: bool) -> None:
        """Handed over to `host` (our status.host): keep the claim.

        A claim the inventory lost is made again on that host. Finalizers are not put back
        here: the hand-over made sure of them, so missing ones were stripped on purpose
        (an admin forcing a deletion), and fighting that would hold the object for ever.
        """
        self.pending.discard(key)
        uid = uid_of(body)
        for hook in self.hooks:
            await hook.on_scheduled(body)
        if not has_claim:
            log.warning("instance %s is on %s but has no claim: re-claiming", key, host)
            instance = Instance.model_validate(body)
            try:
                request = build_request(body, instance, self.catalog, waiter=key)
            except UserError as exc:
                log.error("instance %s: cannot re-claim on %s: %s", key, host, exc.message)
                return
            claim = await asyncio.to_thread(self.placer.claim_on, request, host)
            self.claimed[uid] = claim.host

    async def moved(
        self, body: Body, host: str, message: str, *, resized: Resources | None = None
    ) -> None:
        """A migration moved the guest to `host` (the inventory handed its claim over
        already): one status apply names the new host, keeping the rest of our hand-over;
        a cold move's also the size its claim holds there (`resized`: a resize's)."""
        uid = uid_of(body)
        self.claimed[uid] = host
        status = moved_status(body, host, message, resized)
        body = await apply_status(self.client, INSTANCES, body, status, manager=OPERATOR_MANAGER)
        self.handed_over.remember(uid, body, {"host": host})
        log.info("instance %s %s", key_of(body), message)

    # -- deletion ----------------------------------------------------------------------------

    async def _finalize(self, key: str, body: Body) -> None:
        """Let a deleted Instance go once nobody can still run its guest.

        The agent of a Ready host destroys the domain and removes its finalizer itself. A
        NotReady host may still run the guest (its agent crashed or is cut off), so its
        claim, addresses and volume attachments stay held until the host is fenced: given
        to another Instance now, they would have two users (an ARP conflict, two writers).
        """
        self.pending.discard(key)
        self.deleting_on.pop(key, None)
        self.placed_on.pop(key, None)
        finalizers = finalizers_of(body)
        # Where its domain may be: the host our status handed it to. Agents select their
        # Instances by status.host, so one claimed but never handed over (the operator died
        # between the claim's commit and the status write) reached no agent: the agent
        # finalizer it carries from admission is ours to remove, whatever the host's health.
        host = status_host(body)
        if AGENT_FINALIZER in finalizers:
            if host and self.host_ready(host):
                self.deleting_on[key] = host  # looked at again if the host goes NotReady
                return  # the agent tears the domain down and removes its finalizer
            if host and not self.host_fenced(host):
                self.deleting_on[key] = host  # tried again once the host is fenced
                if self.host_judged(host):  # not merely unseen since we started
                    await self._show_awaiting_fence(body, host)
                return
            reason = f"host {host} is out of service" if host else "it never reached a host"
            log.warning("instance %s: removing the agent finalizer (%s)", key, reason)
            if host:
                self.events.record(
                    body,
                    "Normal",
                    "HostFenced",
                    f"released because {reason}: its domain is removed if the host's agent "
                    "comes back",
                )
            fresh = await remove_finalizer(self.client, INSTANCES, body, AGENT_FINALIZER)
            body = fresh or body
        await self._release(uid_of(body))
        await remove_finalizer(self.client, INSTANCES, body, OPERATOR_FINALIZER)

    async def _show_awaiting_fence(self, body: Body, host: str) -> None:
        """Phase Deleting, and a condition and Event that tell an admin how to unblock it."""
        message = fence_advice(host)
        previous = (body.get("status") or {}).get("conditions")
        entry = cond.condition(
            DELETED,
            False,
            "HostNotFenced",
            message,
            generation=generation_of(body),
            previous=previous,
        )
        if (body.get("status") or {}).get("phase") == "Deleting" and cond.same(
            cond.find(previous, DELETED), entry
        ):
            return  # already says so
        log.warning("instance %s: %s", key_of(body), message)
        self.events.record(body, "Warning", "HostNotFenced", message)
        try:
            await apply_status(
                self.client,
                INSTANCES,
                body,
                still_handed_over(body, host, {"phase": "Deleting", "conditions": [entry]}),
                manager=OPERATOR_MANAGER,
            )
        except NotFound:
            return

    async def _forget(self, key: str) -> None:
        self.pending.discard(key)
        self.deleting_on.pop(key, None)
        self.placed_on.pop(key, None)
        uid = self.uids.pop(key, None)
        if uid:
            self.echoes.forget(uid)
            self.handed_over.forget(uid)
            self.evacuate.forget(uid)
            self.resize.forget(uid)
            await self._release(uid)
            self.events.forget(uid)

    async def _release(self, uid: str) -> None:
        for hook in self.hooks:
            await hook.on_release(uid)
        released = await asyncio.to_thread(self.placer.release, uid)
        self.claimed.pop(uid, None)
        if released:
            self.placer.on_release()
