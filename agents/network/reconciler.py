"""The network reconciler: converges this host's share of one Network at a time.

`NetworkService` (service.py) queues Networks labelled `wired.kubenova.io/<this host>`;
for each key the reconciler computes the network's desired state here
(`spec.host_network`) from the Network's status and converges: bridge + uplink through
the driver; on the gateway host also the gateway address, dnsmasq and the nftables table.
A Network that is deleted or no longer labelled for this host is torn down once a fresh
read confirms the operator no longer wires it here, and after the first full list
anything of ours that no Network wants (bridges, dnsmasq, tables) is swept, so a restart
while a network went away leaves nothing behind; a bridge whose Network only lost its
label meanwhile is read again and kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from kubenova.agents.assignment import Whereabouts, recheck
from kubenova.agents.network.dhcp import DhcpServers
from kubenova.agents.network.driver import NetworkDriver
from kubenova.agents.network.nat import Routers
from kubenova.agents.network.provider import ProviderInterfaces
from kubenova.agents.network.spec import HostNetwork, host_network
from kubenova.api.v1alpha1 import Network
from kubenova.errors import ApiError, KubenovaError, TemporaryError, UserError
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.events import EventRecorder
from kubenova.kube.meta import Body, deleting, key_of, uid_of
from kubenova.wellknown import wired_label

log = logging.getLogger(__name__)

NETWORKS = kubenova_kind(Network)
T = TypeVar("T")
RETRY_USER_ERROR = 30.0
# A Network kept after losing only its label gets no more watch events: read it again this
# often, until its label is back or the operator no longer wires it here.
RECHECK_UNLABELLED = 5.0


@dataclass(frozen=True)
class NetworkServiceSettings:
    host: str
    underlay_ip: str | None = None
    physical_interface: str | None = None
    provider_interfaces: ProviderInterfaces = field(default_factory=ProviderInterfaces)
    external_interface: str | None = None
    workers: int = 2
    events: bool = True
    teardown_on_exit: bool = False
    resync_interval: float = 60.0


class NetworkReconciler:
    """`await reconciler(key, body)` converges one Network on this host; a WorkQueue handler.

    Every host change runs on one thread (`on_host`); `requeue(key)` brings a key back to
    the queue (a Network kept though it left the watch is read again until resolved).
    """

    def __init__(
        self,
        client: KubeClient,
        driver: NetworkDriver,
        dhcp: DhcpServers,
        routers: Routers,
        settings: NetworkServiceSettings,
        *,
        events: EventRecorder,
        requeue: Callable[[str], None],
    ) -> None:
        self.client = client
        self.driver = driver
        self.dhcp = dhcp
        self.routers = routers
        self.settings = settings
        self.selector = wired_label(settings.host)
        self.events = events
        self.requeue = requeue
        self.wired: dict[str, HostNetwork] = {}  # key -> what we last converged
        self.uids: dict[str, str] = {}  # key -> uid of the Network last seen under it
        self.unlabelled: set[str] = set()  # kept without their label: rechecked until resolved
        # pyroute2's IPRoute belongs to the thread that made it (it runs its own event loop
        # there): every host change goes through this one thread.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"network-{settings.host}")

    async def close(self) -> None:
        """Release the host: tear everything down first if the settings say so."""
        if self.settings.teardown_on_exit:
            removed = await asyncio.shield(self.on_host(self._sweep, set()))
            log.info(
                "network service of %s stopped; removed %s",
                self.settings.host,
                ", ".join(removed) or "nothing",
            )
        await self.on_host(self.driver.close)
        self._thread.shutdown(wait=False)

    # -- reconcile ---------------------------------------------------------------------------

    async def __call__(self, key: str, body: Body | None) -> float | None:
        if body is None:  # deleted, or no longer labelled for this host
            if await self._still_wired_here(key):
                # Only the label went: the status still wants it here. No watch event will
                # say when that changes, so the queue brings the key back.
                return RECHECK_UNLABELLED
            self.uids.pop(key, None)
            self.unlabelled.discard(key)
            await self._tear_down(key)
            return None
        self.uids[key] = uid_of(body)
        self.unlabelled.discard(key)
        try:
            wanted = host_network(
                body,
                self.settings.host,
                underlay_ip=self.settings.underlay_ip,
                physical_interface=self.settings.physical_interface,
            )
        except ValueError as exc:
            return self._failed(body, UserError(str(exc), reason="CannotWire"))
        if wanted is None:
            return None  # not allocated yet: the operator's status write marks us again
        previous = self.wired.get(key)
        if previous is not None and previous.bridge != wanted.bridge:
            await self._tear_down(key)
        try:
            await self.on_host(self._converge, wanted)
        except KubenovaError as exc:
            return self._failed(body, exc)
        if previous != wanted:
            log.info("network %s wired on %s as %s", key, self.settings.host, wanted.bridge)
        self.wired[key] = wanted
        return None

    async def _still_wired_here(self, key: str) -> bool:
        """Read a Network that left the watch again: does the operator still wire it here?

        The wired label is only a pointer; the decision is the operator's status.hosts. A
        bridge goes when the Network is gone, being deleted, or no longer lists this host.
        """
        uid = self.uids.get(key)
        if uid is None or key not in self.wired:
            return False
        where = await recheck(
            self.client, NETWORKS, key, uid, self.settings.host, decided=wired_hosts
        )
        if where.whereabouts is not Whereabouts.STILL_HERE:
            return False
        if key not in self.unlabelled:
            log.warning(
                "network %s lost its %s label but its status still wires it here: it stays",
                key,
                self.selector,
            )
            self.unlabelled.add(key)
        return True

    async def on_host(self, work: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)

    def _converge(self, net: HostNetwork) -> None:
        self.settings.provider_interfaces.check(net, self.driver.interface_addresses)
        self.driver.plug(net)
        if net.gateway is not None:
            if net.gateway.dhcp:
                self.dhcp.ensure(net.bridge, net.gateway)
            else:
                self.dhcp.stop(net.bridge)
            self.routers.ensure(net.bridge, net.gateway)
        else:
            self.dhcp.stop(net.bridge)
            self.routers.remove(net.bridge)

    async def _tear_down(self, key: str) -> None:
        net = self.wired.pop(key, None)
        if net is None:
            return
        await self.on_host(self._remove, net.bridge)
        log.info("network %s unwired from %s (%s removed)", key, self.settings.host, net.bridge)

    def _remove(self, bridge: str) -> None:
        self.dhcp.stop(bridge)
        self.routers.remove(bridge)
        self.driver.unplug(bridge)

    def _failed(self, body: Body, exc: KubenovaError) -> float:
        key = key_of(body)
        log.warning("network %s on %s: %s: %s", key, self.settings.host, exc.reason, exc.message)
        self.events.record(body, "Warning", exc.reason, f"{self.settings.host}: {exc.message}")
        if isinstance(exc, TemporaryError):
            return exc.delay
        return RETRY_USER_ERROR

    # -- after the first list ----------------------------------------------------------------

    async def synced(self, listed: list[Body]) -> None:
        await self.sweep({key_of(item) for item in listed}, listed)

    async def sweep(self, keys: set[str], listed: list[Body]) -> list[str]:
        """Remove bridges, dnsmasq and tables of ours that no Network wires here any more.

        A bridge no listed (labelled) Network explains is not removed on that alone: only
        the wired label may have gone (e.g. while this agent was down). Its Network is read
        again, and the bridge stays while the operator's status still wires it here and
        the Network is not being deleted.
        """
        wanted = {(item.get("status") or {}).get("bridge") for item in listed}
        wanted = {b for b in wanted if b}
        unexplained = await self.on_host(self._present) - wanted
        kept = await self._still_wired_bridges(unexplained) if unexplained else set()
        removed = await self.on_host(self._sweep, wanted | kept)
        log.info(
            "networks on %s: %d labelled for this host, %d kept though unlabelled, "
            "%d removed; watching",
            self.settings.host,
            len(keys),
            len(kept),
            len(removed),
        )
        return removed

    async def _still_wired_bridges(self, bridges: set[str]) -> set[str]:
        """Those of `bridges` whose Network, read again, the operator still wires here."""
        try:
            listing = await self.client.list(NETWORKS)  # the bridge names it, not its key
        except (ApiError, OSError) as exc:
            log.warning(
                "keeping %s on %s for now: reading Networks again failed: %s",
                ", ".join(sorted(bridges)),
                self.settings.host,
                exc,
            )
            return bridges  # never destroy on a guess; the next start looks again
        kept = set()
        for item in listing.get("items", []):
            bridge = (item.get("status") or {}).get("bridge")
            if bridge in bridges and not deleting(item) and self.settings.host in wired_hosts(item):
                log.warning(
                    "network %s lost its %s label but its status still wires it here: %s stays",
                    key_of(item),
                    self.selector,
                    bridge,
                )
                kept.add(bridge)
                self._follow_unlabelled(item)
        return kept

    def _follow_unlabelled(self, body: Body) -> None:
        """Track a kept Network as if it had just left the watch: read again until resolved."""
        try:
            net = host_network(
                body,
                self.settings.host,
                underlay_ip=self.settings.underlay_ip,
                physical_interface=self.settings.physical_interface,
            )
        except ValueError:
            net = None
        if net is None or net.bridge != (body.get("status") or {}).get("bridge"):
            return  # not what this host can wire: kept untouched, looked at next start
        key = key_of(body)
        self.uids[key] = uid_of(body)
        self.wired[key] = net
        self.unlabelled.add(key)
        self.requeue(key)  # reconcile reads it again (and again) as it does any

    def _present(self) -> set[str]:
        """Bridges of ours on this host, or named by a dnsmasq or nftables table of ours."""
        present = self.driver.bridges() | self.dhcp.served()
        tables = self.routers.tables()
        return present | {f"knb-{t.split('-', 1)[1]}" for t in tables}

    def _sweep(self, wanted: set[str]) -> list[str]:
        removed = []
        for bridge in sorted(self._present() - wanted):
            log.warning("removing %s from %s: no Network wants it here", bridge, self.settings.host)
            self._remove(bridge)
            removed.append(bridge)
        return removed


def wired_hosts(body: Body) -> frozenset[str]:
    """The hosts the operator's status wires the Network on (none listed: none)."""
    return frozenset(str(h) for h in (body.get("status") or {}).get("hosts") or ())
