"""What the operator holds while it runs: clients, the inventory, queues and monitors.

Built by the first start-up handler and kept in kopf's memo; the domains' handlers reach
it with `runtime_of(memo)`, and keep their own state in a `MemoSlot` of their own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import kopf
from sqlalchemy import Engine

from kubenova.kube import KubeClient, kubenova_kind, load_config
from kubenova.kube.config import service_account_owner
from kubenova.kube.events import EventRecorder
from kubenova.kube.leader import LeaderElector
from kubenova.kube.paths import LEASES
from kubenova.kube.watch import ListWatch
from kubenova.memory import give_back, give_back_forever
from kubenova.metrics import HealthServer
from kubenova.operator import inventory as inv
from kubenova.operator.audit import after_backlog, audit
from kubenova.operator.catalog import FILED_BY_DOMAINS, Catalog, CatalogWatches
from kubenova.operator.config import OperatorConfig
from kubenova.operator.hosts import HostMonitor, HostWatches
from kubenova.operator.instances import InstanceReconciler, instance_watch
from kubenova.operator.leadership import (
    LEADER_LEASE,
    Leadership,
    OnLeading,
    guard_engine,
    holder_dead,
    identity,
)
from kubenova.operator.moves import Moves
from kubenova.operator.placement import Placer
from kubenova.operator.prefetch import FRESH_FOR, Prefetch
from kubenova.operator.scheduler import SchedulerConfig
from kubenova.workqueue import WorkQueue

log = logging.getLogger(__name__)

# Seconds after start-up before the first audit: long enough for the catalog and host
# watches to have listed what exists, so re-claims find their flavors.
STARTUP_AUDIT_DELAY = 10.0
# Seconds a new leader waits at most for the Host and Lease lists to reach the host monitor
# before it places anything.
HOST_SYNC_TIMEOUT = 10.0
# Threads beyond one per Instance worker: the host monitor, audits, other domains' queues.
EXTRA_THREADS = 8

T = TypeVar("T")


class MemoSlot(Generic[T]):
    """One typed entry of kopf's memo: what a start-up handler built, for later handlers."""

    def __init__(self, key: str) -> None:
        self.key = key

    def put(self, memo: kopf.Memo, value: T) -> None:
        memo[self.key] = value

    def find(self, memo: kopf.Memo) -> T | None:
        """The value, or None before its start-up handler ran (or after it failed)."""
        value: T | None = memo.get(self.key)
        return value

    def get(self, memo: kopf.Memo) -> T:
        """The value; before its start-up handler ran, a retry soon (kopf's TemporaryError)."""
        value = self.find(memo)
        if value is None:
            raise kopf.TemporaryError(f"{self.key} is not built yet", delay=0.1)
        return value


@dataclass
class Runtime:
    """Built at start-up (inside the event loop), torn down at clean-up."""

    config: OperatorConfig
    engine: Engine
    # Writes only while this replica leads (every write checks the lease first).
    client: KubeClient
    # What any replica may write, leading or not: the leader Lease itself, the webhook's
    # certificate Secret and configuration, access reviews.
    replica_client: KubeClient
    leadership: Leadership
    events: EventRecorder
    placer: Placer
    catalog: Catalog
    # Flavors, Images and ServerGroups, listed and watched once from start-up.
    catalog_watches: CatalogWatches
    hosts: HostMonitor
    # Hosts and their Leases, listed and watched once from start-up (leading or not).
    host_watches: HostWatches
    instances: InstanceReconciler
    # Every Instance, listed and watched once, into the instance work queue (leader only).
    instance_watch: ListWatch
    # Every InstanceMigration's target while under way, for the network and volume domains.
    moves: Moves
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    health: HealthServer | None = None
    ready: bool = False

    @classmethod
    def build(cls, config: OperatorConfig, prefetch: Prefetch) -> Runtime:
        engine = inv.make_engine(config.database_url)
        inv.check_schema(engine)  # refuse to run on a stale schema
        connection = load_config(config.kubeconfig)
        replica_client = KubeClient(connection, user_agent="kubenova-operator")
        elector = LeaderElector(
            replica_client,
            LEASES,
            config.system_namespace,
            LEADER_LEASE,
            identity(),
            holder_dead=holder_dead,
            owner=service_account_owner(connection, config.system_namespace),
        )
        client = KubeClient(connection, user_agent="kubenova-operator", write_guard=elector.check)
        guard_engine(engine, elector.check)
        events = EventRecorder(client, "kubenova-operator")
        placer = Placer(
            engine,
            SchedulerConfig.from_settings(config.scheduler_filters, config.scheduler_weighers),
        )
        catalog = Catalog()
        hosts = HostMonitor(client, placer, events, config.lease_timeout)
        reconciler = InstanceReconciler(
            client, placer, catalog, events, hosts.is_ready, hosts.is_fenced, hosts.is_judged
        )
        reconciler.host_evacuable = hosts.is_evacuable
        reconciler.host_out_of_service = hosts.is_out_of_service
        runtime = cls(
            config,
            engine,
            client,
            replica_client,
            Leadership(elector, replica_client),
            events,
            placer,
            catalog,
            CatalogWatches(client, catalog),
            hosts,
            HostWatches(client, hosts, config.system_namespace),
            reconciler,
            instance_watch(client, reconciler, config.workers),
            Moves(client),
        )
        for watch in (
            runtime.host_watches.hosts,
            runtime.host_watches.leases,
            runtime.instance_watch,
        ):
            prefetch.hand_to(watch)
        for model in FILED_BY_DOMAINS:
            path = kubenova_kind(model).path()
            if (listing := prefetch.take(path)) is not None:
                runtime.catalog_watches.prefetched[path] = listing
        prefetch.drop()
        # Both sides exist now: connect who wakes whom.
        catalog.on_arrival = runtime.retry_arrived
        placer.on_release = runtime.retry_pending
        hosts.on_capacity(runtime.retry_pending)
        hosts.on_fencing_changed(runtime.retry_awaiting_fence)
        # Host status that is no flip waits while Instances wait for a placement.
        hosts.status.busy = lambda: len(runtime.instance_queue) > 0
        return runtime

    @property
    def instance_queue(self) -> WorkQueue[str]:
        return self.instance_watch.queue

    def retry_arrived(self, keys: set[str]) -> None:
        """Something these Instances waited for arrived: try them again."""
        for key in keys:
            self.instance_queue.mark(key)

    def retry_pending(self) -> None:
        """Capacity may have appeared: try every Instance that found no host again."""
        loop = asyncio.get_running_loop()
        for key in list(self.instances.pending):
            loop.call_soon_threadsafe(self.instance_queue.mark, key)

    def retry_awaiting_fence(self, host: str) -> None:
        """A host was fenced (or came back): let the Instances deleted on it go, and
        evacuate those placed on it if it failed."""
        for key in self.instances.on_host(host):
            self.instance_queue.mark(key)

    def start(self) -> None:
        """Serve health and stand for election; the work starts once this replica leads."""
        # asyncio's default pool has cpu + 4 threads (6 here): with every thread taken by a
        # placement, at most 6 could share a group commit (one fsync) however many workers
        # wait. A thread per worker lets one commit carry every placement in flight.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(self.config.workers + EXTRA_THREADS, "kubenova-operator")
        )
        if self.config.metrics_port is not None:
            self.health = HealthServer(
                self.config.metrics_host, self.config.metrics_port, self.is_ready
            )
            self.tasks.append(asyncio.create_task(self.health.start(), name="health"))
        self.tasks.append(asyncio.create_task(give_back_forever(), name="give-back-memory"))
        # A standby leads much later: from a list of its own, not from one that old.
        asyncio.get_running_loop().call_later(FRESH_FOR, self._drop_prefetched)
        self.tasks.append(asyncio.create_task(self.host_watches.run(), name="host-watches"))
        self.tasks.append(asyncio.create_task(self.catalog_watches.run(), name="catalog-watches"))
        self.leadership.when_leading(self._start_leading)
        self.tasks.append(
            asyncio.create_task(self.leadership.lead(self._lost_leadership), name="leadership")
        )

    def _drop_prefetched(self) -> None:
        self.instance_watch.prefetched = None
        self.catalog_watches.prefetched.clear()

    def when_leading(self, start: OnLeading) -> None:
        """Run `start` (a domain's queues and loops) once this replica leads."""
        self.leadership.when_leading(start)

    def is_ready(self) -> bool:
        """A leader once it judged the hosts; a standby once it has seen the leader Lease
        (it serves the webhook, so it belongs behind the Service too)."""
        if self.leadership.leading:
            return self.ready
        return self.leadership.elector.seen

    async def _start_leading(self) -> None:
        self.hosts.start()
        self.tasks.append(asyncio.create_task(self.moves.run(), name="migration-watch"))
        # A task, not awaited: the election renews the lease only once every start is done.
        self.tasks.append(asyncio.create_task(self._place(), name="instance-watch"))
        self.tasks.append(asyncio.create_task(self._lease_checks(), name="lease-checks"))
        self.tasks.append(asyncio.create_task(self._audits(), name="audits"))

    async def _place(self) -> None:
        """Follow every Instance into the instance work queue; work on it once the hosts
        are known (the Instance list is read meanwhile, not after).

        The relist catches what a restarted watch missed (a deletion during a 410's relist
        has no DELETED event), as often as the audit looks at the inventory.
        """
        hosts_in = asyncio.create_task(self._wait_for_hosts(), name="wait-for-hosts")
        self.tasks.append(hosts_in)
        watch = self.instance_watch
        while True:
            try:
                await watch.run(
                    resync=watch.relist,
                    resync_interval=self.config.audit_interval,
                    work_after=hosts_in,
                )
            except Exception:
                # kopf retried its watches for ever; so do we (the work queue restarts too).
                log.exception("the Instance watch failed; starting it again in 1 s")
                await asyncio.sleep(1)

    async def _wait_for_hosts(self) -> None:
        """Like kube-scheduler's wait for its caches: place nothing before the Hosts and their
        Leases are listed and judged (in one pass), so the first decisions see the whole
        cluster instead of refusing (a wasted status write and Event each). Bounded: a list
        that is slow to come only delays the start; a failure never stops placing."""
        try:  # the Instance workers start when this ends: it must end, and never raise
            async with asyncio.timeout(HOST_SYNC_TIMEOUT):
                await asyncio.gather(self.host_watches.synced(), self.catalog_watches.complete())
        except TimeoutError:
            log.warning("placing before the Host, Lease and catalog lists are in")
        except Exception:
            log.exception("waiting for the hosts and the catalog failed; placing now")
        try:
            await self.hosts.check_leases()  # those listed while standing by are judged now
        except Exception:
            log.exception("judging the hosts before placing failed; placing now")
        log.info(
            "%d hosts judged: placing from %.2f s after process start",
            len(self.hosts.judged),
            process_age(),
        )

    def _lost_leadership(self) -> None:
        # Exit at once, as kube-controller-manager does: no clean-up handler may write (it
        # would be refused anyway) and the pod restarts as a fresh candidate.
        log.error(
            "leadership lost: exiting; api writes: %s",
            json.dumps(dict(sorted(self.client.writes.items()))),
        )
        logging.shutdown()
        os._exit(1)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.instance_queue.stop()
        await self.hosts.stop()
        if self.health:
            await self.health.stop()
        await self.events.flush()
        await self.leadership.elector.release()
        log.info("api writes: %s", json.dumps(dict(sorted(self.client.writes.items()))))
        await self.client.close()
        await self.replica_client.close()
        self.engine.dispose()

    async def _audits(self) -> None:
        # The first pass comes soon after start-up: an Instance deleted while no operator
        # ran (say, killed between claiming and adding its finalizer) is never seen again,
        # so only the audit can give its claim back.
        delay = min(self.config.audit_interval, STARTUP_AUDIT_DELAY)
        while True:
            await asyncio.sleep(delay)
            delay = self.config.audit_interval
            watch = self.instance_watch
            if not await after_backlog(watch.synced, watch.queue, self.config.audit_interval):
                log.warning("auditing while the Instance work queue still has a backlog")
            if not self.leadership.elector.holds():
                continue  # paused past our lease: the election decides what happens next
            try:
                await audit(self.client, self.placer, self.catalog)
                # The pass waited for the backlog to be worked off: what a drain and the
                # audit's own pages left behind is garbage now, and goes back at once
                # rather than at the next periodic give-back.
                give_back()
                self.instances.claimed.clear()  # re-verify what we believed was claimed
                # Like kube-scheduler's periodic flush of unschedulable pods: whatever
                # woke nobody (a quota raised, a host edited by hand) is tried again.
                self.retry_pending()
            except Exception:
                log.exception("audit failed")

    async def _lease_checks(self) -> None:
        while True:
            await asyncio.sleep(self.config.lease_check_interval)
            if not self.leadership.elector.holds():
                # Resumed after a pause: our view of the heartbeats is stale, judging hosts
                # by it would call every one of them dead.
                continue
            try:
                await self.hosts.check_leases()
                await self.hosts.publish_usage()
                self.ready = True
            except Exception:
                log.exception("lease check failed")


def process_age() -> float:
    """Seconds since this process started (from /proc: imports and kopf included)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # starttime, field 22
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError):
        return float("nan")


RUNTIME: MemoSlot[Runtime] = MemoSlot("runtime")


def runtime_of(memo: kopf.Memo) -> Runtime:
    """The operator's runtime, for a handler (a retry soon if start-up has not built it)."""
    return RUNTIME.get(memo)
