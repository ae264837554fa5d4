"""A Network as the allocation code sees it: parsed, checked, immutable."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Any

from kubenova.kube.meta import name_of, namespace_of, uid_of
from kubenova.operator.networks.errors import InvalidCidr

BRIDGE_PREFIX = "knb-"


@dataclass(frozen=True)
class NetworkRecord:
    uid: str
    namespace: str
    name: str
    mode: str  # flat | vlan | vxlan
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address

    @property
    def segment_kind(self) -> str | None:
        """Which id space the network draws from; flat networks have no segment id."""
        return None if self.mode == "flat" else self.mode

    @property
    def capacity(self) -> int:
        """Addresses a NIC can get: the host addresses less the gateway."""
        return max(0, self.cidr.num_addresses - 2 - 1)

    @property
    def bridge(self) -> str:
        """Deterministic bridge name, the same on every host (fits IFNAMSIZ: 12 bytes)."""
        return bridge_name(self.uid)

    def reserved(self, address: ipaddress.IPv4Address) -> str | None:
        """Why `address` cannot be a NIC's, or None."""
        if address == self.cidr.network_address:
            return "the network address"
        if address == self.cidr.broadcast_address:
            return "the broadcast address"
        if address == self.gateway:
            return "the gateway"
        return None


def bridge_name(uid: str) -> str:
    return BRIDGE_PREFIX + hashlib.sha256(uid.encode()).hexdigest()[:8]


def network_record(body: dict[str, Any]) -> NetworkRecord:
    """Parse a Network body; InvalidCidr says what to change (the CRD refuses most of it)."""
    spec = body.get("spec") or {}
    text = str(spec.get("cidr", ""))
    try:
        cidr = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        raise InvalidCidr(
            f"spec.cidr {text!r} is not an IPv4 network address such as 10.20.0.0/24 ({exc})"
        ) from None
    if not 8 <= cidr.prefixlen <= 29:
        raise InvalidCidr(f"spec.cidr {text} must have a prefix between /8 and /29")
    gateway_text = spec.get("gateway")
    if gateway_text:
        try:
            gateway = ipaddress.IPv4Address(gateway_text)
        except ValueError:
            raise InvalidCidr(f"spec.gateway {gateway_text!r} is not an IPv4 address") from None
        if gateway not in cidr or gateway in (cidr.network_address, cidr.broadcast_address):
            raise InvalidCidr(f"spec.gateway {gateway} must be a host address of {cidr}")
    else:
        gateway = cidr.network_address + 1
    return NetworkRecord(
        uid=uid_of(body),
        namespace=namespace_of(body),
        name=name_of(body),
        mode=str(spec.get("mode", "vxlan")),
        cidr=cidr,
        gateway=gateway,
    )
