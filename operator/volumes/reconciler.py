"""The operator's Volume reconciler: place, allocate the export identity, hand over, release.

Level-triggered like the Instance reconciler. Placing a Volume is: claim its size in
DISK_GB on a volume host, allocate its target identity (IQN + LUN, or AoE shelf/slot),
create its CHAP Secret (iSCSI), then one status apply as `kubenova-operator` (host,
target, phase, Scheduled): status.host hands it to the host's agent, which selects its
Volumes by that field. The finalizers are there from creation (the mutating webhook),
else added before that write. The host's agent takes `phase` from there.

Deletion is held by the agent's finalizer while an Instance is attached (the agent shows
`DeletionBlocked`); once the agent removed the export and the file, the operator releases
the claim, the identity and the Secret and lets the Volume go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Volume
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import (
    Body,
    deleting,
    finalizers_of,
    generation_of,
    name_of,
    namespace_of,
    uid_of,
)
from kubenova.kube.objects import apply_status, remove_finalizer
from kubenova.operator import inventory as inv
from kubenova.operator.hosts import fence_advice
from kubenova.operator.instances import ensure_finalizers
from kubenova.operator.inventory import volumes as vol
from kubenova.operator.inventory.errors import AoeAddressesExhausted
from kubenova.operator.placement import NoVolumeHost, VolumeRequest, place_volume
from kubenova.operator.volumes.chap import SecretConflict, delete_chap_secret, ensure_chap_secret
from kubenova.wellknown import AGENT_FINALIZER, OPERATOR_FINALIZER, OPERATOR_MANAGER

log = logging.getLogger(__name__)

VOLUMES = kubenova_kind(Volume)
SCHEDULED = "Scheduled"
# A Volume that found no host is tried again after this long (and on every Host change).
PENDING_RETRY = 30.0


@dataclass
class VolumeReconciler:
    """Reconciles one Volume key at a time (the work queue serialises per key)."""

    client: KubeClient
    engine: Engine
    events: EventRecorder
    host_ready: Callable[[str], bool]
    # May what the host exported be given to others (agent back, or out of service)?
    host_fenced: Callable[[str], bool]
    # Tell the Instance scheduler that a host's disk usage changed (claimed or freed).
    disk_changed: Callable[[str], None] = lambda host: None
    pending: set[str] = field(default_factory=set)  # keys waiting for a host
    uids: dict[str, str] = field(default_factory=dict)  # key -> uid
    verified: set[str] = field(default_factory=set)  # uids whose claim and target exist
    hosts: dict[str, str] = field(default_factory=dict)  # uid -> host of its claim
    deleting_on: dict[str, str] = field(default_factory=dict)  # key -> host it waits for

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None:
            await self._forget(key)
            return None
        self.uids[key] = uid_of(body)
        if deleting(body):
            await self._finalize(key, body)
            return None
        # Placement is what the inventory says, else our own status (project roles cannot
        # write status; status.host is what the agent selects by).
        host = await self._placed_host(body)
        if host is not None:
            await self._keep_placed(key, body, host)
            return None
        return await self._place(key, body)

    async def _placed_host(self, body: Body) -> str | None:
        """The host of the Volume's claim; our status.host if the inventory lost the claim."""
        uid = uid_of(body)
        if uid not in self.hosts:
            decided = (body.get("status") or {}).get("host")
            if not decided:
                return None  # never handed over: placing it finds any claim it has
            claim = await asyncio.to_thread(inv.find_claim, self.engine, uid)
            if claim is None:
                return str(decided) if decided else None
            self.hosts[uid] = claim.host
        return self.hosts[uid]

    # -- placement ---------------------------------------------------------------------------

    async def _place(self, key: str, body: Body) -> float | None:
        volume = Volume.model_validate(body)
        request = VolumeRequest(
            uid_of(body),
            name_of(body),
            namespace_of(body),
            volume.spec.size_gib,
            volume.spec.availability_zone,
        )
        outcome = await asyncio.to_thread(place_volume, self.engine, request)
        if isinstance(outcome, NoVolumeHost):
            self.pending.add(key)
            await self._unplaced(body, outcome.reason, outcome.message)
            return PENDING_RETRY
        self.pending.discard(key)
        self.disk_changed(outcome.host)
        try:
            target = await asyncio.to_thread(
                vol.allocate_target,
                self.engine,
                uid_of(body),
                outcome.host,
                str(volume.spec.protocol),
            )
            secret = await ensure_chap_secret(self.client, body) if target.iqn else None
        except (AoeAddressesExhausted, SecretConflict) as exc:
            await self._release(uid_of(body))
            reason = "SecretConflict" if isinstance(exc, SecretConflict) else "NoTargetAddress"
            await self._unplaced(body, reason, str(exc))
            return PENDING_RETRY
        await self._hand_over(key, body, target, secret)
        return None

    async def _hand_over(
        self, key: str, body: Body, target: vol.TargetIdentity, secret: str | None
    ) -> None:
        """One status apply hands the Volume over; status.host is the commit point.

        Killed before it, the Volume is placed again: the claim, the target identity and
        the Secret are idempotent per uid. Finalizers missing (admission was off) go first.
        """
        handed = await ensure_finalizers(self.client, VOLUMES, body)
        if handed is None:
            return  # deleted meanwhile: the DELETED event releases what was claimed
        body = handed
        try:
            await apply_status(
                self.client,
                VOLUMES,
                body,
                placement_status(body, target, secret),
                manager=OPERATOR_MANAGER,
            )
        except NotFound:
            return
        # An event from before this write (say of the finalizers) then finds the host here.
        self.hosts[target.volume_uid] = target.host
        self.verified.add(target.volume_uid)
        identity = target.iqn if target.iqn else f"AoE e{target.shelf}.{target.slot}"
        message = f"placed on host {target.host} as {identity}"
        self.events.record(body, "Normal", "Scheduled", message)
        log.info("volume %s %s", key, message)

    async def _unplaced(self, body: Body, reason: str, message: str) -> None:
        generation = generation_of(body)
        previous = (body.get("status") or {}).get("conditions")
        entry = cond.condition(
            SCHEDULED, False, reason, message, generation=generation, previous=previous
        )
        if cond.same(cond.find(previous, SCHEDULED), entry):
            return
        status = {"phase": "Pending", "observedGeneration": generation, "conditions": [entry]}
        try:
            await apply_status(self.client, VOLUMES, body, status, manager=OPERATOR_MANAGER)
        except NotFound:
            return
        self.events.record(body, "Warning", reason, message)

    async def _keep_placed(self, key: str, body: Body, host: str) -> None:
        """Handed over to `host`; the claim and identity must still be so (finalizers, made
        sure of at the hand-over, are not put back: stripping them forces a deletion)."""
        self.pending.discard(key)
        uid = uid_of(body)
        if uid in self.verified:
            return
        volume = Volume.model_validate(body)
        claim = await asyncio.to_thread(inv.find_claim, self.engine, uid)
        if claim is None:
            log.warning("volume %s is on %s but has no claim: re-claiming", key, host)
            request = VolumeRequest(uid, name_of(body), namespace_of(body), volume.spec.size_gib)
            try:
                await asyncio.to_thread(
                    inv.claim, self.engine, request.consumer, host, request.resources
                )
            except (inv.ClaimRefused, inv.UnknownHost) as exc:
                self.events.record(body, "Warning", "ClaimLost", f"{host} cannot re-claim: {exc}")
        target = await asyncio.to_thread(
            vol.allocate_target, self.engine, uid, host, str(volume.spec.protocol)
        )
        secret = None
        if target.iqn:
            try:
                secret = await ensure_chap_secret(self.client, body)
            except SecretConflict as exc:
                self.events.record(body, "Warning", "SecretConflict", str(exc))
        desired = placement_status(body, target, secret)
        if not _placement_differs(body.get("status") or {}, desired):
            self.verified.add(uid)
            return
        await apply_status(self.client, VOLUMES, body, desired, manager=OPERATOR_MANAGER)
        self.verified.add(uid)

    # -- deletion ----------------------------------------------------------------------------

    async def _finalize(self, key: str, body: Body) -> None:
        self.pending.discard(key)
        finalizers = finalizers_of(body)
        host = await self._placed_host(body)  # where its export may be
        self.deleting_on.pop(key, None)
        if AGENT_FINALIZER in finalizers:
            if host and self.host_ready(host):
                self.deleting_on[key] = host
                return  # the agent waits until it is detached, then removes the export
            if (body.get("status") or {}).get("attachments"):
                return  # still plugged into a guest: held even while its host is down
            if host and not self.host_fenced(host):
                # Its export may still answer: its identity (AoE shelf.slot, IQN) and disk
                # are given to another Volume only once the host is fenced.
                self.deleting_on[key] = host
                self.events.record(body, "Warning", "HostNotFenced", fence_advice(host))
                log.warning("volume %s: %s", key, fence_advice(host))
                return
            reason = f"host {host} is out of service" if host else "never reached a host"
            log.warning("volume %s: removing the agent finalizer (%s)", key, reason)
            if host:
                self.events.record(
                    body,
                    "Warning",
                    "HostFenced",
                    f"released because {reason}: its export and file are removed if the host's "
                    "agent comes back",
                )
            body = await remove_finalizer(self.client, VOLUMES, body, AGENT_FINALIZER) or body
        if OPERATOR_FINALIZER not in finalizers_of(body):
            return
        await delete_chap_secret(self.client, body)
        await self._release(uid_of(body))
        await remove_finalizer(self.client, VOLUMES, body, OPERATOR_FINALIZER)
        log.info("volume %s: released", key)

    async def _forget(self, key: str) -> None:
        self.pending.discard(key)
        self.deleting_on.pop(key, None)
        uid = self.uids.pop(key, None)
        if uid:
            await self._release(uid)
            self.events.forget(uid)

    async def _release(self, uid: str) -> None:
        await asyncio.to_thread(vol.release_target, self.engine, uid)
        freed = await asyncio.to_thread(inv.release, self.engine, uid)
        self.verified.discard(uid)
        self.hosts.pop(uid, None)
        if freed is not None:
            self.disk_changed(freed.host)


def placement_status(body: Body, target: vol.TargetIdentity, secret: str | None) -> dict[str, Any]:
    """The operator's status fields of a placed Volume."""
    generation = generation_of(body)
    identity: dict[str, Any]
    if target.iqn:
        identity = {"iqn": target.iqn, "lun": target.lun}
        if secret:
            identity["chapSecret"] = secret
    else:
        identity = {"shelf": target.shelf, "slot": target.slot}
    return {
        "phase": "Creating",
        "host": target.host,
        "target": identity,
        "observedGeneration": generation,
        "conditions": [
            cond.condition(
                SCHEDULED,
                True,
                "Scheduled",
                f"placed on host {target.host}",
                generation=generation,
                previous=(body.get("status") or {}).get("conditions"),
            )
        ],
    }


def _placement_differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Is a placement fact (host, identity, Scheduled) missing or different in `current`?"""
    if current.get("host") != desired["host"]:
        return True
    target = current.get("target") or {}
    if any(target.get(k) != v for k, v in desired["target"].items()):
        return True
    scheduled = cond.find(current.get("conditions"), SCHEDULED)
    return scheduled is None or scheduled.get("status") != "True"
