"""The gateway's NAT table and conntrack, for real, in a network namespace: a released
floating IP's flows are deleted, also by an agent restarted since it mapped the address
(it reads the mappings back from the table)."""

from __future__ import annotations

import ipaddress
import socket
import uuid

import pytest
from pyroute2 import Conntrack
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from kubenova.agents.network import names, nat
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import FloatingMapping, GatewaySpec
from tests.fixtures.netns import NetnsLab

pytestmark = pytest.mark.netns

OUTSIDE = "203.0.113.1"
MAPPINGS = {"198.51.100.9": "10.9.0.3", "198.51.100.10": "10.9.0.4"}


def a_gateway(*floating: str) -> GatewaySpec:
    return GatewaySpec(
        cidr=ipaddress.IPv4Network("10.9.0.0/24"),
        gateway=ipaddress.IPv4Address("10.9.0.1"),
        floating=tuple(FloatingMapping(f, MAPPINGS[f]) for f in floating),
    )


def tcp(saddr: str, daddr: str, sport: int, dport: int) -> NFCTAttrTuple:
    return NFCTAttrTuple(
        saddr=saddr, daddr=daddr, proto=socket.IPPROTO_TCP, sport=sport, dport=dport
    )


def open_flows() -> None:
    """Per floating IP: one inbound flow DNATed to the guest, one outbound SNATed from it."""
    ct = Conntrack()
    try:
        for n, (floating, fixed) in enumerate(MAPPINGS.items()):
            inbound = (tcp(OUTSIDE, floating, 40000 + n, 22), tcp(fixed, OUTSIDE, 22, 40000 + n))
            outbound = (tcp(fixed, OUTSIDE, 50000 + n, 443), tcp(OUTSIDE, floating, 443, 50000 + n))
            for orig, reply in (inbound, outbound):
                ct.entry("add", tuple_orig=orig, tuple_reply=reply, timeout=120)
    finally:
        ct.close()


def flows_through() -> dict[str, int]:
    """Floating IP -> conntrack entries NATed through it."""
    ct = Conntrack()
    try:
        return {
            floating: len(list(ct.dump_entries(tuple_orig=NFCTAttrTuple(daddr=floating))))
            + len(list(ct.dump_entries(tuple_reply=NFCTAttrTuple(daddr=floating))))
            for floating in MAPPINGS
        }
    finally:
        ct.close()


def test_released_floating_ips_lose_their_flows_across_an_agent_restart(
    netns_lab: NetnsLab,
) -> None:
    ns = Namespace(netns_lab.add_host("gw", "192.168.71.3"))
    bridge = f"knb-{uuid.uuid4().hex[:8]}"
    try:
        nat.Routers(ns, "ext0").ensure(bridge, a_gateway(*MAPPINGS))
        ns.on_thread(open_flows)
        assert ns.on_thread(flows_through) == {"198.51.100.9": 2, "198.51.100.10": 2}
        # the agent restarted (a fresh Routers): .9 released, read back from the table
        restarted = nat.Routers(ns, "ext0")
        restarted.ensure(bridge, a_gateway("198.51.100.10"))
        assert ns.on_thread(flows_through) == {"198.51.100.9": 0, "198.51.100.10": 2}
        # restarted again, the network gone with its table: the rest goes too
        nat.Routers(ns, "ext0").remove(bridge)
        assert ns.on_thread(flows_through) == {"198.51.100.9": 0, "198.51.100.10": 0}
        assert names.nft_table(bridge) not in restarted.tables()
    finally:
        ns.close()
