"""Placement: put an Instance (or a Volume) on a host, durably. One Instance, end to end:

1. kopf's watch event for the Instance puts its body on the instance work queue (runtime).
2. A worker runs `InstanceReconciler` (`kubenova.operator.instances`) for its key.
3. `build_request` (instance_request.py) resolves flavor, image and server group from the
   in-memory catalog and counts floating IPs for quota: a PlacementRequest, no database;
   the hooks (networks, volumes) resolve their `ClaimStep`s (NICs, attachments) alike.
4. `Placer.place` (placer.py) queues it; the thread that commits next takes every queued
   placement (group commit) into one write transaction and, for each, reads where the
   server group's members are and asks the pure `Scheduler` for a host.
5. `Scheduler.schedule` filters and weighs the view's HostTable: Chosen(host, alternates)
   or NoValidHost with per-filter reasons (the Instance waits; a release wakes it).
6. `Placer._claim` writes the claim and takes its steps (quota, group, host capacity
   re-checked; fixed IPs, MACs, floating IPs, attachments) in a SAVEPOINT: a refusal
   rolls back that placement only; a lost race tries the next candidate. One commit.
7. One status apply (host, phase, Scheduled, the steps' addresses) hands it over: agents
   select by `status.host` (finalizers came at admission); the agent takes `status.phase`.
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
