"""Where a moving guest's attachments must reach: its target host too, during the move.

The Network reconciler wires a network on the hosts of its NICs (the inventory's
Instance rows) and its gateway host. A live migration needs the target's bridge (and, for
VXLAN, the tunnel endpoints both ways) BEFORE the guest switches over, so the guest keeps
its MAC and fixed IP and loses only the packets of the pause: while an InstanceMigration
is past scheduling and not over, its targetHost counts as a host of the guest's NICs.
DHCP host entries and floating-IP NAT live on the network's gateway host and name the
fixed IP, not the compute host: they need no change when the guest moves. Likewise its
iSCSI volumes' access lists admit the target's initiator during the move, so the target's
QEMU logs in before the switch (operator/volumes/attachments.py).

The operator's own status fields decide (tenants cannot write status). `Moves` keeps them
from one list and watch of every InstanceMigration (an informer: the readers never send a
request), and tells its listeners whenever a guest's set of incoming targets changes (a
migration entering or leaving PreparingTarget/Running, or deleted), so the network and
volume domains reconcile the guest's Networks and Volumes again with the new set. The
migration reconciler also wakes those domains after its own phase writes (its hooks); this
watch is what makes them see the phase those writes set, whichever arrives first. Readers
wait for the first list, so a restarted operator keeps a target wired.

Shared by the network and volume domains (neither imports the other nor the migrations
domain); it reads only InstanceMigration objects.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kubenova.api.v1alpha1 import InstanceMigration, MigrationPhase
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.meta import Body, key_of, namespace_of
from kubenova.kube.watch import ListWatch

log = logging.getLogger(__name__)

MIGRATIONS = kubenova_kind(InstanceMigration)
# From the target's claim until the end: the target prepares (and waits for its bridges)
# in PreparingTarget, the guest moves in Running.
MOVING = (MigrationPhase.PREPARING_TARGET, MigrationPhase.RUNNING)
RELIST_INTERVAL = 300.0  # catches what a stalled watch missed

# (namespace, instance name): whose incoming targets changed.
MoveListener = Callable[[str, str], None]
# A migration under way: (namespace, instance name, target host).
Incoming = tuple[str, str, str]


def incoming_of(body: Body | None) -> Incoming | None:
    """The guest and target a migration brings in, while it is under way."""
    if body is None:
        return None
    status = body.get("status") or {}
    target, instance = status.get("targetHost"), (body.get("spec") or {}).get("instanceName")
    if status.get("phase") in MOVING and target and instance:
        return namespace_of(body) or "", str(instance), str(target)
    return None


def _lean(body: Body) -> Body:
    """What the cache keeps of a migration: enough for `incoming_of` and a relist."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    kept = ("name", "namespace", "uid", "resourceVersion")
    return {
        "metadata": {k: meta[k] for k in kept if k in meta},
        "spec": {"instanceName": (body.get("spec") or {}).get("instanceName")},
        "status": {k: status[k] for k in ("phase", "targetHost") if k in status},
    }


class Moves:
    """The InstanceMigrations under way, from one watch; `await run()` while leading."""

    def __init__(self, client: KubeClient) -> None:
        self.watch = ListWatch(
            client, MIGRATIONS, self._changed, workers=1, name="moves", transform=_lean
        )
        self._incoming: dict[str, Incoming] = {}  # migration key -> what it brings in
        self._listeners: list[MoveListener] = []

    def on_change(self, listener: MoveListener) -> None:
        """Call `listener(namespace, instance)` when that guest's incoming targets change."""
        self._listeners.append(listener)

    async def run(self) -> None:
        while True:
            try:
                await self.watch.run(
                    self._listed, resync=self.watch.relist, resync_interval=RELIST_INTERVAL
                )
            except Exception:
                log.exception("the InstanceMigration watch failed; starting it again in 1 s")
                await asyncio.sleep(1)

    async def incoming_hosts(self, namespace: str) -> dict[str, set[str]]:
        """Instance name -> the target hosts of its migrations under way, in `namespace`."""
        await self.watch.synced.wait()
        targets: dict[str, set[str]] = {}
        for where, instance, target in self._incoming.values():
            if where == namespace:
                targets.setdefault(instance, set()).add(target)
        return targets

    async def _listed(self, listed: list[Body]) -> None:
        # Indexed before `synced` is set: a reader never sees a half-read cache (the
        # queued reconciles of the same bodies then change nothing).
        for body in listed:
            self._index(key_of(body), body)

    async def _changed(self, key: str, body: Body | None) -> None:
        before = self._incoming.get(key)
        after = self._index(key, body)
        if before == after:
            return
        guests = {(i[0], i[1]) for i in (before, after) if i is not None}
        for namespace, instance in sorted(guests):
            for listener in self._listeners:
                listener(namespace, instance)

    def _index(self, key: str, body: Body | None) -> Incoming | None:
        found = incoming_of(body)
        if found is None:
            self._incoming.pop(key, None)
        else:
            self._incoming[key] = found
        return found
