"""What a host's agent writes to an InstanceMigration's status (conditions, progress) and
reads of the moving Instance, its Volumes and the peer host: the shapes the live
(migration_service.py) and cold (cold_moves.py) moves use on both sides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kubenova import conditions as cond
from kubenova.agents.compute.attacher import VOLUMES
from kubenova.agents.compute.driver import ComputeFailure
from kubenova.agents.compute.migration import PeerEndpoint, Progress
from kubenova.api.v1alpha1 import Host, InstanceMigration
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.meta import Body, name_of, namespace_of

MIGRATIONS = kubenova_kind(InstanceMigration)
HOSTS = kubenova_kind(Host)
PREPARED = "TargetPrepared"  # the target is ready (live) or holds the guest's files (cold)
MIGRATED = "Migrated"  # where the guest runs now, or why the move failed


def condition_status(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    """A status apply of one condition (TargetPrepared, Migrated)."""
    return {"conditions": [cond.condition(type_, ok, reason, message)]}


def progress_status(progress: Progress) -> dict[str, Any]:
    """A status apply of the job's progress (only what libvirt reported)."""
    values = {
        "dataTotal": progress.data_total,
        "dataRemaining": progress.data_remaining,
        "memoryIteration": progress.memory_iteration,
    }
    return {"progress": {k: v for k, v in values.items() if v is not None}}


def plugged_volumes(instance: Body) -> list[str]:
    """The volumes plugged into the guest, as its host reports them."""
    return [str(e["volume"]) for e in (instance.get("status") or {}).get("volumes") or []]


async def initiator_names(
    client: KubeClient, instance: Body, source: str, target: str
) -> dict[str, str]:
    """The guest's iSCSI initiator names on `source` -> on `target`, from its Volumes'
    attachments (the operator lists both hosts during the move)."""
    names: dict[str, str] = {}
    for volume in plugged_volumes(instance):
        try:
            body = await client.get(VOLUMES, volume, namespace_of(instance))
        except NotFound:
            continue
        mine = [
            a
            for a in (body.get("status") or {}).get("attachments") or []
            if a.get("instance") == name_of(instance)
        ]
        by_host = {a.get("host"): a.get("initiator") for a in mine}
        old, new = by_host.get(source), by_host.get(target)
        if old and new:
            names[str(old)] = str(new)
    return names


async def peer_endpoint(client: KubeClient, host: str) -> PeerEndpoint:
    """How to reach `host`'s libvirtd, as its agent publishes it in the Host's
    status.migration (a field only agents write)."""
    endpoint = ((await client.get(HOSTS, host)).get("status") or {}).get("migration")
    if not endpoint:
        raise ComputeFailure(f"host {host} publishes no libvirt endpoint")
    return PeerEndpoint(endpoint["libvirtURI"], endpoint["address"], Path(endpoint["instancesDir"]))
