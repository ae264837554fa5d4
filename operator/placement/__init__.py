"""Placement: put an Instance (or a Volume) on a host, durably. One Instance, end to end:

1. The leader's one list+watch of all Instances (`instance_watch`, a ListWatch; no kopf)
   keeps each slimmed body and marks its key in the instance work queue.
2. One of `--workers` workers runs `InstanceReconciler` (`kubenova.operator.instances`).
3. `build_request` (instance_request.py) resolves flavor, image, server group and quota
   from in-memory catalogs; the hooks (networks, volumes) give their `ClaimStep`s.
4. `Placer.place_soon` (placer.py) queues it; one executor job commits the queue, a batch
   per write transaction (group commit), and answers each batch in one loop wake-up.
5. `Scheduler.schedule` filters and weighs the view's HostTable: Chosen(host, alternates)
   or NoValidHost with per-filter reasons (the Instance waits; a release wakes it).
6. `Placer._claim` writes the claim and its steps (quota, group, capacity re-checked; IPs,
   MACs, attachments) in a SAVEPOINT: a refusal rolls back that placement only. The
   per-placement statements run on the driver's cursor (`inventory.driver_sql`).
7. One status apply (host, phase, Scheduled, addresses) hands it over: agents select by
   `status.host`; a correlated Event follows; Host status fills trickle at 25 writes/s.
Volumes: `place_volume` (volumes.py) ranks volume hosts by free disk and claims the same way.
"""

from kubenova.operator.placement.host_view import HostView, host_state
from kubenova.operator.placement.instance_request import build_request
from kubenova.operator.placement.placer import MAX_BATCH, Placer
from kubenova.operator.placement.volumes import NoVolumeHost, VolumeRequest
from kubenova.operator.placement.volumes import place as place_volume

__all__ = [
    "MAX_BATCH",
    "HostView",
    "NoVolumeHost",
    "Placer",
    "VolumeRequest",
    "build_request",
    "host_state",
    "place_volume",
]
