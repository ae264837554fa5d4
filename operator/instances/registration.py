"""The Instance watch: one list+watch of every Instance into the instance work queue.

An informer, not kopf's per-object machinery: one stream, each event a dict update and a
queue mark, the newest (slimmed) body kept per key for the reconciler. It runs only
while this replica leads (the runtime starts it with the work queue); a relist every
audit interval catches what a restarted watch missed (a deletion during a 410 relist).
The echo of a hand-over's own status write is kept as the newest body but not reconciled:
the reconciler did with the apply's answer what it would have done with the echo.
"""

from __future__ import annotations

from kubenova.kube import KubeClient
from kubenova.kube.meta import Body, slim, uid_of
from kubenova.kube.watch import ListWatch
from kubenova.operator.instances.handover import INSTANCES
from kubenova.operator.instances.reconciler import InstanceReconciler


def instance_watch(client: KubeClient, reconciler: InstanceReconciler, workers: int) -> ListWatch:
    """Every Instance, reconciled by `reconciler` with `workers` at once."""

    def deleted(key: str, body: Body) -> None:
        # Deleted before a reconcile saw it (say, right after a restart): its claim is
        # still released by uid.
        reconciler.uids[key] = uid_of(body)

    return ListWatch(
        client,
        INSTANCES,
        reconciler,
        workers=workers,
        name="instances",
        component="operator",
        transform=slim,
        on_deleted=deleted,
        echo=reconciler.echoes.came_back,
    )
