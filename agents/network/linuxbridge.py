"""The Linux-bridge network driver, and its uplinks made of plain Linux devices.

One Linux bridge per network and host (`knb-…`, STP off, forward delay 0): guest taps
and, in tests, endpoint veths are plugged into it. What joins the bridge to the segment
on the wire is an `Uplink`, chosen by mode: flat (the trunk interface itself), vlan (an
802.1Q sub-interface here, or a tagged Open vSwitch port in `ovs`) or vxlan (a VXLAN
device with unicast FDB entries per peer, in `vxlan`). On the network's gateway host the
bridge also holds the gateway address, for DHCP and the router.

The 802.1Q uplink is the default for VLAN networks on real hosts. Kernels without the
`8021q` module (like the CI machines) refuse the sub-interface with EOPNOTSUPP: the
uplink is then unit-tested on the netlink request it sends, and the live VLAN test runs
on the Open vSwitch uplink (`ovs`).
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Protocol

from pyroute2.netlink.exceptions import NetlinkError

from kubenova.agents.network import names
from kubenova.agents.network.driver import NetworkDriver, WiredState
from kubenova.agents.network.links import EEXIST, delete_link, link_kind, lookup
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import HostNetwork, Mode
from kubenova.errors import TemporaryError, UserError

EOPNOTSUPP = 95


class Uplink(Protocol):
    """Joins a network's bridge to its segment; `remove` undoes whatever `ensure` made."""

    kind: str

    def ensure(self, ns: Namespace, net: HostNetwork, bridge_index: int) -> None: ...

    def remove(self, ns: Namespace, bridge: str) -> None: ...


class LinuxBridgeDriver(NetworkDriver):
    """The real driver (pyroute2): a Linux bridge per network, uplinks by mode."""

    def __init__(self, ns: Namespace, uplinks: dict[Mode, Uplink]) -> None:
        self.ns = ns
        self.uplinks = uplinks

    def plug(self, net: HostNetwork) -> None:
        uplink = self.uplinks.get(net.mode)
        if uplink is None:
            raise UserError(f"{net.key}: this host has no driver for {net.mode} networks")
        with self.ns.lock:
            try:
                ipr = self.ns.ipr()
                index = self._ensure_bridge(ipr, net.bridge)
                self._without_ipv6(net.bridge)
                uplink.ensure(self.ns, net, index)
                self._ensure_addresses(ipr, index, net)
            except NetlinkError as exc:
                raise TemporaryError(
                    f"{net.key}: wiring {net.bridge} failed: {exc}", reason="WiringFailed"
                ) from exc

    def unplug(self, bridge: str) -> None:
        with self.ns.lock:
            ipr = self.ns.ipr()
            for uplink in {id(u): u for u in self.uplinks.values()}.values():
                uplink.remove(self.ns, bridge)
            index = lookup(ipr, bridge)
            if index is None:
                return
            # Foreign ports (a flat trunk, a leftover tap) are let go, never deleted.
            for link in ipr.get_links():
                if link.get("IFLA_MASTER") == index:
                    ipr.link("set", index=link["index"], master=0)
            delete_link(ipr, bridge)

    def bridges(self) -> set[str]:
        with self.ns.lock:
            return {
                str(link.get("IFLA_IFNAME"))
                for link in self.ns.ipr().get_links()
                if link_kind(link) == "bridge"
                and str(link.get("IFLA_IFNAME")).startswith(names.BRIDGE_PREFIX)
            }

    def describe(self, bridge: str) -> WiredState | None:
        with self.ns.lock:
            ipr = self.ns.ipr()
            index = lookup(ipr, bridge)
            if index is None:
                return None
            ports = {}
            for link in ipr.get_links():
                if link.get("IFLA_MASTER") == index:
                    ports[str(link.get("IFLA_IFNAME"))] = link
            addresses = frozenset(
                f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}" for a in ipr.get_addr(index=index)
            )
            segment, segment_id, peers = _segment_of(ipr, bridge, ports)
            return WiredState(bridge, frozenset(ports), addresses, segment, segment_id, peers)

    def interface_addresses(self, name: str) -> frozenset[str] | None:
        with self.ns.lock:
            ipr = self.ns.ipr()
            index = lookup(ipr, name)
            if index is None:
                return None
            return frozenset(
                f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}"
                for a in ipr.get_addr(index=index)
                if not ipaddress.ip_address(str(a.get("IFA_ADDRESS"))).is_link_local
                or a["family"] == socket.AF_INET
            )

    def close(self) -> None:
        self.ns.close()

    def _without_ipv6(self, bridge: str) -> None:
        # The host's side of a tenant bridge gets no IPv6 at all: a link-local address would
        # let guests reach every host service listening on [::], on compute hosts too, and
        # the gateway's input policy (nat.py) is IPv4. -e: a kernel without IPv6 has no key.
        self.ns.run(["sysctl", "-q", "-e", "-w", f"net.ipv6.conf.{bridge}.disable_ipv6=1"])

    @staticmethod
    def _ensure_bridge(ipr: Any, name: str) -> int:
        index = lookup(ipr, name)
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="bridge", br_stp_state=0, br_forward_delay=0)
            except NetlinkError as exc:
                if exc.code != EEXIST:
                    raise
            index = lookup(ipr, name)
            assert index is not None
        ipr.link("set", index=index, state="up")
        return index

    @staticmethod
    def _ensure_addresses(ipr: Any, index: int, net: HostNetwork) -> None:
        wanted: set[tuple[str, int]] = set()
        if net.gateway is not None:
            wanted.add((str(net.gateway.gateway), net.gateway.cidr.prefixlen))
        present = {
            (str(a.get("IFA_ADDRESS")), int(a["prefixlen"]))
            for a in ipr.get_addr(index=index, family=2)
        }
        for address, prefix in present - wanted:
            ipr.addr("del", index=index, address=address, prefixlen=prefix)
        for address, prefix in wanted - present:
            ipr.addr("add", index=index, address=address, prefixlen=prefix)


def _segment_of(
    ipr: Any, bridge: str, ports: dict[str, Any]
) -> tuple[str | None, int | None, frozenset[str]]:
    vxlan, vlan = names.vxlan_device(bridge), names.vlan_device(bridge)
    if vxlan in ports:
        link = ports[vxlan]
        vni = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VXLAN_ID")
        peers = frozenset(
            str(entry.get("NDA_DST"))
            for entry in ipr.fdb("dump", ifindex=link["index"])
            if entry.get("NDA_LLADDR") == "00:00:00:00:00:00" and entry.get("NDA_DST")
        )
        return "vxlan", vni, peers
    if vlan in ports:
        vid = ports[vlan].get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VLAN_ID")
        return "vlan", vid, frozenset()
    if names.ovs_veth(bridge)[0] in ports:
        return "ovs", None, frozenset()
    foreign = [p for p in ports if not names.is_ours(p) and not p.startswith("tap")]
    return ("flat", None, frozenset()) if foreign else (None, None, frozenset())


def _trunk_index(ns: Namespace, net: HostNetwork) -> int:
    ipr = ns.ipr()
    index = lookup(ipr, net.trunk or "")
    if index is None:
        raise UserError(
            f"{net.key}: physical interface {net.trunk!r} does not exist on this host: set "
            "spec.physicalInterface or the agent's --physical-interface",
            reason="NoPhysicalInterface",
        )
    ipr.link("set", index=index, state="up")
    return index


class FlatUplink:
    """The trunk interface is a port of the bridge (one flat network per interface)."""

    kind = "flat"

    def ensure(self, ns: Namespace, net: HostNetwork, bridge_index: int) -> None:
        ipr = ns.ipr()
        index = _trunk_index(ns, net)
        (link,) = ipr.get_links(index)
        master = link.get("IFLA_MASTER")
        if master not in (None, 0, bridge_index):
            raise UserError(
                f"{net.key}: interface {net.trunk} already belongs to another bridge: a flat "
                "network needs an interface of its own",
                reason="PhysicalInterfaceInUse",
            )
        if master != bridge_index:
            ipr.link("set", index=index, master=bridge_index)

    def remove(self, ns: Namespace, bridge: str) -> None:
        return None  # the driver lets foreign ports go when it deletes the bridge


class Dot1qUplink:
    """An 802.1Q sub-interface `knv-…` (VLAN id = segment id) of the trunk, in the bridge."""

    kind = "vlan"

    def ensure(self, ns: Namespace, net: HostNetwork, bridge_index: int) -> None:
        ipr = ns.ipr()
        trunk = _trunk_index(ns, net)
        name = names.vlan_device(net.bridge)
        index = lookup(ipr, name)
        if index is not None:
            (link,) = ipr.get_links(index)
            vid = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VLAN_ID")
            if link_kind(link) != "vlan" or vid != net.segment_id or link.get("IFLA_LINK") != trunk:
                delete_link(ipr, name)
                index = None
        if index is None:
            try:
                ipr.link("add", ifname=name, kind="vlan", link=trunk, vlan_id=net.segment_id)
            except NetlinkError as exc:
                if exc.code == EOPNOTSUPP:
                    raise UserError(
                        f"{net.key}: this kernel has no 802.1Q VLAN support (module 8021q): "
                        "load it, or run the agent with --vlan-backend ovs",
                        reason="NoVlanSupport",
                    ) from exc
                if exc.code != EEXIST:
                    raise
            index = lookup(ipr, name)
            assert index is not None
        ipr.link("set", index=index, master=bridge_index, state="up")

    def remove(self, ns: Namespace, bridge: str) -> None:
        delete_link(ns.ipr(), names.vlan_device(bridge))
