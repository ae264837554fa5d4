"""The Host and Lease watches: one list+watch each, into the host monitor and the listeners.

Informers, not kopf's per-object machinery (as for Instances): at start-up 1,000 Hosts and
their 1,000 Leases are two lists, judged in one pass with one inventory transaction, so
Instances are placed as soon as the lists are in instead of after every host's events
went through kopf's handlers. After the lists, each watch event is one work-queue
reconcile: the monitor's `host_event` / `lease_event`, and for Hosts the other domains'
listeners (networks, volumes, drains), which kopf used to call with their own handlers.

Both watches run on every replica from start-up, leading or not: a standby times the
heartbeats all along, so a new leader judges hosts by what it saw (the monitor acts only
once it is started). The Lease watch lists the system namespace only; what is not a host
Lease there (the leader election's) is ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kubenova.kube import KubeClient
from kubenova.kube.meta import Body, key_of, slim
from kubenova.kube.paths import LEASES
from kubenova.kube.watch import ListWatch, OnSynced
from kubenova.operator.hosts.monitor import HostMonitor
from kubenova.operator.hosts.status import HOSTS
from kubenova.wellknown import host_of_lease

log = logging.getLogger(__name__)

# Told of every Host event: its name and newest body (None once deleted). Called from the
# event loop; must not block.
HostListener = Callable[[str, Body | None], None]

# Seconds between relists (deletions a watch restart missed); the periodic lease check
# re-judges every host meanwhile.
RESYNC_INTERVAL = 300.0
WORKERS = 4


class HostWatches:
    """Hosts and their Leases, followed for `monitor`; `await run()` until cancelled."""

    def __init__(self, client: KubeClient, monitor: HostMonitor, namespace: str) -> None:
        self.monitor = monitor
        self._listeners: list[HostListener] = []
        # Bodies the monitor took with their list: their queued reconcile need not judge
        # them again (the identical dict object, so any later event is judged).
        self._listed: dict[str, Body] = {}
        self.hosts = ListWatch(
            client,
            HOSTS,
            self._host,
            workers=WORKERS,
            name="hosts",
            component="operator",
            transform=slim,
        )
        self.leases = ListWatch(
            client,
            LEASES,
            self._lease,
            namespace=namespace,
            workers=WORKERS,
            name="host-leases",
            component="operator",
        )

    def on_host(self, listener: HostListener) -> None:
        """Call `listener` on every Host event, starting with the Hosts already known."""
        self._listeners.append(listener)
        for name in self.hosts.known():
            if (body := self.hosts.queue.body(name)) is not None:
                listener(name, body)

    async def synced(self) -> None:
        """Wait until both lists are in and the monitor has them."""
        await self.leases.synced.wait()
        await self.hosts.synced.wait()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._follow(self.leases, self._leases_listed))
            tasks.create_task(self._follow(self.hosts, self._hosts_listed))

    @staticmethod
    async def _follow(watch: ListWatch, on_synced: OnSynced) -> None:
        while True:
            try:
                await watch.run(on_synced, resync=watch.relist, resync_interval=RESYNC_INTERVAL)
            except Exception:
                # kopf retried its watches for ever; so do we.
                log.exception("the %s watch failed; starting it again in 1 s", watch.name)
                await asyncio.sleep(1)

    async def _leases_listed(self, bodies: list[Body]) -> None:
        self._listed.update((key_of(body), body) for body in bodies)
        self.monitor.leases_listed(bodies)

    async def _hosts_listed(self, bodies: list[Body]) -> None:
        # Noted before the first wait: the queue's workers, which run from then on, leave
        # these bodies to the one pass below.
        self._listed.update((key_of(body), body) for body in bodies)
        # Hosts judged before their heartbeats are in would all be NotReady for a moment.
        await self.leases.synced.wait()
        await self.monitor.hosts_listed(bodies)

    def _taken_with_list(self, key: str, body: Body | None) -> bool:
        listed = self._listed.pop(key, None)
        return body is not None and listed is body

    async def _host(self, name: str, body: Body | None) -> float | None:
        # The monitor first, as kopf ran its handler first: listeners read its view.
        if self._taken_with_list(name, body):
            await self.hosts.synced.wait()  # judged with its list, once the Leases are in
        else:
            await self.monitor.host_event(body, name)
        for listener in self._listeners:
            listener(name, body)
        return None

    async def _lease(self, key: str, body: Body | None) -> float | None:
        taken = self._taken_with_list(key, body)
        host = host_of_lease(key.rpartition("/")[2])
        if host is not None and not taken:
            await self.monitor.lease_event(host, body)
        return None
