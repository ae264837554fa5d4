"""Instances in the operator: resolve, schedule, claim, hand over to the host's agent, release.

- `reconciler`: the level-triggered Instance reconciler behind the instance work queue;
- `hooks`: what other domains (networks, volumes) plug into scheduling and release;
- `handover`: the finalizers an object carries before its status hands it to an agent,
  and what our later status applies keep of the hand-over;
- `evacuation`: Instances of a failed, fenced host rebuilt on another (Nova's evacuate);
- `registration`: the Instance list+watch that files events into the queue.

Other domains use only the names exported here.
"""

from kubenova.operator.instances.handover import INSTANCES, ensure_finalizers, still_handed_over
from kubenova.operator.instances.hooks import InstanceHook
from kubenova.operator.instances.reconciler import InstanceReconciler
from kubenova.operator.instances.registration import instance_watch
from kubenova.operator.instances.resize import claimed_resources, resize_pending

__all__ = [
    "INSTANCES",
    "InstanceHook",
    "InstanceReconciler",
    "claimed_resources",
    "ensure_finalizers",
    "instance_watch",
    "resize_pending",
    "still_handed_over",
]
