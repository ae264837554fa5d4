"""Drain (issue 18, item 1): an administrator cordons a Host and asks for it to be emptied
(`spec.schedulable: false`, `spec.drain: true`); the operator creates one InstanceMigration
per Instance on it (live for a running guest, cold for a stopped one) and shows the progress
in the Host's `status.drain`.

Level-triggered on the Host: every pass lists the Instances placed there (the
`status.host` field selector) and the drain's migrations (labelled with the host), creates
the missing ones under a name derived from the Instance's uid (a restarted operator, or a
second pass, finds them instead of making another), and writes the tally. The migrations
themselves are ordinary ones (the migration reconciler picks the target: filters and
anti-affinity apply; the cordoned host is never a target). A failed one stays, counted,
until an administrator deletes it: the next pass then tries again. A stopped guest's
migration is of mode Cold (its disk is pulled by the target; it stays stopped there); the
mode is decided when the migration is made.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf

from kubenova.api.v1alpha1 import (
    Host,
    InstanceMigration,
    MigrationMode,
    MigrationPhase,
)
from kubenova.errors import Conflict
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, deleting, name_of, namespace_of, uid_of
from kubenova.kube.objects import apply_status
from kubenova.operator.config import OperatorConfig
from kubenova.operator.instances import INSTANCES
from kubenova.operator.runtime import MemoSlot, runtime_of
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

HOSTS = kubenova_kind(Host)
MIGRATIONS = kubenova_kind(InstanceMigration)
DRAIN_LABEL = "kubenova.io/drained-host"
# Our own field manager: the drain's apply must not remove the host fields the rest of the
# operator writes (allocated, conditions), nor they ours.
DRAIN_MANAGER = "kubenova-operator-drain"
QUEUE: MemoSlot[WorkQueue[str]] = MemoSlot("drains")
RECHECK_SECONDS = 2.0  # while draining: migrations progress without touching the Host


def migration_name(instance: Body) -> str:
    """The drain migration's name: one per Instance (its uid), whatever the host."""
    return f"drain-{uid_of(instance)}"


def drain_requested(host: Body | None) -> bool:
    spec = (host or {}).get("spec") or {}
    return bool(spec.get("drain")) and not spec.get("schedulable", True)


@dataclass
class Drainer:
    """Drains one Host key at a time (the work queue serialises per key)."""

    client: KubeClient
    events: EventRecorder

    async def __call__(self, host: str, body: Body | None) -> float | None:
        if body is None or deleting(body):
            return None
        if not drain_requested(body):
            if (body.get("status") or {}).get("drain") is not None:
                await self._write(body, None)  # a drain called off: its progress goes
            return None
        listing = await self.client.list(INSTANCES, field_selector=f"status.host={host}")
        mine = await self.client.list(MIGRATIONS, label_selector=f"{DRAIN_LABEL}={host}")
        phases = {
            (namespace_of(m), name_of(m)): (m.get("status") or {}).get("phase")
            for m in mine.get("items") or ()
        }
        instances = [i for i in listing.get("items") or () if not deleting(i)]
        migrating = failed = stopped = 0
        for instance in instances:
            running = (instance.get("spec") or {}).get("powerState", "Running") == "Running"
            where = (namespace_of(instance), migration_name(instance))
            if phases.get(where) == MigrationPhase.COMPLETED:
                # An earlier drain's, and the Instance came back since: move it again.
                await self._delete(where)
                phases.pop(where)
            if where not in phases:
                phases[where] = await self._create(host, instance, running=running)
            if phases[where] == MigrationPhase.FAILED:
                failed += 1
            elif running:
                migrating += 1
            else:
                stopped += 1
        drained = migrating == 0 and failed == 0 and stopped == 0
        drain = {
            "phase": "Drained" if drained else "Draining",
            "instances": len(instances),
            "migrating": migrating,
            "failed": failed,
            "stopped": stopped,
            "message": _summary(host, len(instances), migrating, failed, stopped),
        }
        await self._write(body, drain)
        return None if drained else RECHECK_SECONDS

    async def _create(self, host: str, instance: Body, *, running: bool) -> str | None:
        """Create the Instance's drain migration (live if it runs, else cold); its phase
        (None: just created)."""
        namespace = namespace_of(instance)
        mode = MigrationMode.LIVE if running else MigrationMode.COLD
        migration = {
            "apiVersion": MIGRATIONS.api_version,
            "kind": MIGRATIONS.kind,
            "metadata": {
                "name": migration_name(instance),
                "namespace": namespace,
                "labels": {DRAIN_LABEL: host},
            },
            "spec": {"instanceName": name_of(instance), "mode": str(mode)},
        }
        try:
            await self.client.create(MIGRATIONS, migration, namespace)
        except Conflict:
            return None  # made by an earlier pass whose list this one did not see yet
        how = "live-migrating" if running else "moving (cold)"
        message = f"draining host {host}: {how} {namespace}/{name_of(instance)}"
        self.events.record(instance, "Normal", "Draining", message)
        log.info("%s", message)
        return None

    async def _delete(self, where: tuple[str, str]) -> None:
        namespace, name = where
        try:
            await self.client.delete(MIGRATIONS, name, namespace)
        except NotFound:
            return

    async def _write(self, body: Body, drain: dict[str, Any] | None) -> None:
        current = (body.get("status") or {}).get("drain")
        if current == drain:
            return
        try:
            await apply_status(
                self.client,
                HOSTS,
                body,
                {"drain": drain} if drain is not None else {},
                manager=DRAIN_MANAGER,
            )
        except NotFound:
            return


def register(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Add the drain's Host watch and its work queue (run only while this operator leads)."""

    @kopf.on.startup(registry=registry)
    async def start_drains(memo: kopf.Memo, **_: Any) -> None:
        runtime = runtime_of(memo)
        drainer = Drainer(runtime.client, runtime.events)
        queue: WorkQueue[str] = WorkQueue(drainer, workers=1, name="drains")
        QUEUE.put(memo, queue)
        runtime.host_watches.on_host(queue.put)

        async def lead() -> None:
            queue.start()

        runtime.when_leading(lead)

    @kopf.on.cleanup(registry=registry)
    async def stop_drains(memo: kopf.Memo, **_: Any) -> None:
        queue = QUEUE.find(memo)
        if queue is not None:
            await queue.stop()


def _summary(host: str, instances: int, migrating: int, failed: int, stopped: int) -> str:
    if instances == 0:
        return f"host {host} runs no Instance any more"
    parts = [f"{instances} Instances left on host {host}: {migrating} being live-migrated"]
    if failed:
        parts.append(f"{failed} whose migration failed (delete the InstanceMigration to retry)")
    if stopped:
        parts.append(f"{stopped} stopped, being moved cold")
    return ", ".join(parts)
