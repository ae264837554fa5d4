"""VLAN uplink on Open vSwitch: the network's Linux bridge joins OVS as a tagged access port.

Per trunk interface one OVS bridge (`knovs-…`, userspace datapath `netdev` when asked,
which runs where the kernel datapath cannot) holds the trunk as a port; per network a veth
pair joins the Linux bridge (`knp-…`) to OVS (`kno-…`, `tag=<segment id>`). Guests and
DHCP stay on the Linux bridge, so every mode looks the same above the uplink. Driven with
`ovs-vsctl` (its OVSDB client): no Python OVSDB binding is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyroute2.netlink.exceptions import NetlinkError

from kubenova.agents.network import names
from kubenova.agents.network.links import EEXIST, delete_link, lookup
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import HostNetwork
from kubenova.errors import TemporaryError, UserError


@dataclass(frozen=True)
class OvsSettings:
    db: str | None = None  # OVSDB socket, e.g. unix:/run/openvswitch/db.sock; None: default
    datapath_type: str = "system"  # "netdev": the userspace datapath
    # Userspace datapaths read veths through AF_PACKET: checksum offload would leave
    # TCP segments with bad checksums, so TX offload is turned off on our veths.
    disable_tx_offload: bool = False


class OvsUplink:
    kind = "vlan"

    def __init__(self, settings: OvsSettings) -> None:
        self.settings = settings

    def vsctl(self, ns: Namespace, *args: str) -> str:
        db = [f"--db={self.settings.db}"] if self.settings.db else []
        return ns.run(["ovs-vsctl", "--timeout=10", *db, *args])

    def ensure(self, ns: Namespace, net: HostNetwork, bridge_index: int) -> None:
        if not net.trunk:
            raise UserError(f"{net.key}: a vlan network needs a physical interface")
        ipr = ns.ipr()
        if lookup(ipr, net.trunk) is None:
            raise UserError(
                f"{net.key}: physical interface {net.trunk!r} does not exist on this host",
                reason="NoPhysicalInterface",
            )
        switch = names.ovs_bridge(net.trunk)
        near, far = names.ovs_veth(net.bridge)
        self.vsctl(
            ns,
            "--may-exist", "add-br", switch,
            "--", "set", "bridge", switch, f"datapath_type={self.settings.datapath_type}",
            "--", "--may-exist", "add-port", switch, net.trunk,
        )  # fmt: skip
        self._ensure_veth(ns, near, far)
        ipr.link("set", index=lookup(ipr, near), master=bridge_index, state="up")
        ipr.link("set", index=lookup(ipr, far), state="up")
        ipr.link("set", index=lookup(ipr, net.trunk), state="up")
        self.vsctl(
            ns,
            "--may-exist", "add-port", switch, far,
            "--", "set", "port", far, f"tag={net.segment_id}", "vlan_mode=access",
        )  # fmt: skip

    def _ensure_veth(self, ns: Namespace, near: str, far: str) -> None:
        ipr = ns.ipr()
        if lookup(ipr, near) is not None and lookup(ipr, far) is not None:
            return
        delete_link(ipr, near)
        try:
            ipr.link("add", ifname=near, kind="veth", peer=far)
        except NetlinkError as exc:
            if exc.code != EEXIST:
                raise
        if self.settings.disable_tx_offload:
            for name in (near, far):
                ns.run(["ethtool", "-K", name, "tx", "off"])

    def remove(self, ns: Namespace, bridge: str) -> None:
        near, far = names.ovs_veth(bridge)
        if lookup(ns.ipr(), near) is None and lookup(ns.ipr(), far) is None:
            return
        switch = self._switch_of(ns, far)
        self.vsctl(ns, "--if-exists", "del-port", far)
        delete_link(ns.ipr(), near)
        if switch and not self._tenant_ports(ns, switch):
            self.vsctl(ns, "--if-exists", "del-br", switch)

    def _switch_of(self, ns: Namespace, port: str) -> str | None:
        try:
            return self.vsctl(ns, "port-to-br", port).strip() or None
        except TemporaryError:
            return None

    def _tenant_ports(self, ns: Namespace, switch: str) -> Sequence[str]:
        ports = self.vsctl(ns, "list-ports", switch).split()
        return [p for p in ports if p.startswith(names.OVS_SWITCH_SIDE)]
