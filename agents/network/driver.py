"""The network driver contract: what the network service needs from a host.

The real driver is `linuxbridge.LinuxBridgeDriver` (a Linux bridge per network, joined to
its segment by an uplink: `linuxbridge`, `ovs`, `vxlan`); `fake.FakeNetworkDriver` passes
the same contract tests in memory.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from kubenova.agents.network.spec import HostNetwork


@dataclass(frozen=True)
class WiredState:
    """What a bridge looks like on the host, as far as the contract cares."""

    bridge: str
    ports: frozenset[str]
    addresses: frozenset[str]  # "ip/prefix"
    segment: str | None  # kind of the uplink device: "vxlan", "vlan", "ovs", "flat"
    segment_id: int | None
    peers: frozenset[str]  # vxlan FDB destinations


class NetworkDriver(abc.ABC):
    """What the network service needs from a host. Every method is idempotent."""

    @abc.abstractmethod
    def plug(self, net: HostNetwork) -> None:
        """Make the bridge, its uplink and (gateway host) its address exist as `net` says."""

    @abc.abstractmethod
    def unplug(self, bridge: str) -> None:
        """Remove the bridge and every device made for it; nothing if absent."""

    @abc.abstractmethod
    def bridges(self) -> set[str]:
        """The kubenova bridges present on this host."""

    @abc.abstractmethod
    def describe(self, bridge: str) -> WiredState | None:
        """The bridge as it is, or None."""

    @abc.abstractmethod
    def interface_addresses(self, name: str) -> frozenset[str] | None:
        """The addresses ("ip/prefix") of host interface `name`, or None when it is absent.

        IPv6 link-local addresses are left out: every interface that is up has one.
        """

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """Release handles."""
