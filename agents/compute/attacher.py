"""The compute host's half of volumes: plug into each guest the volumes its Instance lists.

For every Instance on this host, level-triggered against the domain's real disks:

- a volume in `spec.volumes` is plugged once the operator allowed it (an attachment entry
  for this Instance on this host) and the volume host's access list admits this host
  (`admittedHosts`): iSCSI through QEMU's own initiator, logging in with this host's
  initiator name and the volume's CHAP secret (kept in a libvirt secret, undefined by
  chap_secrets.py's sweep once no attachment here needs it); AoE as the
  kernel initiator's block device `/dev/etherd/e<shelf>.<slot>` (needs the `aoe` module);
- a volume dropped from the spec is unplugged (the operator then withdraws it);
- `status.volumes` (volume -> guest device) and the `VolumesAttached` condition are applied
  as `kubenova-agent-volumes`, so they never collide with the compute service's fields.

A disk found in the domain that no status entry explains (the agent died between plug and
status write) is unplugged and plugged again under a recorded name.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubenova import conditions as cond
from kubenova.agents.assignment import Whereabouts, placed_here, recheck
from kubenova.agents.compute.chap_secrets import secret_description, secret_usage
from kubenova.agents.compute.driver import ComputeDriver, InstanceNotFound
from kubenova.agents.compute.spec import (
    RESERVED_TARGETS,
    DiskAttachment,
    DiskFormat,
    FileVolume,
    IscsiAuth,
    IscsiVolume,
    VolumeSource,
)
from kubenova.api.v1alpha1 import Instance, Volume
from kubenova.errors import KubenovaError, TemporaryError, UserError
from kubenova.kube import ApiError, KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import (
    Body,
    deleting,
    generation_of,
    key_of,
    ref,
    uid_of,
)
from kubenova.kube.objects import LastWrites, apply_status
from kubenova.kube.paths import SECRETS

log = logging.getLogger(__name__)

INSTANCES = kubenova_kind(Instance)
VOLUMES = kubenova_kind(Volume)
ATTACHER_MANAGER = "kubenova-agent-volumes"
ATTACHED = "VolumesAttached"
WAITING_RETRY = 2.0
FAILED_RETRY = 15.0
AOE_DEVICE_DIR = Path("/dev/etherd")


class NotYet(KubenovaError):
    """The volume cannot be plugged yet (not allowed, not exported to this host)."""

    reason = "Waiting"


def free_target(taken: set[str]) -> str:
    """The first virtio target name (vdb, vdc, ..., vdaa, ...) not in `taken` nor reserved."""
    letters = string.ascii_lowercase
    names = [f"vd{a}" for a in letters] + [f"vd{a}{b}" for a in letters for b in letters]
    for name in names:
        if name not in taken and name not in RESERVED_TARGETS:
            return name
    raise KubenovaError("no free virtio disk name left", reason="TooManyDisks")


@dataclass
class AttacherSettings:
    host: str
    aoe_device_dir: Path = AOE_DEVICE_DIR


class VolumeAttacher:
    """Reconciles one Instance key at a time (the work queue serialises per key)."""

    def __init__(
        self,
        client: KubeClient,
        driver: ComputeDriver,
        settings: AttacherSettings,
        events: EventRecorder,
        ended: Callable[[], None] = lambda: None,
    ) -> None:
        self.client = client
        self.driver = driver
        self.settings = settings
        self.events = events
        self.ended = ended  # an attachment here ended: its CHAP secret may go (a sweep)
        self.uids: dict[str, str] = {}
        self._written = LastWrites()  # our status writes

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None and not await self._really_left(key):
            return None  # a fresh read still places it here: nothing to undo
        if body is None or deleting(body):
            uid = self.uids.pop(key, None)
            if uid is not None:
                # The compute service destroys the domain and its disks; the sweep then
                # finds the CHAP secrets no domain here names.
                self._written.forget(uid)
                self.ended()
            return None
        uid = uid_of(body)
        self.uids[key] = uid
        if not placed_here(body, self.settings.host):
            return None  # act only on the operator's decision (status.host)
        wanted = [v["volume"] for v in (body.get("spec") or {}).get("volumes") or []]
        reported = self._reported(body)
        said = cond.find((body.get("status") or {}).get("conditions"), ATTACHED)
        if not wanted and not reported and said is None:
            return None  # never had volumes: not a single call or write
        try:
            info = await asyncio.to_thread(self.driver.get_info, uid)
        except InstanceNotFound:
            return WAITING_RETRY  # the compute service has not built the domain yet
        present = set(info.volume_targets)
        plugged = {v: d for v, d in reported.items() if d in present}
        await self._unplug(body, wanted, plugged, present)
        problems = await self._plug(body, wanted, plugged, present)
        await self._report(body, wanted, plugged, problems)
        if any(not isinstance(p, NotYet) for p in problems.values()):
            return FAILED_RETRY
        return WAITING_RETRY if problems else None

    async def _really_left(self, key: str) -> bool:
        """Read an Instance that left the watch again: is it gone, deleting or moved?"""
        uid = self.uids.get(key)
        if uid is None:
            return True
        where = await recheck(self.client, INSTANCES, key, uid, self.settings.host)
        return where.whereabouts is not Whereabouts.STILL_HERE

    # -- unplug / plug -----------------------------------------------------------------------

    async def _unplug(
        self, body: Body, wanted: list[str], plugged: dict[str, str], present: set[str]
    ) -> None:
        uid = uid_of(body)
        for volume, device in list(plugged.items()):
            if volume in wanted:
                continue
            await asyncio.to_thread(self.driver.detach_volume, uid, device)
            del plugged[volume]
            self.ended()
            self.events.record(
                body, "Normal", "VolumeDetached", f"{volume} unplugged from {device}"
            )
            log.info("instance %s: volume %s unplugged from %s", key_of(body), volume, device)
        for device in sorted(present - set(plugged.values())):
            log.warning(
                "instance %s: unplugging %s, which no status entry explains", key_of(body), device
            )
            await asyncio.to_thread(self.driver.detach_volume, uid, device)
            present.discard(device)

    async def _plug(
        self, body: Body, wanted: list[str], plugged: dict[str, str], present: set[str]
    ) -> dict[str, KubenovaError]:
        problems: dict[str, KubenovaError] = {}
        for volume in wanted:
            if volume in plugged:
                continue
            try:
                source = await self.volume_source(body, volume)
                device = free_target(present | set(plugged.values()))
                attachment = DiskAttachment(source, device)
                await asyncio.to_thread(self.driver.attach_volume, uid_of(body), attachment)
            except KubenovaError as exc:
                problems[volume] = exc
                continue
            plugged[volume] = device
            self.events.record(body, "Normal", "VolumeAttached", f"{volume} plugged in as {device}")
            log.info("instance %s: volume %s plugged in as %s", key_of(body), volume, device)
        return problems

    async def volume_source(self, body: Body, name: str) -> VolumeSource:
        """How this host opens volume `name` of Instance `body` (its CHAP secret defined in
        libvirt here); NotYet until the operator allows it here and its host admits this
        one (also what a live migration's target waits for before the move)."""
        namespace, instance = ref(body)
        try:
            volume = await self.client.get(VOLUMES, name, namespace)
        except NotFound as exc:
            raise NotYet(f"volume {name} does not exist") from exc
        except ApiError as exc:
            raise TemporaryError(f"reading volume {name}: {exc}") from exc
        status = volume.get("status") or {}
        entry = next(
            (
                a
                for a in status.get("attachments") or []
                if a.get("instance") == instance and a.get("host") == self.settings.host
            ),
            None,
        )
        if entry is None:
            raise NotYet(f"volume {name}: waiting for the operator to allow the attachment")
        if self.settings.host not in (status.get("admittedHosts") or []):
            raise NotYet(f"volume {name}: waiting for its host to admit {self.settings.host}")
        target = status.get("target") or {}
        protocol = (volume.get("spec") or {}).get("protocol") or "iscsi"
        if protocol == "aoe":
            return self._aoe_source(name, target)
        portal = str(target.get("portal") or "")
        if not target.get("iqn") or ":" not in portal:
            raise NotYet(f"volume {name}: its export has no portal yet")
        uid = uid_of(volume)
        username, password = await self._chap(namespace, str(target.get("chapSecret") or ""))
        usage = secret_usage(uid)
        description = secret_description(str(namespace), name)
        await asyncio.to_thread(self.driver.define_secret, usage, password.encode(), description)
        address, port = portal.rsplit(":", 1)
        return IscsiVolume(
            volume_id=name,
            host=address,
            port=int(port),
            iqn=str(target["iqn"]),
            lun=int(target.get("lun") or 1),
            auth=IscsiAuth(username=username, secret_usage=usage),
            initiator=entry.get("initiator"),
        )

    def _aoe_source(self, name: str, target: Body) -> VolumeSource:
        device = self.settings.aoe_device_dir / f"e{target.get('shelf')}.{target.get('slot')}"
        if not device.exists():
            raise UserError(
                f"volume {name} is AoE: plugging it needs the kernel aoe initiator on host "
                f"{self.settings.host} ({device} is missing): load it (modprobe aoe), or use "
                "an iscsi volume, which QEMU opens by itself",
                reason="AoEInitiatorMissing",
            )
        return FileVolume(volume_id=name, path=device, format=DiskFormat.RAW)

    async def _chap(self, namespace: str | None, secret: str) -> tuple[str, str]:
        if not secret:
            raise NotYet("the volume names no CHAP Secret yet")
        try:
            data = (await self.client.get(SECRETS, secret, namespace)).get("data") or {}
            return (
                base64.b64decode(data["username"]).decode(),
                base64.b64decode(data["password"]).decode(),
            )
        except NotFound as exc:
            raise NotYet(f"CHAP Secret {namespace}/{secret} is missing") from exc
        except (KeyError, ValueError) as exc:
            raise UserError(f"Secret {namespace}/{secret} lacks username/password") from exc
        except ApiError as exc:
            raise TemporaryError(f"reading Secret {namespace}/{secret}: {exc}") from exc

    # -- status ------------------------------------------------------------------------------

    def _reported(self, body: Body) -> dict[str, str]:
        """volume -> device as last written (our own write if the body predates it)."""
        status = self._written.newest_status(body)
        return {e["volume"]: e["device"] for e in status.get("volumes") or [] if e.get("device")}

    async def _report(
        self,
        body: Body,
        wanted: list[str],
        plugged: dict[str, str],
        problems: dict[str, KubenovaError],
    ) -> None:
        order = wanted + sorted(set(plugged) - set(wanted))
        volumes = [{"volume": v, "device": plugged[v]} for v in order if v in plugged]
        previous = (body.get("status") or {}).get("conditions")
        generation = generation_of(body)
        if problems:
            first = next(iter(problems.values()))
            message = "; ".join(p.message for p in problems.values())
            entry = cond.condition(
                ATTACHED, False, first.reason, message, generation=generation, previous=previous
            )
        else:
            shown = ", ".join(f"{v} on {d}" for v, d in plugged.items()) or "none"
            entry = cond.condition(
                ATTACHED,
                True,
                "Attached",
                f"plugged: {shown}",
                generation=generation,
                previous=previous,
            )
        current = self._written.newest_status(body)
        same_volumes = (current.get("volumes") or []) == volumes
        if same_volumes and cond.same(cond.find(current.get("conditions"), ATTACHED), entry):
            return
        desired = {"volumes": volumes, "conditions": [entry]}
        try:
            updated = await apply_status(
                self.client, INSTANCES, body, desired, manager=ATTACHER_MANAGER
            )
        except NotFound:
            return
        self._written.remember(uid_of(body), updated, desired)
        if problems and not all(isinstance(p, NotYet) for p in problems.values()):
            self.events.record(body, "Warning", entry["reason"], entry["message"])
