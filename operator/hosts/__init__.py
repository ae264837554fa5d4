"""Hosts in the operator: Host resources mirrored into the inventory, health judged by Leases.

- `monitor`: the `HostMonitor` (readiness, fencing, usage metrics) and its listeners;
- `status`: the `HostStatusWriter`, which publishes the monitor's verdicts as the Ready
  condition and the inventory's claims as `allocated` (only changes, at most one write per
  host per interval but for a flip);
- `registration`: the kopf handlers for Host and Lease events.

Other domains use only the names exported here.
"""

from kubenova.operator.hosts.monitor import HostMonitor, fence_advice, host_record
from kubenova.operator.hosts.status import HOSTS

__all__ = ["HOSTS", "HostMonitor", "fence_advice", "host_record"]
