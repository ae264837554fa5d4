"""Hosts in the operator: Host resources mirrored into the inventory, health judged by Leases.

- `monitor`: the `HostMonitor` (readiness, fencing, usage metrics) and its listeners;
- `status`: the `HostStatusWriter`, which publishes the monitor's verdicts as the Ready
  condition and the inventory's claims as `allocated` (only changes, at most one write per
  host per interval but for a flip);
- `watches`: the Host and Lease list+watches (not kopf) feeding the monitor, and the
  other domains' Host listeners.

Other domains use only the names exported here.
"""

from kubenova.operator.hosts.monitor import HostMonitor, fence_advice, host_record
from kubenova.operator.hosts.status import HOSTS
from kubenova.operator.hosts.watches import HostListener, HostWatches

__all__ = ["HOSTS", "HostListener", "HostMonitor", "HostWatches", "fence_advice", "host_record"]
