"""Where a moving guest's attachments must reach: its target host too, during the move.

The Network reconciler wires a network on the hosts of its NICs (the inventory's
Instance rows) and its gateway host. A live migration needs the target's bridge (and, for
VXLAN, the tunnel endpoints both ways) BEFORE the guest switches over, so the guest keeps
its MAC and fixed IP and loses only the packets of the pause: while an InstanceMigration
is past scheduling and not over, its targetHost counts as a host of the guest's NICs.
The operator's own status fields decide (tenants cannot write status), read from the
API server on every Network reconcile, so a restarted operator keeps the target wired.
DHCP host entries and floating-IP NAT live on the network's gateway host and name the
fixed IP, not the compute host: they need no change when the guest moves. Likewise its
iSCSI volumes' access lists admit the target's initiator during the move, so the target's
QEMU logs in before the switch (operator/volumes/attachments.py).

Shared by the network and volume domains (neither imports the other nor the migrations
domain); it reads only InstanceMigration objects.
"""

from __future__ import annotations

from kubenova.api.v1alpha1 import InstanceMigration, MigrationPhase
from kubenova.kube import KubeClient, kubenova_kind

MIGRATIONS = kubenova_kind(InstanceMigration)
# From the target's claim until the end: the target prepares (and waits for its bridges)
# in PreparingTarget, the guest moves in Running.
MOVING = (MigrationPhase.PREPARING_TARGET, MigrationPhase.RUNNING)


async def incoming_hosts(client: KubeClient, namespace: str) -> dict[str, set[str]]:
    """Instance name -> the target hosts of its migrations under way, in `namespace`."""
    listing = await client.list(MIGRATIONS, namespace)
    targets: dict[str, set[str]] = {}
    for item in listing.get("items", []):
        status = item.get("status") or {}
        target, instance = status.get("targetHost"), (item.get("spec") or {}).get("instanceName")
        if status.get("phase") in MOVING and target and instance:
            targets.setdefault(str(instance), set()).add(str(target))
    return targets
