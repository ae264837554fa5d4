"""Where segment ids and floating IPs come from: ranges the administrator configures.

Read from the environment of the operator (the Helm chart sets them):
`KUBENOVA_VLAN_RANGES` ("100-199,300-399"; default 100-4094),
`KUBENOVA_VNI_RANGES` (default 1000-16777215) and
`KUBENOVA_FLOATING_IP_POOL` (a CIDR or "first-last"; default none: floating IPs refused).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

VLAN_LIMITS = (1, 4094)
VNI_LIMITS = (1, 16_777_215)


@dataclass(frozen=True)
class Range:
    """An inclusive integer range."""

    first: int
    last: int

    def __len__(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class NetworkSettings:
    vlan_ranges: tuple[Range, ...] = (Range(100, 4094),)
    vni_ranges: tuple[Range, ...] = (Range(1000, 16_777_215),)
    # Inclusive address range of the external pool; None: no floating IPs.
    floating_pool: tuple[ipaddress.IPv4Address, ipaddress.IPv4Address] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def ranges(self, kind: str) -> tuple[Range, ...]:
        return self.vlan_ranges if kind == "vlan" else self.vni_ranges


def parse_ranges(text: str, limits: tuple[int, int], what: str) -> tuple[Range, ...]:
    """'100-199,300' -> (Range(100,199), Range(300,300)); ValueError saying what is wrong."""
    ranges = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first_text, _, last_text = part.partition("-")
        try:
            first, last = int(first_text), int(last_text or first_text)
        except ValueError:
            raise ValueError(f"{what}: {part!r} is not N or N-M") from None
        if not limits[0] <= first <= last <= limits[1]:
            raise ValueError(f"{what}: {part!r} must lie within {limits[0]}-{limits[1]}")
        ranges.append(Range(first, last))
    if not ranges:
        raise ValueError(f"{what}: no range given")
    return tuple(ranges)


def parse_pool(text: str) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
    """A CIDR (its host addresses) or 'first-last' -> inclusive (first, last)."""
    if "/" in text:
        network = ipaddress.IPv4Network(text.strip(), strict=True)
        hosts = list(network.hosts()) if network.prefixlen < 31 else list(network)
        return hosts[0], hosts[-1]
    first_text, _, last_text = text.partition("-")
    first = ipaddress.IPv4Address(first_text.strip())
    last = ipaddress.IPv4Address(last_text.strip() or first_text.strip())
    if last < first:
        raise ValueError(f"floating IP pool {text!r}: the last address comes before the first")
    return first, last


def from_environment(env: Mapping[str, str] | None = None) -> NetworkSettings:
    """Settings from KUBENOVA_* variables; ValueError with a clear message on bad values."""
    env = os.environ if env is None else env
    vlan = env.get("KUBENOVA_VLAN_RANGES")
    vni = env.get("KUBENOVA_VNI_RANGES")
    pool = env.get("KUBENOVA_FLOATING_IP_POOL")
    defaults = NetworkSettings()
    try:
        return NetworkSettings(
            vlan_ranges=parse_ranges(vlan, VLAN_LIMITS, "KUBENOVA_VLAN_RANGES")
            if vlan
            else defaults.vlan_ranges,
            vni_ranges=parse_ranges(vni, VNI_LIMITS, "KUBENOVA_VNI_RANGES")
            if vni
            else defaults.vni_ranges,
            floating_pool=parse_pool(pool) if pool else None,
        )
    except ipaddress.AddressValueError as exc:
        raise ValueError(f"KUBENOVA_FLOATING_IP_POOL: {exc}") from exc
