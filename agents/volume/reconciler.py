"""The volume host's reconciler: make this host's exports match each Volume placed here.

Level-triggered: every pass reads the newest Volume and asks the driver to export it as the
Volume now says (idempotent: a tgtd that restarted gets its target back, an agent that
restarted adopts what is there). Deletion is held by the agent's finalizer until no
Instance is attached any more; then the export, its credentials and the file go.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from dataclasses import dataclass, field
from typing import Any

from kubenova.agents.assignment import Whereabouts, placed_here, recheck
from kubenova.agents.images.fetcher import ImageFetcher
from kubenova.agents.volume import status as vs
from kubenova.agents.volume.backing import BackingStore
from kubenova.agents.volume.driver import (
    AoeTarget,
    ChapCredentials,
    Export,
    ExportDriver,
    ExportSpec,
    Initiator,
    IscsiTarget,
    Target,
)
from kubenova.api.v1alpha1 import Image, Volume
from kubenova.errors import KubenovaError, NotFoundError, TemporaryError, UserError
from kubenova.kube import ApiError, KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import (
    Body,
    deleting,
    finalizers_of,
    key_of,
    namespace_of,
    uid_of,
)
from kubenova.kube.objects import LastWrites, apply_status, remove_finalizer
from kubenova.kube.paths import SECRETS
from kubenova.wellknown import AGENT_FINALIZER, AGENT_MANAGER

log = logging.getLogger(__name__)

VOLUMES = kubenova_kind(Volume)
IMAGES = kubenova_kind(Image)
GIB = 1 << 30
MAX_RETRY = 300.0


@dataclass
class ExportSettings:
    host: str
    # A missing Secret or Image is looked up again after this many seconds.
    recheck_missing: float = 10.0


@dataclass
class _Memory:
    """What this process remembers per Volume uid (lost on restart, rebuilt from the API)."""

    targets: dict[str, Target] = field(default_factory=dict)
    written: LastWrites = field(default_factory=LastWrites)  # our status writes
    failures: dict[str, int] = field(default_factory=dict)
    finalized: set[str] = field(default_factory=set)


class ExportReconciler:
    """Reconciles one Volume key at a time (the work queue serialises per key)."""

    def __init__(
        self,
        client: KubeClient,
        drivers: dict[str, ExportDriver],
        store: BackingStore,
        settings: ExportSettings,
        *,
        events: EventRecorder,
        images: ImageFetcher | None = None,
    ) -> None:
        self.client = client
        self.drivers = drivers
        self.store = store
        self.settings = settings
        self.events = events
        self.images = images
        self.uids: dict[str, str] = {}  # key -> uid of the Volume seen under that key
        # Keys that left the watch while a fresh read still places them here (a lagging
        # watch), or deleted but still attached: their disks stay, rechecked at resync.
        self.retained: set[str] = set()
        self._memory = _Memory()

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None:
            await self._gone(key)
            return None
        uid = uid_of(body)
        old = self.uids.get(key)
        if old is not None and old != uid:
            await self._remove(old)  # recreated under the same name: the old one is gone
        self.uids[key] = uid
        self.retained.discard(key)
        if deleting(body):
            return await self._delete(key, body)
        target = target_of(body)
        if target is None or not placed_here(body, self.settings.host):
            return None  # host and target come in one operator write: not ours (yet)
        self._memory.targets[uid] = target
        try:
            export = await self._export(body, target)
        except KubenovaError as exc:
            return await self._failed(key, body, exc)
        self._memory.failures.pop(uid, None)
        await self._report(body, export, None)
        return None

    # -- export ------------------------------------------------------------------------------

    async def _export(self, body: Body, target: Target) -> Export:
        volume = Volume.model_validate(body)
        driver = self._driver(str(volume.spec.protocol))
        uid = uid_of(body)
        source = await self._image_file(volume.spec.image) if volume.spec.image else None
        size = volume.spec.size_gib * GIB
        first = not self.store.exists(uid)
        backing = await asyncio.to_thread(self.store.create, uid, size, source)
        spec = ExportSpec(
            volume_uid=uid,
            backing=backing,
            target=target,
            chap=await self._chap(body) if isinstance(target, IscsiTarget) else None,
            initiators=tuple(initiators_of(body)),
        )
        export = await asyncio.to_thread(driver.export, spec)
        if first:
            self.events.record(
                body, "Normal", "Exported", f"exported as {target.key} at {export.location}"
            )
            log.info("volume %s: exported as %s at %s", key_of(body), target.key, export.location)
        return export

    def _driver(self, protocol: str) -> ExportDriver:
        driver = self.drivers.get(protocol)
        if driver is None:
            served = ", ".join(sorted(self.drivers)) or "none"
            raise UserError(
                f"host {self.settings.host} exports no {protocol} volumes (it serves: {served}); "
                "recreate the volume with a protocol the volume hosts serve",
                reason="ProtocolNotServed",
            )
        return driver

    async def _chap(self, body: Body) -> ChapCredentials:
        name = ((body.get("status") or {}).get("target") or {}).get("chapSecret")
        namespace = namespace_of(body)
        if not name:
            raise TemporaryError("the operator has not named the CHAP Secret yet", delay=1.0)
        try:
            secret = await self.client.get(SECRETS, name, namespace)
        except NotFound as exc:
            raise NotFoundError(
                f"CHAP Secret {namespace}/{name} is missing: the operator recreates it only "
                "for a new volume; restore it or recreate the volume",
                reason="SecretMissing",
            ) from exc
        except ApiError as exc:
            raise TemporaryError(f"reading Secret {namespace}/{name}: {exc}") from exc
        data = secret.get("data") or {}
        try:
            return ChapCredentials(
                base64.b64decode(data["username"]).decode(),
                base64.b64decode(data["password"]).decode(),
            )
        except (KeyError, ValueError) as exc:
            raise UserError(
                f"Secret {namespace}/{name} needs data keys username and password",
                reason="SecretInvalid",
            ) from exc

    async def _image_file(self, name: str) -> Any:
        if self.images is None:
            raise UserError(
                f"host {self.settings.host} cannot fill volumes from images (no image service)",
                reason="ImagesUnavailable",
            )
        try:
            image = Image.model_validate(await self.client.get(IMAGES, name))
        except NotFound as exc:
            raise NotFoundError(
                f"Image {name} does not exist (kubectl get images lists them)",
                reason="ImageNotFound",
            ) from exc
        except ApiError as exc:
            raise TemporaryError(f"reading Image {name}: {exc}") from exc
        return (await self.images.fetch(name, image)).disk

    # -- deletion ----------------------------------------------------------------------------

    async def _delete(self, key: str, body: Body) -> float | None:
        uid = uid_of(body)
        if uid in self._memory.finalized:
            return None
        if AGENT_FINALIZER not in finalizers_of(body):
            return None
        protocol = str((body.get("spec") or {}).get("protocol") or "iscsi")
        if vs.attachments(body):
            await self._report(body, None, None, protocol=protocol)
            held = ", ".join(str(a.get("instance")) for a in vs.attachments(body))
            self.events.record(
                body,
                "Warning",
                "DeletionBlocked",
                f"still attached to {held}: remove it from their spec.volumes to finish deleting",
            )
            return None  # the operator's attachment change wakes us
        await self._remove(uid, target_of(body), protocol)
        await remove_finalizer(self.client, VOLUMES, body, AGENT_FINALIZER)
        self._memory.finalized.add(uid)
        self.events.record(body, "Normal", "Deleted", "export and backing file removed")
        log.info("volume %s: export and file removed, agent finalizer dropped", key)
        return None

    async def _gone(self, key: str) -> None:
        """The Volume left this host's watch: remove its export and file only if it really left.

        A watch event is not proof: the Volume is read again, and its disk stays while the
        operator's status.host still names this host and it is not deleted (or, deleted,
        while it is still attached).
        """
        uid = self.uids.get(key)
        if uid is None:
            self.retained.discard(key)
            return
        if uid not in self._memory.finalized:
            where = await recheck(self.client, VOLUMES, key, uid, self.settings.host)
            if where.whereabouts is Whereabouts.DELETING and where.body is not None:
                await self._delete(key, where.body)
                if uid not in self._memory.finalized:
                    self.retained.add(key)  # held while attached: looked at again at resync
                    return
            elif where.whereabouts is Whereabouts.STILL_HERE:
                if key not in self.retained:
                    log.warning(
                        "volume %s left the watch but its status.host is still %s and it is "
                        "not deleted: its export and file stay",
                        key,
                        self.settings.host,
                    )
                self.retained.add(key)
                return
            else:
                await self._remove(uid)
        self.retained.discard(key)
        self.uids.pop(key, None)
        self._memory.finalized.discard(uid)
        self.events.forget(uid)

    async def still_placed_here(self, uid: str, key: str | None) -> bool:
        """Does the file of volume `uid`, which no watched Volume explains, stay on this host?

        Out of the watch's cache is not gone (the cache may lag, e.g. right after this agent
        started). The Volume `key` (None: no Volume has that uid any more) is read
        again through the same path as one that left the watch: kept (and rechecked at
        every resync) while the operator still places it here and it is not deleted; torn
        down through the deletion path, finalizer and all, when it is being deleted. False:
        the caller removes what is left of it (export, file).
        """
        if key is None:
            return False  # no Volume has this uid any more
        if self.uids.get(key, uid) != uid:
            return True  # the watch and the list disagree on whose name it is: look again
        self.uids[key] = uid
        await self._gone(key)  # a fresh read; it keeps, deletes or drops the Volume
        return key in self.retained

    async def _remove(
        self, uid: str, target: Target | None = None, protocol: str | None = None
    ) -> None:
        target = target or self._memory.targets.get(uid)
        if target is not None:
            kind = protocol or ("iscsi" if isinstance(target, IscsiTarget) else "aoe")
            driver = self.drivers.get(kind)
            if driver is not None:
                await asyncio.to_thread(driver.unexport, target)
        await asyncio.to_thread(self.store.remove, uid)
        self._memory.targets.pop(uid, None)
        self._memory.written.forget(uid)
        self._memory.failures.pop(uid, None)

    # -- status ------------------------------------------------------------------------------

    async def _failed(self, key: str, body: Body, exc: KubenovaError) -> float:
        uid = uid_of(body)
        failures = self._memory.failures.get(uid, 0) + 1
        self._memory.failures[uid] = failures
        await self._report(body, None, vs.Failure(exc.reason, exc.message))
        self.events.record(body, "Warning", exc.reason, exc.message)
        log.warning("volume %s: %s: %s", key, exc.reason, exc.message)
        if isinstance(exc, TemporaryError):
            return exc.delay
        if isinstance(exc, UserError):
            return self.settings.recheck_missing
        return min(MAX_RETRY, 2.0 * 2.0 ** (failures - 1))

    async def _report(
        self,
        body: Body,
        export: Export | None,
        failure: vs.Failure | None,
        *,
        protocol: str | None = None,
    ) -> None:
        uid = uid_of(body)
        kind = protocol or str((body.get("spec") or {}).get("protocol") or "iscsi")
        desired = vs.desired_status(body, export, failure, kind)
        if not vs.differs(self._memory.written.newest_status(body), desired):
            return
        try:
            updated = await apply_status(self.client, VOLUMES, body, desired, manager=AGENT_MANAGER)
        except NotFound:
            return
        self._memory.written.remember(uid, updated, desired)
        log.info("volume %s: %s", key_of(body), desired["phase"])


def target_of(body: Body) -> Target | None:
    """The export identity the operator allocated (None until it did)."""
    target = (body.get("status") or {}).get("target") or {}
    protocol = (body.get("spec") or {}).get("protocol") or "iscsi"
    if protocol == "iscsi" and target.get("iqn"):
        return IscsiTarget(target["iqn"], int(target.get("lun") or 1))
    if protocol == "aoe" and target.get("shelf") is not None and target.get("slot") is not None:
        return AoeTarget(int(target["shelf"]), int(target["slot"]))
    return None


def initiators_of(body: Body) -> list[Initiator]:
    """The hosts the operator attached the volume to, with their storage identities."""
    found: dict[str, Initiator] = {}
    for entry in vs.attachments(body):
        host = entry.get("host")
        if not host or host in found:
            continue
        found[host] = Initiator(
            host=host,
            iqn=entry.get("initiator"),
            address=entry.get("address"),
            mac=entry.get("mac"),
        )
    return list(found.values())
