"""The 802.1Q uplink, checked on the netlink requests it sends (this kernel has no 8021q).

A recording IPRoute stands in for the socket; each recorded `link()` call is turned into
the very ifinfmsg pyroute2 would put on the wire (its own request processor), encoded,
decoded again, and read attribute by attribute.
"""

from __future__ import annotations

from typing import Any

import pytest
from pyroute2.iproute.linux import get_arguments_processor
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from kubenova.agents.network.linuxbridge import Dot1qUplink, LinuxBridgeDriver
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import HostNetwork, Mode
from kubenova.errors import UserError

TRUNK, BRIDGE_INDEX, TRUNK_INDEX = "eno1", 7, 2


class FakeLink(dict[str, Any]):
    def get_nested(self, *path: str) -> Any:
        node: Any = self
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        return node


class RecordingIPRoute:
    """Answers lookups from a small link table and records every request."""

    def __init__(self, refuse_vlan: bool = False) -> None:
        self.links: dict[str, int] = {TRUNK: TRUNK_INDEX}
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.refuse_vlan = refuse_vlan

    def link_lookup(self, ifname: str) -> list[int]:
        return [self.links[ifname]] if ifname in self.links else []

    def link(self, command: str, **kwargs: Any) -> list[Any]:
        self.requests.append((command, kwargs))
        if command == "add":
            if kwargs.get("kind") == "vlan" and self.refuse_vlan:
                raise NetlinkError(95, "Operation not supported")
            self.links[kwargs["ifname"]] = 100 + len(self.links)
        return []

    def get_links(self, *indexes: int) -> list[FakeLink]:
        return [FakeLink(index=i) for i in indexes]

    def get_addr(self, **_: Any) -> list[Any]:
        return []


def on_the_wire(command: str, kwargs: dict[str, Any]) -> ifinfmsg:
    """The request as pyroute2 encodes it, decoded back from bytes."""
    processed = dict(get_arguments_processor("link", command, dict(kwargs)))
    message = ifinfmsg()
    for key, value in processed.items():
        if key in ("index", "change", "flags", "family"):
            message[key] = value
            continue
        nla = message.name2nla(key)
        if value is not None and message.valid_nla(nla):
            message["attrs"].append([nla, value])
    message.encode()
    decoded = ifinfmsg(message.data)
    decoded.decode()
    return decoded


def plug(ipr: RecordingIPRoute, vid: int = 100) -> None:
    ns = Namespace()
    ns._ipr = ipr
    driver = LinuxBridgeDriver(ns, {Mode.VLAN: Dot1qUplink()})
    ipr.links["knb-0000beef"] = BRIDGE_INDEX
    driver.plug(HostNetwork("t/v", "knb-0000beef", Mode.VLAN, vid, trunk=TRUNK))


def test_the_sub_interface_is_an_8021q_link_on_the_trunk_with_the_segment_id() -> None:
    ipr = RecordingIPRoute()
    plug(ipr, vid=123)
    adds = [kw for command, kw in ipr.requests if command == "add" and kw.get("kind") == "vlan"]
    assert len(adds) == 1
    message = on_the_wire("add", adds[0])
    assert message.get("IFLA_IFNAME") == "knv-0000beef"
    assert message.get("IFLA_LINK") == TRUNK_INDEX
    assert message.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") == "vlan"
    assert message.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA", "IFLA_VLAN_ID") == 123


def test_the_sub_interface_is_enslaved_to_the_bridge_and_brought_up() -> None:
    ipr = RecordingIPRoute()
    plug(ipr)
    vlan_index = ipr.links["knv-0000beef"]
    sets = [kw for command, kw in ipr.requests if command == "set" and kw["index"] == vlan_index]
    message = on_the_wire("set", sets[-1])
    assert message["index"] == vlan_index
    assert message.get("IFLA_MASTER") == BRIDGE_INDEX
    assert message["flags"] & 1  # IFF_UP
    trunk_up = [
        kw for command, kw in ipr.requests if command == "set" and kw["index"] == TRUNK_INDEX
    ]
    assert trunk_up, "the trunk itself must be up"


def test_a_kernel_without_8021q_is_told_apart_from_a_failure() -> None:
    with pytest.raises(UserError, match=r"no 802\.1Q VLAN support") as refused:
        plug(RecordingIPRoute(refuse_vlan=True))
    assert refused.value.reason == "NoVlanSupport"


def test_a_missing_trunk_is_the_users_to_fix() -> None:
    ipr = RecordingIPRoute()
    del ipr.links[TRUNK]
    with pytest.raises(UserError, match="physical interface 'eno1' does not exist"):
        plug(ipr)
