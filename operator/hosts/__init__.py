"""Hosts in the operator: Host resources mirrored into the inventory, health judged by Leases.

- `monitor`: the `HostMonitor` (readiness, fencing, usage metrics) and its listeners;
- `registration`: the kopf handlers for Host and Lease events.

Other domains use only the names exported here.
"""

from kubenova.operator.hosts.monitor import HOSTS, HostMonitor, fence_advice, host_record

__all__ = ["HOSTS", "HostMonitor", "fence_advice", "host_record"]
