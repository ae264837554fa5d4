"""The agent's network service: this host's share of every Network it must carry.

Input: a watch of Networks labelled `wired.kubenova.io/<this host>` (the operator sets the
label on the hosts that run an Instance on the network, and on its gateway host). Each
event marks a keyed work queue whose handler is the `NetworkReconciler` (reconciler.py);
after the first full list the reconciler sweeps what no Network wants here any more. A
periodic resync converges every Network again: what changed on the host behind the
agent's back (a dnsmasq that died, a bridge removed by hand) sends no watch event.
"""

from __future__ import annotations

import asyncio
import logging

from kubenova.agents.network.dhcp import DhcpServers
from kubenova.agents.network.driver import NetworkDriver
from kubenova.agents.network.nat import Routers
from kubenova.agents.network.reconciler import (
    NETWORKS,
    NetworkReconciler,
    NetworkServiceSettings,
)
from kubenova.kube import KubeClient
from kubenova.kube.events import EventRecorder
from kubenova.kube.watch import ListWatch
from kubenova.wellknown import AGENT_MANAGER, wired_label

log = logging.getLogger(__name__)


class NetworkService:
    """Runs one host's network reconciler; `await run()` until cancelled."""

    def __init__(
        self,
        client: KubeClient,
        driver: NetworkDriver,
        dhcp: DhcpServers,
        routers: Routers,
        settings: NetworkServiceSettings,
    ) -> None:
        self.settings = settings
        self.events = EventRecorder(client, AGENT_MANAGER, enabled=settings.events)
        self.reconciler = NetworkReconciler(
            client,
            driver,
            dhcp,
            routers,
            settings,
            events=self.events,
            requeue=lambda key: self.watch.queue.put(key, None),
        )
        self.watch = ListWatch(
            client,
            NETWORKS,
            self.reconciler,
            label_selector=wired_label(settings.host),
            workers=settings.workers,
            name=f"networks@{settings.host}",
        )

    @property
    def synced(self) -> asyncio.Event:
        """Set once the first full list is queued and what no Network wants is swept."""
        return self.watch.synced

    async def resync(self) -> None:
        """List again (catching up with anything the watch missed) and reconcile all."""
        await self.watch.relist()
        self.watch.mark_all()

    async def run(self) -> None:
        try:
            await self.watch.run(
                self.reconciler.synced,
                resync=self.resync,
                resync_interval=self.settings.resync_interval,
            )
        finally:
            await self.events.flush()
            await self.reconciler.close()
