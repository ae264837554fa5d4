"""Host registration and heartbeat: the agent's `Host` resource and its Lease.

`HostRegistration(client, name, capacity=Capacity(...))` works without libvirt (tests give
the capacity); `capacity_from_libvirt(uri, state_dir)` reads it from a real host.
"""

from kubenova.agents.host.capacity import Capacity, capacity_from_libvirt
from kubenova.agents.host.lease import LeaseKeeper, micro_time
from kubenova.agents.host.registration import AGENT_READY, HostRegistration, agent_version

__all__ = [
    "AGENT_READY",
    "Capacity",
    "HostRegistration",
    "LeaseKeeper",
    "agent_version",
    "capacity_from_libvirt",
    "micro_time",
]
