"""What the operator holds while it runs: clients, the inventory, queues and monitors."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from kubenova.kube import KubeClient, load_config
from kubenova.kube.events import EventRecorder
from kubenova.memory import give_back_forever
from kubenova.metrics import HealthServer
from kubenova.operator import inventory as inv
from kubenova.operator.audit import audit
from kubenova.operator.catalog import Catalog
from kubenova.operator.config import OperatorConfig
from kubenova.operator.hosts import HostMonitor
from kubenova.operator.instances import InstanceReconciler
from kubenova.operator.placement import Placer
from kubenova.operator.scheduler import SchedulerConfig
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

# Seconds after start-up before the first audit: long enough for the catalog and host
# watches to have listed what exists, so re-claims find their flavors.
STARTUP_AUDIT_DELAY = 10.0


@dataclass
class Runtime:
    """Built at start-up (inside the event loop), torn down at clean-up."""

    config: OperatorConfig
    engine: Engine
    client: KubeClient
    events: EventRecorder
    placer: Placer
    catalog: Catalog
    hosts: HostMonitor
    instances: InstanceReconciler
    instance_queue: WorkQueue[str]
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Other controllers (volumes) waiting for hosts to be fenced: called with the host.
    fence_listeners: list[Callable[[str], None]] = field(default_factory=list)
    health: HealthServer | None = None
    ready: bool = False

    @classmethod
    def build(cls, config: OperatorConfig) -> Runtime:
        engine = inv.make_engine(config.database_url)
        inv.check_schema(engine)  # refuse to run on a stale schema
        client = KubeClient(load_config(config.kubeconfig), user_agent="kubenova-operator")
        events = EventRecorder(client, "kubenova-operator")
        placer = Placer(
            engine,
            SchedulerConfig.from_settings(config.scheduler_filters, config.scheduler_weighers),
        )
        catalog = Catalog()
        runtime_ref: list[Runtime] = []

        def wake_pending() -> None:
            if runtime_ref:
                runtime_ref[0].retry_pending()

        def fencing_changed(host: str) -> None:
            if runtime_ref:
                runtime_ref[0].retry_awaiting_fence(host)

        hosts = HostMonitor(
            client,
            placer,
            events,
            config.lease_timeout,
            wake_pending,
            fencing_changed=fencing_changed,
        )
        reconciler = InstanceReconciler(
            client, placer, catalog, events, hosts.is_ready, hosts.is_fenced, hosts.is_judged
        )
        queue: WorkQueue[str] = WorkQueue(
            reconciler, workers=config.workers, name="instances", component="operator"
        )

        def arrived(keys: set[str]) -> None:
            for key in keys:
                queue.mark(key)

        catalog.on_arrival = arrived
        placer.on_release = wake_pending
        runtime = cls(config, engine, client, events, placer, catalog, hosts, reconciler, queue)
        runtime_ref.append(runtime)
        return runtime

    def retry_pending(self) -> None:
        """Capacity may have appeared: try every Instance that found no host again."""
        loop = asyncio.get_running_loop()
        for key in list(self.instances.pending):
            loop.call_soon_threadsafe(self.instance_queue.mark, key)

    def retry_awaiting_fence(self, host: str) -> None:
        """A host was fenced (or came back): let the Instances deleted on it go."""
        for key, on in list(self.instances.deleting_on.items()):
            if on == host:
                self.instance_queue.mark(key)
        for listener in self.fence_listeners:
            listener(host)

    def start(self) -> None:
        self.instance_queue.start()
        if self.config.metrics_port is not None:
            self.health = HealthServer(
                self.config.metrics_host, self.config.metrics_port, lambda: self.ready
            )
            self.tasks.append(asyncio.create_task(self.health.start(), name="health"))
        self.tasks.append(asyncio.create_task(self._lease_checks(), name="lease-checks"))
        self.tasks.append(asyncio.create_task(self._audits(), name="audits"))
        self.tasks.append(asyncio.create_task(give_back_forever(), name="give-back-memory"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.instance_queue.stop()
        if self.health:
            await self.health.stop()
        await self.events.flush()
        log.info("api writes: %s", json.dumps(dict(sorted(self.client.writes.items()))))
        await self.client.close()
        self.engine.dispose()

    async def _audits(self) -> None:
        # The first pass comes soon after start-up: an Instance deleted while no operator
        # ran (say, killed between claiming and adding its finalizer) is never seen again,
        # so only the audit can give its claim back.
        delay = min(self.config.audit_interval, STARTUP_AUDIT_DELAY)
        while True:
            await asyncio.sleep(delay)
            delay = self.config.audit_interval
            try:
                await audit(self.client, self.placer, self.catalog)
                self.instances.claimed.clear()  # re-verify what we believed was claimed
                # Like kube-scheduler's periodic flush of unschedulable pods: whatever
                # woke nobody (a quota raised, a host edited by hand) is tried again.
                self.retry_pending()
            except Exception:
                log.exception("audit failed")

    async def _lease_checks(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_check_interval)
            try:
                await self.hosts.check_leases()
                await self.hosts.publish_usage()
                self.ready = True
            except Exception:
                log.exception("lease check failed")
