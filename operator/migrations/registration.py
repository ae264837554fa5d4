"""kopf registration of InstanceMigrations: events go to the migration work queue, which
runs only while this operator leads (a standby must never claim or hand over)."""

from __future__ import annotations

from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.objects import slim
from kubenova.operator.config import OperatorConfig
from kubenova.operator.migrations.reconciler import MigrationReconciler
from kubenova.operator.runtime import MemoSlot, runtime_of
from kubenova.workqueue import WorkQueue

QUEUE: MemoSlot[WorkQueue[str]] = MemoSlot("migrations")
RECONCILER: MemoSlot[MigrationReconciler] = MemoSlot("migration-reconciler")


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the InstanceMigration watch and its reconciler."""

    @kopf.on.startup(registry=registry)
    async def start_migrations(memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        reconciler = MigrationReconciler(
            runtime.client, runtime.placer, runtime.catalog, runtime.events, runtime.instances
        )
        queue: WorkQueue[str] = WorkQueue(reconciler, workers=config.workers, name="migrations")
        QUEUE.put(memo, queue)
        RECONCILER.put(memo, reconciler)

        async def lead() -> None:
            queue.start()

        runtime.when_leading(lead)

    @kopf.on.cleanup(registry=registry)
    async def stop_migrations(memo: kopf.Memo, **_: Any) -> None:
        queue = QUEUE.find(memo)
        if queue is not None:
            await queue.stop()

    @kopf.on.event(GROUP, VERSION, "instancemigrations", registry=registry)
    async def migration_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
        key = f"{body.metadata.namespace}/{body.metadata.name}"
        if type == "DELETED":
            # Its uid, for a roll-back even if this process never saw it alive.
            RECONCILER.get(memo).uids[key] = body.metadata.uid or ""
            QUEUE.get(memo).put(key, None)
        else:
            QUEUE.get(memo).put(key, slim(dict(body)))
