"""The Network's status and host labels, computed purely from what the inventory says."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubenova import conditions as cond
from kubenova.errors import UserError
from kubenova.operator.networks.ports import PortView
from kubenova.operator.networks.records import NetworkRecord
from kubenova.wellknown import WIRED_LABEL_PREFIX, wired_label

READY = "Ready"


@dataclass(frozen=True)
class Observation:
    """Everything the status is computed from."""

    record: NetworkRecord | None
    generation: int | None
    segment_id: int | None = None
    gateway_host: str | None = None
    needs_gateway: bool = True
    ports: Sequence[PortView] = ()
    underlay: Mapping[str, str | None] | None = None  # host -> Host.status.underlayIP
    problem: UserError | None = None
    # Instance name -> hosts it is moving to (live migration): wired before the switch.
    incoming: Mapping[str, set[str]] | None = None


def needs_gateway(spec: Mapping[str, Any], ports: Sequence[PortView]) -> bool:
    """DHCP, the router and floating IPs live on a network host."""
    router = (spec.get("router") or {}).get("enabled", False)
    return bool(spec.get("dhcp", True) or router or any(p.floating_ip for p in ports))


def wired_hosts(observation: Observation) -> list[str]:
    """Hosts that must carry the network: those of its NICs (and of a NIC's live-migration
    target during the move), and its gateway host."""
    hosts = {p.host for p in observation.ports if p.host}
    incoming = observation.incoming or {}
    hosts |= {h for p in observation.ports if p.instance for h in incoming.get(p.instance, ())}
    if observation.gateway_host and observation.needs_gateway:
        hosts.add(observation.gateway_host)
    return sorted(hosts)


def desired_status(
    observation: Observation, previous: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The full status the operator owns for this Network."""
    o = observation
    status: dict[str, Any] = {"observedGeneration": o.generation}
    if o.record is None or o.problem is not None:
        problem = o.problem or UserError("the Network cannot be parsed")
        status["conditions"] = [
            cond.condition(
                READY,
                False,
                problem.reason,
                problem.message,
                generation=o.generation,
                previous=previous,
            )
        ]
        return status
    record = o.record
    hosts = wired_hosts(o)
    status |= {
        "segmentId": o.segment_id,
        "bridge": record.bridge,
        "gateway": str(record.gateway),
        "gatewayHost": o.gateway_host if o.needs_gateway else None,
        "hosts": hosts,
        "ports": [_port(p) for p in o.ports],
        "ipsUsed": len(o.ports),
        "ipsFree": max(0, record.capacity - len(o.ports)),
    }
    if record.mode == "vxlan":
        underlay = o.underlay or {}
        status["tunnelEndpoints"] = [
            {"host": h, "ip": underlay[h]} for h in hosts if underlay.get(h)
        ]
    missing = [h for h in hosts if record.mode == "vxlan" and not (o.underlay or {}).get(h)]
    if o.needs_gateway and not o.gateway_host:
        ready = cond.condition(
            READY,
            False,
            "NoNetworkHost",
            "no Ready Host runs the network service (or each serves an overlapping CIDR), so "
            "DHCP, router and floating IPs are not served: add `network` to a Host's "
            "spec.services",
            generation=o.generation,
            previous=previous,
        )
    elif missing:
        ready = cond.condition(
            READY,
            False,
            "NoUnderlayAddress",
            f"host(s) {', '.join(missing)} report no status.underlayIP, so VXLAN cannot reach "
            "them: start their agents with --underlay-ip",
            generation=o.generation,
            previous=previous,
        )
    else:
        segment = f"segment {o.segment_id}, " if o.segment_id is not None else ""
        gateway = f", gateway on {o.gateway_host}" if o.needs_gateway else ""
        ready = cond.condition(
            READY,
            True,
            "Allocated",
            f"{segment}{len(o.ports)} of {record.capacity} addresses in use, wired on "
            f"{len(hosts)} host(s){gateway}",
            generation=o.generation,
            previous=previous,
        )
    status["conditions"] = [ready]
    return status


def _port(p: PortView) -> dict[str, Any]:
    port: dict[str, Any] = {"instance": p.instance or p.consumer_uid, "ip": p.ip, "mac": p.mac}
    if p.host:
        port["host"] = p.host
    if p.floating_ip:
        port["floatingIP"] = p.floating_ip
    return port


def label_changes(current: Mapping[str, str] | None, hosts: Sequence[str]) -> dict[str, str | None]:
    """A merge patch of labels: add wired hosts, drop (None) hosts no longer wired."""
    current = current or {}
    wanted = {wired_label(h): "true" for h in hosts}
    changes: dict[str, str | None] = {k: v for k, v in wanted.items() if current.get(k) != v}
    for key in current:
        if key.startswith(WIRED_LABEL_PREFIX) and key not in wanted:
            changes[key] = None
    return changes


def status_differs(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """True when applying `desired` would change what a reader sees."""
    current = current or {}
    for key, value in desired.items():
        if key == "conditions":
            for entry in value:
                if not cond.same(cond.find(current.get("conditions"), entry["type"]), entry):
                    return True
        elif (current.get(key) if current.get(key) not in ([], None) else None) != (
            value if value not in ([], None) else None
        ):
            return True
    return False
