"""The Volume controller: placement and release of Volumes, and the Instance hook for attachments.

Volume events go to the Volume reconciler's queue (and the shared catalog, where the
attachment controller and the admission webhook find Volumes); Host changes retry the
Volumes waiting for a host. Deleting a Volume that an Instance still has attached is held
by the agent's finalizer until it is detached (the Volume shows phase Deleting with
`Ready=False, reason DeletionBlocked` naming the Instances).

A periodic audit withdraws attachments of Instances that no longer exist and releases
claims of Volumes that no longer exist (both leak when the operator is down while the
object goes away).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION, Instance, Volume
from kubenova.kube import kubenova_kind
from kubenova.kube.meta import Body, slim, uid_of
from kubenova.kube.watch import list_pages
from kubenova.operator import inventory as inv
from kubenova.operator.config import OperatorConfig
from kubenova.operator.inventory import volumes as vol
from kubenova.operator.inventory.consumers import list_consumers
from kubenova.operator.runtime import MemoSlot, Runtime, runtime_of
from kubenova.operator.volumes.attachments import VOLUME_KIND, AttachmentController
from kubenova.operator.volumes.chap_access import ChapAccess
from kubenova.operator.volumes.reconciler import VolumeReconciler
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

VOLUMES = kubenova_kind(Volume)
INSTANCES = kubenova_kind(Instance)


@dataclass
class VolumeController:
    reconciler: VolumeReconciler
    queue: WorkQueue[str]
    attachments: AttachmentController
    # Per namespace: which hosts' agents may read which CHAP Secrets (volumes/chap_access).
    chap_access: WorkQueue[str]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.queue.stop()
        await self.attachments.queue.stop()
        await self.chap_access.stop()


CONTROLLER: MemoSlot[VolumeController] = MemoSlot("volumes")


async def audit_volumes(runtime: Runtime, controller: VolumeController) -> list[str]:
    """Release what vanished objects left in the inventory; what was released."""
    # Read the inventory first: anything recorded for an object that already exists shows
    # up in the listings below, so a record missing from them really is a leak.
    claims = await asyncio.to_thread(list_consumers, runtime.engine, VOLUME_KIND)
    records = await asyncio.to_thread(vol.list_attachments, runtime.engine)
    # Read a page at a time, only uids kept: 10,000 Instances' bodies at once (managed
    # fields included) were ~100 MB on top of the operator's resident set every pass.
    volumes: set[str] = set()
    attached: list[str] = []
    async for page in list_pages(runtime.client, VOLUMES):
        for volume in page["items"]:
            volumes.add(uid_of(volume))
            if (volume.get("status") or {}).get("attachments"):
                attached.append(uid_of(volume))
    pages = list_pages(runtime.client, INSTANCES)
    instances = {uid_of(item) async for page in pages for item in page["items"]}
    released = []
    for claim in claims:
        if claim.uid not in volumes:
            await asyncio.to_thread(vol.release_target, runtime.engine, claim.uid)
            await asyncio.to_thread(inv.release, runtime.engine, claim.uid)
            runtime.placer.host_changed(claim.host)
            released.append(f"volume {claim.namespace}/{claim.name} on {claim.host}")
    for record in records:
        if record.instance_uid not in instances:
            await controller.attachments.on_release(record.instance_uid)
            released.append(
                f"attachment of {record.instance_namespace}/{record.instance_name} "
                f"to volume {record.volume_uid}"
            )
    for line in released:
        log.warning("volume audit released leaked %s", line)
    # A detach is committed before its Volume's status.attachments is written: when that
    # write fails (the apiserver restarting), the retry finds nothing left to detach and
    # the Volume keeps naming a gone Instance (its deletion waits for that forever).
    # Publishing rewrites a status only where it differs from the inventory.
    for uid in attached:
        await controller.attachments.publish(uid)
    return released


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the Volume watch, the Host retry and the attachment hook to the operator."""

    @kopf.on.startup(registry=registry)
    async def start_volumes(memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)

        def disk_changed(host: str) -> None:
            runtime.placer.host_changed(host)
            runtime.retry_pending()

        reconciler = VolumeReconciler(
            runtime.client,
            runtime.engine,
            runtime.events,
            runtime.hosts.is_ready,
            runtime.hosts.is_fenced,
            disk_changed,
        )
        queue: WorkQueue[str] = WorkQueue(reconciler, workers=config.workers, name="volumes")

        def fencing_changed(host: str) -> None:
            for key, on in list(reconciler.deleting_on.items()):
                if on == host:
                    queue.mark(key)

        runtime.hosts.on_fencing_changed(fencing_changed)
        attachments = AttachmentController(
            runtime.client,
            runtime.engine,
            runtime.events,
            lambda key: runtime.catalog.get(VOLUME_KIND, key),
            runtime.hosts.hosts.get,
            moves=runtime.moves,
            workers=config.workers,
        )
        runtime.moves.on_change(attachments.guest_moving)
        runtime.instances.hooks.append(attachments)
        chap_access: WorkQueue[str] = WorkQueue(
            ChapAccess(runtime.client), workers=config.workers, name="chap-access"
        )
        controller = VolumeController(reconciler, queue, attachments, chap_access)
        CONTROLLER.put(memo, controller)

        def host_changed(name: str, _: Body | None) -> None:
            for key in list(reconciler.pending):
                queue.mark(key)
            attachments.host_changed(name)

        runtime.host_watches.on_host(host_changed)

        async def lead() -> None:
            # Read when we lead, not at start-up: a standby's copy would be the old leader's
            # state of long ago.
            await attachments.load()
            queue.start()
            attachments.queue.start()
            chap_access.start()
            controller.tasks.append(
                asyncio.create_task(_audits(runtime, controller, config.audit_interval))
            )

        runtime.when_leading(lead)

    @kopf.on.cleanup(registry=registry)
    async def stop_volumes(memo: kopf.Memo, **_: Any) -> None:
        controller = CONTROLLER.find(memo)
        if controller is not None:
            await controller.stop()

    @kopf.on.event(GROUP, VERSION, "volumes", registry=registry)
    async def volume_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        controller = CONTROLLER.get(memo)
        runtime = runtime_of(memo)
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        current = None if type == "DELETED" else slim(dict(body))
        runtime.catalog.put(VOLUME_KIND, key, current)
        controller.queue.put(key, current)
        controller.attachments.volume_changed(key, current)
        controller.chap_access.put(body.metadata.namespace or "", {})


async def _audits(runtime: Runtime, controller: VolumeController, interval: float) -> None:
    # The first pass soon after start-up: that is when leaks from downtime are found.
    await asyncio.sleep(min(interval, 10.0))
    while True:
        try:
            await audit_volumes(runtime, controller)
        except Exception:
            log.exception("volume audit failed")
        await asyncio.sleep(interval)
