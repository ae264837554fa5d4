"""VXLAN uplink: a VXLAN device per network (VNI = segment id) with unicast FDB entries.

Learning is off and every peer host carrying the network gets an all-zero FDB entry
(`00:00:00:00:00:00 dst <peer>`), so broadcast and unknown unicast are replicated to
exactly those hosts: no multicast in the underlay. Peers come from the Network's
`status.tunnelEndpoints` (the hosts' `status.underlayIP`).
"""

from __future__ import annotations

from pyroute2.netlink.exceptions import NetlinkError

from kubenova.agents.network import names
from kubenova.agents.network.links import EEXIST, delete_link, link_kind, lookup
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import HostNetwork
from kubenova.errors import TemporaryError

VXLAN_PORT = 4789  # IANA
FLOOD = "00:00:00:00:00:00"


class VxlanUplink:
    kind = "vxlan"

    def ensure(self, ns: Namespace, net: HostNetwork, bridge_index: int) -> None:
        ipr = ns.ipr()
        name = names.vxlan_device(net.bridge)
        index = lookup(ipr, name)
        if index is not None:
            (link,) = ipr.get_links(index)
            data = ("IFLA_LINKINFO", "IFLA_INFO_DATA")
            if (
                link_kind(link) != "vxlan"
                or link.get_nested(*data, "IFLA_VXLAN_ID") != net.segment_id
                or link.get_nested(*data, "IFLA_VXLAN_LOCAL") != net.local_ip
            ):
                delete_link(ipr, name)
                index = None
        if index is None:
            try:
                ipr.link(
                    "add",
                    ifname=name,
                    kind="vxlan",
                    vxlan_id=net.segment_id,
                    vxlan_local=net.local_ip,
                    vxlan_port=VXLAN_PORT,
                    vxlan_learning=0,
                )
            except NetlinkError as exc:
                if exc.code != EEXIST:
                    raise
            index = lookup(ipr, name)
            if index is None:
                # EEXIST for another name: the kernel allows one device per (VNI, local
                # address, port), and a device not ours holds this one.
                raise TemporaryError(
                    f"{net.key}: cannot add {name}: another VXLAN device on this host has "
                    f"VNI {net.segment_id} on {net.local_ip}",
                    reason="WiringFailed",
                )
        ipr.link("set", index=index, master=bridge_index, state="up")
        self._sync_peers(ns, index, set(net.peers))

    @staticmethod
    def _sync_peers(ns: Namespace, index: int, wanted: set[str]) -> None:
        ipr = ns.ipr()
        present = {
            str(entry.get("NDA_DST"))
            for entry in ipr.fdb("dump", ifindex=index)
            if entry.get("NDA_LLADDR") == FLOOD and entry.get("NDA_DST")
        }
        for peer in present - wanted:
            ipr.fdb("del", ifindex=index, lladdr=FLOOD, dst=peer)
        for peer in wanted - present:
            ipr.fdb("append", ifindex=index, lladdr=FLOOD, dst=peer)

    def remove(self, ns: Namespace, bridge: str) -> None:
        delete_link(ns.ipr(), names.vxlan_device(bridge))
