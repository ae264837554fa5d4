"""SEAM for the compute service: an Instance's NICs as the network service wired them.

The compute driver builds `<interface type='bridge'>` from (bridge, MAC, tap name); this
module computes them from the Instance's `status.addresses` (MACs from the inventory) and
the bridge names of its Networks (`Network.status.bridge`). The compute reconciler calls
`nic_plan` before spawning; until then guests boot without NICs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubenova.errors import TemporaryError
from kubenova.kube.meta import uid_of

TAP_PREFIX = "tap"


@dataclass(frozen=True)
class NicPlan:
    network: str
    bridge: str
    mac: str
    tap: str


def tap_name(uid: str, index: int) -> str:
    """Deterministic per (Instance, NIC): `tap` + 10 hex + index digit(s), <= 15 bytes."""
    return f"{TAP_PREFIX}{hashlib.sha256(uid.encode()).hexdigest()[:10]}{index}"


def nic_plan(instance: Mapping[str, Any], bridges: Mapping[str, str | None]) -> list[NicPlan]:
    """NICs in spec order; TemporaryError while an address or a bridge is not there yet."""
    uid = uid_of(instance)
    addresses = {a["network"]: a for a in (instance.get("status") or {}).get("addresses") or ()}
    plan = []
    for index, attachment in enumerate((instance.get("spec") or {}).get("networks") or ()):
        name = attachment["network"]
        address, bridge = addresses.get(name), bridges.get(name)
        if address is None or not bridge:
            raise TemporaryError(
                f"network {name}: {'no address allocated' if address is None else 'not wired'} yet",
                delay=2.0,
                reason="NetworkNotReady",
            )
        plan.append(NicPlan(name, bridge, address["mac"], tap_name(uid, index)))
    return plan
