"""What one network should look like on this host: frozen, typed, free of Kubernetes."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from kubenova.agents.network import names
from kubenova.kube.meta import key_of


class Mode(StrEnum):
    FLAT = "flat"
    VLAN = "vlan"
    VXLAN = "vxlan"


@dataclass(frozen=True)
class DhcpHost:
    """A static lease: this MAC always gets this IP."""

    mac: str
    ip: str
    name: str


@dataclass(frozen=True)
class FloatingMapping:
    floating_ip: str
    fixed_ip: str


@dataclass(frozen=True)
class GatewaySpec:
    """The network-host part: gateway address, DHCP, router, floating IPs."""

    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    dhcp: bool = True
    dns: tuple[str, ...] = ()
    router: bool = False
    hosts: tuple[DhcpHost, ...] = ()
    floating: tuple[FloatingMapping, ...] = ()
    mtu: int | None = None

    @property
    def forwards(self) -> bool:
        """Whether traffic is routed between this network and the outside at all."""
        return self.router or bool(self.floating)


@dataclass(frozen=True)
class HostNetwork:
    """One network on this host: an L2 segment, and the gateway if this is its network host."""

    key: str  # namespace/name, for logs
    bridge: str
    mode: Mode
    segment_id: int | None = None
    trunk: str | None = None  # flat/vlan: the physical (or given) interface
    local_ip: str | None = None  # vxlan: this host's underlay address
    peers: tuple[str, ...] = ()  # vxlan: the other hosts' underlay addresses
    gateway: GatewaySpec | None = field(default=None)

    def __post_init__(self) -> None:
        names.suffix(self.bridge)  # refuses names that are not ours
        if self.mode != Mode.FLAT and self.segment_id is None:
            raise ValueError(f"{self.key}: a {self.mode} network needs a segment id")
        if self.mode in (Mode.FLAT, Mode.VLAN) and not self.trunk:
            raise ValueError(f"{self.key}: a {self.mode} network needs a physical interface")
        if self.mode == Mode.VXLAN and not self.local_ip:
            raise ValueError(f"{self.key}: a vxlan network needs this host's underlay address")


def host_network(
    body: dict[str, Any],
    host: str,
    *,
    underlay_ip: str | None,
    physical_interface: str | None,
) -> HostNetwork | None:
    """The desired state on `host` from a Network body; None until the operator allocated it.

    ValueError when it cannot be wired here as configured (the message says what is missing).
    """
    spec, status = body.get("spec") or {}, body.get("status") or {}
    bridge = status.get("bridge")
    mode = Mode(spec.get("mode", "vxlan"))
    if not bridge or (mode != Mode.FLAT and status.get("segmentId") is None):
        return None
    peers = tuple(
        sorted(
            endpoint["ip"]
            for endpoint in status.get("tunnelEndpoints") or ()
            if endpoint.get("host") != host and endpoint.get("ip")
        )
    )
    gateway = None
    if status.get("gatewayHost") == host and status.get("gateway"):
        gateway = _gateway(spec, status, mode)
    return HostNetwork(
        key=key_of(body),
        bridge=bridge,
        mode=mode,
        segment_id=status.get("segmentId"),
        trunk=spec.get("physicalInterface") or physical_interface,
        local_ip=underlay_ip,
        peers=peers if mode == Mode.VXLAN else (),
        gateway=gateway,
    )


def _gateway(spec: dict[str, Any], status: dict[str, Any], mode: Mode) -> GatewaySpec:
    ports = status.get("ports") or ()
    return GatewaySpec(
        cidr=ipaddress.IPv4Network(spec["cidr"]),
        gateway=ipaddress.IPv4Address(status["gateway"]),
        dhcp=bool(spec.get("dhcp", True)),
        dns=tuple(spec.get("dns") or ()),
        router=bool((spec.get("router") or {}).get("enabled", False)),
        hosts=tuple(DhcpHost(p["mac"], p["ip"], p["instance"]) for p in ports),
        floating=tuple(
            FloatingMapping(p["floatingIP"], p["ip"]) for p in ports if p.get("floatingIP")
        ),
        # VXLAN costs 50 bytes of each underlay frame: tell guests so they never fragment.
        mtu=1450 if mode == Mode.VXLAN else None,
    )
