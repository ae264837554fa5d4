"""kopf registration of Networks: their watch, the Host watch that re-marks them, the hook,
and the migrations under way (operator/moves.py), which re-mark a moving guest's Networks.

Start-up builds the Network reconciler and its work queue from the runtime and plugs the
Instance hook (fixed IPs, MACs, floating IPs) into the Instance reconciler; a resync with
the audit's period marks every Network again (leaked addresses, drift).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.meta import slim
from kubenova.operator.config import OperatorConfig
from kubenova.operator.networks.association import FloatingAssociations
from kubenova.operator.networks.hook import NETWORK_KIND, NetworkInstanceHook
from kubenova.operator.networks.reconciler import NetworkReconciler
from kubenova.operator.networks.settings import from_environment
from kubenova.operator.runtime import MemoSlot, runtime_of
from kubenova.workqueue import WorkQueue


@dataclass
class NetworkController:
    reconciler: NetworkReconciler
    queue: WorkQueue[str]
    resync: asyncio.Task[None] | None = None


CONTROLLER: MemoSlot[NetworkController] = MemoSlot("networks")


async def _resync_forever(controller: NetworkController, interval: float) -> None:
    """With the audit's period: every Network again (leaked addresses, drift)."""
    while True:
        await asyncio.sleep(interval)
        for key in set(controller.reconciler.keys.values()):
            controller.queue.mark(key)


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the Network watches and the Instance hook to the operator."""

    @kopf.on.startup(registry=registry)
    async def start_networks(memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        try:
            settings = from_environment()
        except ValueError as exc:
            raise kopf.PermanentError(f"network settings: {exc}") from exc
        reconciler = NetworkReconciler(
            runtime.client,
            runtime.engine,
            settings,
            runtime.events,
            runtime.hosts.hosts,
            runtime.moves,
        )
        queue: WorkQueue[str] = WorkQueue(reconciler, workers=4, name="networks")

        def guest_moving(namespace: str, instance: str) -> None:
            # A migration began or ended: its target carries the guest's networks, or not.
            body = runtime.instance_queue.body(f"{namespace}/{instance}")
            for nic in ((body or {}).get("spec") or {}).get("networks") or []:
                queue.mark(f"{namespace}/{nic['network']}")

        runtime.moves.on_change(guest_moving)
        hook = NetworkInstanceHook(
            runtime.engine,
            runtime.catalog,
            settings,
            queue.mark,
            reconciler.keys.get,
            follow_floating=FloatingAssociations(
                runtime.client,
                runtime.engine,
                runtime.events,
                settings.floating_pool,
                catalog=runtime.catalog,
                changed=queue.mark,
            ).follow,
        )
        runtime.instances.hooks.append(hook)
        controller = NetworkController(reconciler, queue)
        CONTROLLER.put(memo, controller)
        runtime.host_watches.on_host(lambda name, body: reconciler.host_changed(name, body, queue))

        async def lead() -> None:
            queue.start()
            controller.resync = asyncio.create_task(
                _resync_forever(controller, config.audit_interval), name="network-resync"
            )

        runtime.when_leading(lead)

    @kopf.on.cleanup(registry=registry)
    async def stop_networks(memo: kopf.Memo, **_: Any) -> None:
        controller = CONTROLLER.find(memo)
        if controller is not None:
            if controller.resync is not None:
                controller.resync.cancel()
            await controller.queue.stop()

    @kopf.on.event(GROUP, VERSION, "networks", registry=registry)
    async def network_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        controller = CONTROLLER.get(memo)
        runtime = runtime_of(memo)
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        current = None if type == "DELETED" else slim(dict(body))
        runtime.catalog.put(NETWORK_KIND, key, current)
        controller.queue.put(key, current)
