"""The router of a network on its gateway host: forwarding policy, SNAT and floating IPs.

One nftables table per network (`ip kubenova-<id>`), replaced atomically on every change
(`nft -f`: the table is added, flushed by deletion and rebuilt in one transaction):

- forward: the network's bridge talks only to the external interface (never to another
  tenant's bridge on the same host); inbound only for replies or floating IPs;
- floating IPs: DNAT floating -> fixed (prerouting, and output for the host itself) and
  SNAT fixed -> floating, 1:1;
- router: masquerade the rest of the CIDR to the external interface;
- input: guests reach the host itself only for DHCP and for DNS at the gateway address,
  never tgtd (3260), the agent's metrics, the kubelet (10250) or ssh, whichever of the
  host's addresses they aim at. IPv6 is switched off on every tenant bridge (the driver's
  plug), so no link-local address offers a way around these IPv4 rules.

The external pool is routed to the network host by the upstream router (or, in tests, the
"outside" namespace); no addresses are added to the external interface.

A floating IP released from a NIC (dissociated, or the Instance gone) takes its flows with
it: the conntrack entries NATed through it are deleted once the table no longer maps it,
else an open connection would keep reaching the old guest, and the old guest keep sending
from an address the pool may already have given to another tenant.
"""

from __future__ import annotations

import contextlib
import functools
import re

from pyroute2 import Conntrack
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.nfnetlink.nfctsocket import NFCTAttrTuple

from kubenova.agents.network import names
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.spec import GatewaySpec


def ruleset(bridge: str, gw: GatewaySpec, external: str | None) -> str:
    """The nft script that (re)builds the network's table (pure; nft 1.0.6 syntax)."""
    table = names.nft_table(bridge)
    # With br_netfilter loaded, frames bridged between two ports of the network pass this
    # hook too, with the bridge as both interfaces: they stay within the tenant.
    forward = [f'iifname "{bridge}" oifname "{bridge}" accept']
    prerouting, output, postrouting = [], [], []
    if external and gw.forwards:
        forward.append(f'iifname "{bridge}" oifname "{external}" accept')
        forward.append(
            f'iifname "{external}" oifname "{bridge}" ct state established,related accept'
        )
        for mapping in gw.floating:
            forward.append(
                f'iifname "{external}" oifname "{bridge}" ip daddr {mapping.fixed_ip} accept'
            )
            prerouting.append(f"ip daddr {mapping.floating_ip} dnat to {mapping.fixed_ip}")
            output.append(f"ip daddr {mapping.floating_ip} dnat to {mapping.fixed_ip}")
            postrouting.append(
                f'ip saddr {mapping.fixed_ip} oifname "{external}" snat to {mapping.floating_ip}'
            )
        if gw.router:
            postrouting.append(f'ip saddr {gw.cidr} oifname "{external}" masquerade')
    # Counted, so isolation can be observed (nft list table) as well as enforced.
    forward += [f'iifname "{bridge}" counter drop', f'oifname "{bridge}" counter drop']
    chains = [
        _chain("input", "filter hook input priority filter", _input_rules(bridge, gw)),
        _chain("forward", "filter hook forward priority filter", forward),
        _chain("prerouting", "nat hook prerouting priority dstnat", prerouting),
        _chain("output", "nat hook output priority -100", output),
        _chain("postrouting", "nat hook postrouting priority srcnat", postrouting),
    ]
    # "add" then "delete" makes the delete safe when the table is new; all one transaction.
    return (
        f"add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n{''.join(chains)}}}\n"
    )


def _input_rules(bridge: str, gw: GatewaySpec) -> list[str]:
    """What a guest may send to the host itself (not through it): DHCP and DNS, and replies."""
    guest = f'iifname "{bridge}"'
    return [
        # Replies to what the host started (a guest cannot forge this state for a new flow).
        f"{guest} ct state established,related accept",
        # DHCP discovers go to the broadcast address, renewals to the gateway.
        f"{guest} udp dport 67 accept",
        f"{guest} ip daddr {gw.gateway} udp dport 53 accept",
        f"{guest} ip daddr {gw.gateway} tcp dport 53 accept",
        f"{guest} counter drop",
    ]


def _chain(name: str, hook: str, rules: list[str]) -> str:
    body = "".join(f"\t\t{rule}\n" for rule in rules)
    return f"\tchain {name} {{\n\t\ttype {hook}; policy accept;\n{body}\t}}\n"


_DNAT = re.compile(r"ip daddr (\S+) dnat to \S+")


def forget_flows(address: str) -> int:
    """Delete the conntrack entries NATed through `address` in the calling thread's
    network namespace (inbound to it, and outbound replies to it); how many."""
    ct = Conntrack()
    try:
        doomed = [
            *ct.dump_entries(tuple_orig=NFCTAttrTuple(daddr=address)),
            *ct.dump_entries(tuple_reply=NFCTAttrTuple(daddr=address)),
        ]
        for entry in doomed:
            with contextlib.suppress(NetlinkError):  # expired meanwhile
                ct.delete(entry)
        return len(doomed)
    finally:
        ct.close()


class Routers:
    """The nftables tables of this host's gateway networks."""

    def __init__(self, ns: Namespace, external_interface: str | None) -> None:
        self.ns = ns
        self.external = external_interface
        self._mapped: dict[str, set[str]] = {}  # bridge -> floating IPs its table maps

    def ensure(self, bridge: str, gw: GatewaySpec) -> None:
        if gw.forwards:
            # Per namespace, and never turned off again: other networks may rely on it.
            self.ns.sysctl("net.ipv4.ip_forward", "1")
        before = self._mapped.get(bridge)
        if before is None:  # first look since the agent started: what the table says
            before = self._in_table(bridge)
        self.ns.run(["nft", "-f", "-"], input=ruleset(bridge, gw, self.external))
        now = {m.floating_ip for m in gw.floating} if self.external else set()
        self._mapped[bridge] = now
        self._forget(before - now)

    def remove(self, bridge: str) -> None:
        table = names.nft_table(bridge)
        if table in self.tables():
            before = self._mapped.get(bridge)
            if before is None:
                before = self._in_table(bridge)
            self.ns.run(["nft", "delete", "table", "ip", table])
            self._forget(before)
        self._mapped.pop(bridge, None)

    def _in_table(self, bridge: str) -> set[str]:
        table = names.nft_table(bridge)
        if table not in self.tables():
            return set()
        return set(_DNAT.findall(self.ns.run(["nft", "list", "table", "ip", table])))

    def _forget(self, released: set[str]) -> None:
        for address in sorted(released):
            self.ns.on_thread(functools.partial(forget_flows, address))

    def tables(self) -> set[str]:
        """kubenova tables present in this namespace."""
        listing = self.ns.run(["nft", "list", "tables", "ip"])
        found = set()
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].startswith(names.NFT_TABLE_PREFIX):
                found.add(parts[2])
        return found
