"""kopf registration of InstanceMigrations: events go to the migration work queue, which
runs only while this operator leads (a standby must never claim or hand over)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import kopf

from kubenova.api.v1alpha1 import GROUP, VERSION
from kubenova.kube.meta import slim
from kubenova.operator.config import OperatorConfig
from kubenova.operator.migrations.reconciler import PREPARE_TIMEOUT, MigrationReconciler
from kubenova.operator.runtime import MemoSlot, runtime_of
from kubenova.workqueue import WorkQueue

QUEUE: MemoSlot[WorkQueue[str]] = MemoSlot("migrations")
RECONCILER: MemoSlot[MigrationReconciler] = MemoSlot("migration-reconciler")
PREPARE_TIMEOUT_ENV = "KUBENOVA_MIGRATION_PREPARE_TIMEOUT"
MAX_PREPARE_TIMEOUT = 86400.0  # a day


def prepare_timeout(environ: Mapping[str, str] = os.environ) -> float:
    """Seconds a target may take to prepare (image fetch included) before the migration
    fails; ValueError naming the variable for a bad value."""
    text = environ.get(PREPARE_TIMEOUT_ENV)
    if text is None:
        return PREPARE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_PREPARE_TIMEOUT:
        raise ValueError(
            f"{PREPARE_TIMEOUT_ENV}={text!r}: give seconds, more than 0, "
            f"at most {MAX_PREPARE_TIMEOUT:.0f}"
        )
    return value


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the InstanceMigration watch and its reconciler."""

    @kopf.on.startup(registry=registry)
    async def start_migrations(memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        try:
            timeout = prepare_timeout()
        except ValueError as exc:
            raise kopf.PermanentError(f"migration settings: {exc}") from exc
        reconciler = MigrationReconciler(
            runtime.client,
            runtime.placer,
            runtime.catalog,
            runtime.events,
            runtime.instances,
            prepare_timeout=timeout,
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
