"""Which network host runs a Network's DHCP server, router and floating IPs.

A network host is a Ready Host whose spec.services has `network`. Each Network keeps its
gateway host while that host stays in the inventory with the network service (a host
that is only NotReady keeps it: moving DHCP and NAT is disruptive); a new choice takes the
host serving the fewest networks, skipping hosts that already serve an overlapping CIDR
(one gateway address per subnet in a host's routing table).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, select, update

from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.hosts import read_hosts
from kubenova.operator.inventory.models import NetworkRow
from kubenova.operator.networks.records import NetworkRecord

NETWORK_SERVICE = "network"


@dataclass(frozen=True)
class Candidate:
    name: str
    ready: bool
    cidrs: tuple[ipaddress.IPv4Network, ...]  # networks it serves already


def choose(
    network: NetworkRecord, current: str | None, candidates: Sequence[Candidate]
) -> str | None:
    """Pure choice: keep `current` if still a candidate, else the least loaded fitting one."""
    by_name = {c.name: c for c in candidates}
    if current is not None and current in by_name:
        return current
    fitting = [
        c
        for c in candidates
        if c.ready and not any(cidr.overlaps(network.cidr) for cidr in c.cidrs)
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda c: (len(c.cidrs), c.name)).name


def assign(engine: Engine, network: NetworkRecord) -> str | None:
    """The network's gateway host, choosing (and recording) one if needed; None if none fits."""
    with write_transaction(engine) as connection:
        current = connection.execute(
            select(NetworkRow.gateway_host).where(NetworkRow.uid == network.uid)
        ).scalar_one_or_none()
        served: dict[str, list[ipaddress.IPv4Network]] = {}
        rows = connection.execute(
            select(NetworkRow.gateway_host, NetworkRow.cidr).where(
                NetworkRow.uid != network.uid, NetworkRow.gateway_host.is_not(None)
            )
        )
        for host, cidr in rows:
            served.setdefault(str(host), []).append(ipaddress.IPv4Network(cidr))
        candidates = [
            Candidate(s.record.name, s.record.ready, tuple(served.get(s.record.name, ())))
            for s in read_hosts(connection)
            if NETWORK_SERVICE in s.record.services
        ]
        chosen = choose(network, current, candidates)
        if chosen != current:
            connection.execute(
                update(NetworkRow).where(NetworkRow.uid == network.uid).values(gateway_host=chosen)
            )
        return chosen
