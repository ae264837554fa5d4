"""Attachments: which Instance may plug which Volume, decided by the operator, recorded in the
inventory and published on the Volume.

An Instance asks by listing a Volume of its namespace in `spec.volumes`. The hook records
the attachments it can have at once with the Instance's claim, in its transaction
(`VolumeStep`; placement never waits for volumes), and files the Instance into this
controller's own queue; the reconciler then, per Instance:

- allows each listed volume that exists, is placed, is not being deleted and is not held
  by another Instance (unless the Volume is multiAttach) — the inventory's locked row
  decides races — and says why not in the Instance's `VolumesAllowed` condition;
- withdraws a volume dropped from the spec once the compute agent reports it unplugged
  (until then the attachment shows `Detaching`, and the export keeps admitting the host);
- publishes every touched Volume's `status.attachments`: instance, host, state, device
  and the host's initiator name / address / MAC that the volume host's access list needs.

Each writer owns its fields: Volume attachments are applied as `kubenova-operator-
attachments`, the Instance's condition as `kubenova-operator-volumes`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine

from kubenova import conditions as cond
from kubenova.api.v1alpha1 import Instance, Volume
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, deleting, generation_of, key_of, name_of, namespace_of, uid_of
from kubenova.kube.objects import apply_status
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import volumes as vol
from kubenova.operator.inventory.errors import VolumeInUse, VolumeNotPlaced
from kubenova.operator.moves import Moves
from kubenova.operator.volumes.naming import initiator_iqn
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

VOLUMES = kubenova_kind(Volume)
INSTANCES = kubenova_kind(Instance)
ATTACHMENTS_MANAGER = "kubenova-operator-attachments"
INSTANCE_VOLUMES_MANAGER = "kubenova-operator-volumes"
ALLOWED = "VolumesAllowed"
VOLUME_KIND = "Volume"
# A refused volume is looked at again on every change of it; this is only a safety net.
RECHECK = 60.0


def wanted_volumes(instance: Body) -> list[str]:
    """Volume names the Instance asks for (none while it is being deleted)."""
    if deleting(instance):
        return []
    return [v["volume"] for v in (instance.get("spec") or {}).get("volumes") or []]


def plugged_devices(instance: Body) -> dict[str, str]:
    """Volume name -> guest device, as the compute agent reports them."""
    return {
        entry["volume"]: entry.get("device", "")
        for entry in (instance.get("status") or {}).get("volumes") or []
    }


def attachment_entry(
    volume_name: str, record: vol.AttachmentRecord, instance: Body | None, host: Body | None
) -> dict[str, Any]:
    """One `status.attachments` entry of a Volume (pure)."""
    entry: dict[str, Any] = {"instance": record.instance_name, "host": record.host}
    device = plugged_devices(instance).get(volume_name) if instance else None
    wanted = instance is None or volume_name in wanted_volumes(instance)
    entry["state"] = ("Attached" if device else "Attaching") if wanted else "Detaching"
    if device:
        entry["device"] = device
    entry["initiator"] = initiator_iqn(record.host)
    host_status = (host or {}).get("status") or {}
    if host_status.get("underlayIP"):
        entry["address"] = host_status["underlayIP"]
    if host_status.get("storageMAC"):
        entry["mac"] = host_status["storageMAC"]
    return entry


@dataclass(frozen=True)
class VolumeStep:
    """The claim step recording the attachments an Instance can have at once (an
    `inventory.ClaimStep`). A volume not placed yet or held by another Instance does not
    hold up the placement: the controller's reconcile says why in `VolumesAllowed` and
    attaches it once it can (hot attach), exactly as for a volume added later."""

    volumes: tuple[tuple[str, bool], ...]  # (Volume uid, multiAttach)

    def take(self, connection: Connection, consumer: inv.Consumer, host: str) -> Mapping[str, Any]:
        for volume_uid, multi in self.volumes:
            try:
                vol.attach_in(connection, volume_uid, consumer, host, multi_attach=multi)
            except (VolumeNotPlaced, VolumeInUse):
                continue  # checked before anything is written: nothing to roll back
        return {}


class AttachmentController:
    """The Instance hook for volumes, with its own queue of Instance keys."""

    def __init__(
        self,
        client: KubeClient,
        engine: Engine,
        events: EventRecorder,
        volumes: Callable[[str], Body | None],
        hosts: Callable[[str], Body | None],
        *,
        moves: Moves,
        workers: int = 4,
    ) -> None:
        self.client = client
        self.engine = engine
        self.events = events
        self.volumes = volumes  # "namespace/name" -> Volume body (the controller's cache)
        self.hosts = hosts  # host name -> Host body
        self.moves = moves  # the migrations under way: their targets are admitted too
        self.queue: WorkQueue[str] = WorkQueue(self._reconcile, workers=workers, name="attachments")
        self.volume_keys: dict[str, str] = {}  # Volume uid -> key
        self.interested: dict[str, set[str]] = defaultdict(set)  # Volume key -> Instance keys
        self.instance_keys: dict[str, str] = {}  # Instance uid -> key
        self.attached: set[str] = set()  # Instance uids holding attachments (fast skip)
        self._published: dict[str, list[dict[str, Any]]] = {}  # Volume uid -> attachments
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def load(self) -> None:
        """Remember which Instances hold attachments (called once at start-up)."""
        records = await asyncio.to_thread(vol.list_attachments, self.engine)
        self.attached = {r.instance_uid for r in records}

    # -- InstanceHook ------------------------------------------------------------------------

    def claim_step(self, body: Body) -> VolumeStep | None:
        wanted = []
        for name in wanted_volumes(body):
            volume = self.volumes(f"{namespace_of(body)}/{name}")
            if volume is not None and not deleting(volume):
                multi = bool((volume.get("spec") or {}).get("multiAttach"))
                wanted.append((uid_of(volume), multi))
        return VolumeStep(tuple(wanted)) if wanted else None

    def on_placed(self, body: Body, host: str) -> None:
        self._file(body)

    async def on_scheduled(self, body: Body) -> None:
        self._file(body)

    async def on_release(self, uid: str) -> None:
        records = await asyncio.to_thread(vol.detach_instance, self.engine, uid)
        self.attached.discard(uid)
        for record in records:
            await self.publish(record.volume_uid)
        key = self.instance_keys.pop(uid, None)
        if key is not None:
            self.queue.put(key, None)

    # -- inputs ------------------------------------------------------------------------------

    def _file(self, body: Body) -> None:
        if deleting(body):
            return  # the domain goes with its disks; on_release withdraws the attachments
        key = f"{key_of(body)}"
        self.instance_keys[uid_of(body)] = key
        for name in wanted_volumes(body):
            self.interested[f"{namespace_of(body)}/{name}"].add(key)
        if wanted_volumes(body) or uid_of(body) in self.attached or _has_condition(body):
            self.queue.put(key, body)

    def volume_changed(self, key: str, body: Body | None) -> None:
        """A Volume appeared, changed or went: look at the Instances that ask for it again."""
        if body is not None:
            self.volume_keys[uid_of(body)] = key
        for instance_key in list(self.interested.get(key, ())):
            self.queue.mark(instance_key)

    def guest_moving(self, namespace: str, instance: str) -> None:
        """A migration of this Instance began or ended: republish its volumes' attachments
        (the target's entry comes or goes)."""
        self.queue.mark(f"{namespace}/{instance}")

    def host_changed(self, host: str) -> None:
        """A Host changed (its storage address or MAC may be new): republish its attachments."""
        for key in list(self.instance_keys.values()):
            body = self.queue.body(key)
            if body is not None and _placed_on(body) == host and uid_of(body) in self.attached:
                self.queue.mark(key)

    # -- the decision ------------------------------------------------------------------------

    async def _reconcile(self, key: str, body: Body | None) -> float | None:
        if body is None:
            return None
        host = _placed_on(body)  # the operator's decision, never the label
        if not host:
            return None  # not placed yet: on_placed files it again
        uid, namespace = uid_of(body), namespace_of(body)
        wanted = wanted_volumes(body)
        devices = plugged_devices(body)
        records = await asyncio.to_thread(vol.attachments_of_instance, self.engine, uid)
        held = {r.volume_uid for r in records}
        touched: set[str] = set(held)
        refusals: list[tuple[str, str]] = []  # (reason, message)
        consumer = inv.Consumer(uid, name_of(body), namespace)
        for name in wanted:
            volume = self.volumes(f"{namespace}/{name}")
            refusal = await self._allow(volume, name, consumer, host, held)
            if refusal is not None:
                refusals.append(refusal)
            elif volume is not None:
                touched.add(uid_of(volume))
        unresolved = False
        for record in records:
            held_name = self._volume_name(record.volume_uid)
            if held_name is None:
                unresolved = True  # its Volume's event has not arrived yet (start-up)
                continue
            if held_name in wanted or held_name in devices:
                continue  # still wanted, or still plugged: Detaching until the agent unplugs
            await asyncio.to_thread(vol.detach, self.engine, record.volume_uid, uid)
            self._event_on_volume(record.volume_uid, "Detached", f"detached from {key}")
        if await asyncio.to_thread(vol.attachments_of_instance, self.engine, uid):
            self.attached.add(uid)
        else:
            self.attached.discard(uid)
        for volume_uid in touched:
            await self.publish(volume_uid)
        await self._report(body, wanted, refusals)
        if unresolved:
            return 1.0
        return RECHECK if refusals else None

    async def _allow(
        self,
        volume: Body | None,
        name: str,
        consumer: inv.Consumer,
        host: str,
        held: set[str],
    ) -> tuple[str, str] | None:
        """Record the attachment, or say why it is refused."""
        if volume is None:
            return (
                "VolumeNotFound",
                f"volume {name} does not exist in namespace {consumer.namespace}",
            )
        volume_uid = uid_of(volume)
        if volume_uid in held:
            return None
        if deleting(volume):
            return "VolumeDeleting", f"volume {name} is being deleted"
        multi = bool((volume.get("spec") or {}).get("multiAttach"))
        try:
            await asyncio.to_thread(
                vol.attach, self.engine, volume_uid, consumer, host, multi_attach=multi
            )
        except VolumeNotPlaced:
            return "VolumeNotPlaced", f"volume {name} has no host yet (see its Scheduled condition)"
        except VolumeInUse as exc:
            others = ", ".join(h.instance_name for h in exc.holders)
            return (
                "VolumeInUse",
                f"volume {name} is attached to {others}: detach it there first, or create it "
                "with multiAttach: true",
            )
        self._event_on_volume(
            volume_uid, "Attaching", f"attaching to {consumer.namespace}/{consumer.name} on {host}"
        )
        return None

    # -- publishing --------------------------------------------------------------------------

    async def publish(self, volume_uid: str) -> None:
        """Apply the Volume's `status.attachments` from the inventory, if it changed."""
        async with self._locks[volume_uid]:
            key = self.volume_keys.get(volume_uid)
            volume = self.volumes(key) if key else None
            if volume is None or uid_of(volume) != volume_uid:
                return
            records = await asyncio.to_thread(vol.attachments_of, self.engine, volume_uid)
            name = name_of(volume)
            current = self._published.get(volume_uid)
            if current is None:
                current = (volume.get("status") or {}).get("attachments") or []
            known = {entry.get("instance"): entry for entry in current}
            entries = []
            moving = await self.moves.incoming_hosts(namespace_of(volume)) if records else {}
            for record in records:
                instance = self.queue.body(f"{record.instance_namespace}/{record.instance_name}")
                if instance is None and record.instance_name in known:
                    # Not seen since start-up: keep what was published until it is.
                    entries.append(known[record.instance_name])
                    continue
                entries.append(attachment_entry(name, record, instance, self.hosts(record.host)))
                # Live migration: the target host is admitted before the switch.
                for target in sorted(moving.get(record.instance_name, set()) - {record.host}):
                    incoming = replace(record, host=target)  # Attaching: not plugged there
                    entries.append(attachment_entry(name, incoming, None, self.hosts(target)))
            if current == entries:
                return
            try:
                await apply_status(
                    self.client,
                    VOLUMES,
                    volume,
                    {"attachments": entries},
                    manager=ATTACHMENTS_MANAGER,
                )
            except NotFound:
                return
            self._published[volume_uid] = entries

    async def _report(self, body: Body, wanted: list[str], refusals: list[tuple[str, str]]) -> None:
        """The Instance's VolumesAllowed condition (only for Instances that ever had volumes)."""
        previous = (body.get("status") or {}).get("conditions")
        if not wanted and cond.find(previous, ALLOWED) is None:
            return
        generation = generation_of(body)
        if refusals:
            entry = cond.condition(
                ALLOWED,
                False,
                refusals[0][0],
                "; ".join(message for _, message in refusals),
                generation=generation,
                previous=previous,
            )
        else:
            message = f"allowed: {', '.join(wanted)}" if wanted else "no volumes requested"
            entry = cond.condition(
                ALLOWED, True, "Allowed", message, generation=generation, previous=previous
            )
        if cond.same(cond.find(previous, ALLOWED), entry):
            return
        try:
            await apply_status(
                self.client,
                INSTANCES,
                body,
                {"conditions": [entry]},
                manager=INSTANCE_VOLUMES_MANAGER,
            )
        except NotFound:
            return
        if refusals:
            self.events.record(body, "Warning", entry["reason"], entry["message"])

    def _volume_name(self, volume_uid: str) -> str | None:
        key = self.volume_keys.get(volume_uid)
        return key.rsplit("/", 1)[-1] if key else None

    def _event_on_volume(self, volume_uid: str, reason: str, message: str) -> None:
        key = self.volume_keys.get(volume_uid)
        volume = self.volumes(key) if key else None
        if volume is not None:
            self.events.record(volume, "Normal", reason, message)


def _has_condition(body: Body) -> bool:
    return cond.find((body.get("status") or {}).get("conditions"), ALLOWED) is not None


def _placed_on(body: Body) -> str | None:
    """The host the operator's own status write placed the Instance on."""
    host = (body.get("status") or {}).get("host")
    return str(host) if host else None
