"""Network: a tenant network (flat, VLAN or VXLAN) with IPAM, DHCP and an optional router."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from .meta import (
    IPV4_PATTERN,
    Condition,
    CRDInfo,
    KubeModel,
    PrinterColumn,
    Resource,
    age_column,
    conditions_field,
    immutable,
    ready_column,
)

# The gateway rule in CEL, which has no broadcast(): the gateway as an integer, plus one,
# modulo the CIDR's block size (2 ** host bits from a table; prefixes are /8 to /29) is 0
# for the broadcast address and 1 for the network address.
_GATEWAY_INT = " + ".join(
    f"int(self.gateway.split('.')[{index}]) * {256 ** (3 - index)}" for index in range(4)
)
_BLOCK_SIZE = f"{[2**bits for bits in range(25)]}[32 - cidr(self.cidr).prefixLength()]"
_GATEWAY_IS_A_HOST = (
    "!has(self.gateway) || !isCIDR(self.cidr) || !isIP(self.gateway) || "
    "cidr(self.cidr).prefixLength() < 8 || "
    f"({_GATEWAY_INT} + 1) % {_BLOCK_SIZE} > 1"
)


class NetworkMode(StrEnum):
    FLAT = "flat"
    VLAN = "vlan"
    VXLAN = "vxlan"


class Router(KubeModel):
    """SNAT to the outside world through the network host."""

    enabled: bool = Field(default=False, description="Masquerade guest traffic to the outside.")


class NetworkSpec(KubeModel):
    """The desired state of a Network."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.gateway) || !isCIDR(self.cidr) || "
                    "cidr(self.cidr).containsIP(self.gateway)",
                    "message": "spec.gateway must lie inside spec.cidr",
                    "fieldPath": ".gateway",
                },
                {
                    # The allocator refuses these too (InvalidCIDR); refused here,
                    # `kubectl apply` names the field instead of the Network failing later.
                    "rule": _GATEWAY_IS_A_HOST,
                    "message": "spec.gateway must be a host address of spec.cidr, neither its "
                    "network nor its broadcast address",
                    "fieldPath": ".gateway",
                },
            ]
        }
    }

    mode: NetworkMode = Field(
        description="flat (a bridge on the physical interface), vlan (802.1Q or OVS tag on "
        "the physical trunk) or vxlan (VNI over the underlay). flat and vlan are provider "
        "networks, for cloud administrators only (networks/provider in kubenova.io). Immutable.",
        json_schema_extra=immutable("spec.mode"),
    )
    cidr: str = Field(
        max_length=18,
        description="IPv4 subnet in CIDR notation, e.g. 10.20.0.0/24 (prefix /8 to /29). "
        "Immutable.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "isCIDR(self) && cidr(self).ip().family() == 4",
                    "message": "spec.cidr must be an IPv4 CIDR such as 10.20.0.0/24",
                },
                {
                    "rule": "!isCIDR(self) || cidr(self) == cidr(self).masked()",
                    "message": "spec.cidr has host bits set: use the network address",
                },
                {
                    "rule": "!isCIDR(self) || (cidr(self).prefixLength() >= 8 && "
                    "cidr(self).prefixLength() <= 29)",
                    "message": "spec.cidr prefix must be between /8 and /29",
                },
                {"rule": "self == oldSelf", "message": "spec.cidr is immutable once created"},
            ]
        },
    )
    gateway: str | None = Field(
        default=None,
        max_length=15,
        pattern=IPV4_PATTERN,
        description="Gateway address inside the CIDR; defaults to the first host address.",
    )
    dhcp: bool = Field(default=True, description="Serve DHCP (dnsmasq) with static leases.")
    dns: list[Annotated[str, Field(max_length=15, pattern=IPV4_PATTERN)]] = Field(
        default_factory=list,
        max_length=3,
        description="DNS servers handed out by DHCP.",
    )
    physical_interface: str | None = Field(
        default=None,
        max_length=15,
        pattern=r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$",
        description="Host interface for flat/vlan traffic; the host's default when omitted. "
        "Cloud administrators only (networks/provider in kubenova.io); the host's agent "
        "uses only interfaces on its --provider-interfaces list.",
    )
    router: Router | None = Field(default=None, description="Optional SNAT router.")


class TunnelEndpoint(KubeModel):
    """A host carrying a VXLAN network and the underlay address its VTEP listens on."""

    host: str = Field(description="Host name.")
    ip: str = Field(description="The host's underlay address (Host.status.underlayIP).")


class Port(KubeModel):
    """One Instance NIC on the network, as the inventory allocated it."""

    instance: str = Field(description="Name of the Instance (same namespace).")
    host: str | None = Field(default=None, description="Host the Instance is placed on.")
    ip: str = Field(description="Fixed IPv4 address.")
    mac: str = Field(description="MAC address of the NIC.")
    floating_ip: str | None = Field(
        default=None, alias="floatingIP", description="Floating IP mapped 1:1 to ip, if any."
    )


class NetworkStatus(KubeModel):
    """The observed state of a Network."""

    segment_id: int | None = Field(default=None, description="Allocated VLAN id or VNI.")
    bridge: str | None = Field(default=None, description="Bridge name on every host.")
    gateway: str | None = Field(
        default=None, description="The gateway address in use (spec.gateway or the first host)."
    )
    gateway_host: str | None = Field(
        default=None,
        description="The network host that runs this network's DHCP server, router and "
        "floating IPs.",
    )
    hosts: list[str] = Field(default_factory=list, description="Hosts wired for this network.")
    tunnel_endpoints: list[TunnelEndpoint] = Field(
        default_factory=list,
        max_length=4096,
        description="VXLAN only: the wired hosts' underlay addresses, for unicast FDB entries.",
    )
    ports: list[Port] = Field(
        default_factory=list,
        max_length=4096,
        description="Instance NICs on the network (DHCP host entries and floating IPs).",
    )
    ips_used: int | None = Field(default=None, alias="ipsUsed", description="Fixed IPs in use.")
    ips_free: int | None = Field(default=None, alias="ipsFree", description="Fixed IPs left.")
    observed_generation: int | None = Field(default=None)
    conditions: list[Condition] = conditions_field()


class Network(Resource):
    """A tenant network."""

    crd = CRDInfo(
        kind="Network",
        plural="networks",
        singular="network",
        short_names=("net",),
        namespaced=True,
        description="A Network is a tenant L2 segment with an IPv4 subnet: bridges on the "
        "hosts that run its Instances, fixed IPs from the inventory, DHCP and an optional "
        "router.",
        printer_columns=(
            PrinterColumn(name="Mode", type="string", json_path=".spec.mode"),
            PrinterColumn(name="CIDR", type="string", json_path=".spec.cidr"),
            PrinterColumn(name="Segment", type="integer", json_path=".status.segmentId"),
            PrinterColumn(name="Free", type="integer", json_path=".status.ipsFree"),
            ready_column(),
            age_column(),
        ),
    )

    spec: NetworkSpec
    status: NetworkStatus | None = None
