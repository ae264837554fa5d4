"""An in-memory network driver for unit and scale tests: same contract, no kernel."""

from __future__ import annotations

import threading

from kubenova.agents.network import names
from kubenova.agents.network.driver import NetworkDriver, WiredState
from kubenova.agents.network.spec import HostNetwork, Mode
from kubenova.errors import UserError


class FakeNetworkDriver(NetworkDriver):
    """Keeps a table of bridges as the Linux-bridge driver would leave them."""

    def __init__(
        self,
        interfaces: frozenset[str] = frozenset({"trunk0"}),
        addresses: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self.interfaces = interfaces  # the host's own interfaces (trunks)
        self.addresses = addresses or {}  # interface -> "ip/prefix" it carries
        self._bridges: dict[str, WiredState] = {}
        self._lock = threading.Lock()
        self.calls = 0

    def plug(self, net: HostNetwork) -> None:
        with self._lock:
            self.calls += 1
            if net.mode in (Mode.FLAT, Mode.VLAN) and net.trunk not in self.interfaces:
                raise UserError(
                    f"{net.key}: physical interface {net.trunk!r} does not exist on this host",
                    reason="NoPhysicalInterface",
                )
            if net.mode == Mode.FLAT:
                for bridge, state in self._bridges.items():
                    if bridge != net.bridge and net.trunk in state.ports:
                        raise UserError(
                            f"{net.key}: interface {net.trunk} already belongs to another bridge",
                            reason="PhysicalInterfaceInUse",
                        )
            port, segment = {
                Mode.FLAT: (net.trunk or "", "flat"),
                Mode.VLAN: (names.vlan_device(net.bridge), "vlan"),
                Mode.VXLAN: (names.vxlan_device(net.bridge), "vxlan"),
            }[net.mode]
            addresses = (
                {f"{net.gateway.gateway}/{net.gateway.cidr.prefixlen}"} if net.gateway else set()
            )
            previous = self._bridges.get(net.bridge)
            foreign = {p for p in previous.ports if p.startswith("tap")} if previous else set()
            self._bridges[net.bridge] = WiredState(
                bridge=net.bridge,
                ports=frozenset({port} | foreign),
                addresses=frozenset(addresses),
                segment=segment,
                segment_id=net.segment_id,
                peers=frozenset(net.peers),
            )

    def unplug(self, bridge: str) -> None:
        with self._lock:
            self._bridges.pop(bridge, None)

    def bridges(self) -> set[str]:
        with self._lock:
            return set(self._bridges)

    def describe(self, bridge: str) -> WiredState | None:
        with self._lock:
            return self._bridges.get(bridge)

    def interface_addresses(self, name: str) -> frozenset[str] | None:
        if name not in self.interfaces:
            return None
        return self.addresses.get(name, frozenset())
