"""Uplinks made of plain Linux devices: flat (the trunk itself) and 802.1Q sub-interfaces.

The 802.1Q uplink is the default for VLAN networks on real hosts. Kernels without the
`8021q` module (like the CI machines) refuse the sub-interface with EOPNOTSUPP: the
uplink is then unit-tested on the netlink request it sends, and the live VLAN test runs
on the Open vSwitch uplink (`ovs`).
"""

from __future__ import annotations

from pyroute2.netlink.exceptions import NetlinkError

from kubenova.agents.network import names
from kubenova.agents.network.driver import EEXIST, delete_link, link_kind, lookup
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import HostNetwork
from kubenova.errors import UserError

EOPNOTSUPP = 95


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
