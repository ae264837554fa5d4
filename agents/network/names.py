"""Device names derived from a network's bridge name (`knb-<8 hex>`, set by the operator).

All fit IFNAMSIZ (15 bytes) and are the same on every host, so any agent can find and
remove what an earlier run of itself (or of another agent version) created.
"""

from __future__ import annotations

import hashlib

BRIDGE_PREFIX = "knb-"
VXLAN_PREFIX = "knx-"
VLAN_PREFIX = "knv-"
OVS_BRIDGE_SIDE = "knp-"  # veth end enslaved to the Linux bridge
OVS_SWITCH_SIDE = "kno-"  # veth end that is a tagged OVS port
OVS_BRIDGE_PREFIX = "knovs-"
NFT_TABLE_PREFIX = "kubenova-"
MAX_NAME = 15


def suffix(bridge: str) -> str:
    if not bridge.startswith(BRIDGE_PREFIX) or len(bridge) > MAX_NAME:
        raise ValueError(f"{bridge!r} is not a kubenova bridge name (knb-<hex>, <= 15 bytes)")
    return bridge[len(BRIDGE_PREFIX) :]


def vxlan_device(bridge: str) -> str:
    return VXLAN_PREFIX + suffix(bridge)


def vlan_device(bridge: str) -> str:
    return VLAN_PREFIX + suffix(bridge)


def ovs_veth(bridge: str) -> tuple[str, str]:
    """(bridge side, OVS side) of the veth pair joining the Linux bridge to OVS."""
    return OVS_BRIDGE_SIDE + suffix(bridge), OVS_SWITCH_SIDE + suffix(bridge)


def ovs_bridge(trunk: str) -> str:
    """One OVS bridge per trunk interface."""
    return OVS_BRIDGE_PREFIX + hashlib.sha256(trunk.encode()).hexdigest()[:8]


def nft_table(bridge: str) -> str:
    return NFT_TABLE_PREFIX + suffix(bridge)


def is_ours(ifname: str) -> bool:
    return ifname.startswith(
        (BRIDGE_PREFIX, VXLAN_PREFIX, VLAN_PREFIX, OVS_BRIDGE_SIDE, OVS_SWITCH_SIDE)
    )
