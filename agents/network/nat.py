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
"""

from __future__ import annotations

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


class Routers:
    """The nftables tables of this host's gateway networks."""

    def __init__(self, ns: Namespace, external_interface: str | None) -> None:
        self.ns = ns
        self.external = external_interface

    def ensure(self, bridge: str, gw: GatewaySpec) -> None:
        if gw.forwards:
            # Per namespace, and never turned off again: other networks may rely on it.
            self.ns.sysctl("net.ipv4.ip_forward", "1")
        self.ns.run(["nft", "-f", "-"], input=ruleset(bridge, gw, self.external))

    def remove(self, bridge: str) -> None:
        table = names.nft_table(bridge)
        if table in self.tables():
            self.ns.run(["nft", "delete", "table", "ip", table])

    def tables(self) -> set[str]:
        """kubenova tables present in this namespace."""
        listing = self.ns.run(["nft", "list", "tables", "ip"])
        found = set()
        for line in listing.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].startswith(names.NFT_TABLE_PREFIX):
                found.add(parts[2])
        return found
