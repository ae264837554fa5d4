"""The inventory side of a live migration: both hosts hold the guest during the move.

The target is claimed BEFORE the move under the migration's own uid (kind
InstanceMigration: no second quota charge; a server-group membership on the target, so an
anti-affine sibling cannot land there meanwhile). When the guest runs on the target,
`hand_over` gives that claim to the Instance (and its volume attachments to the target
host) and frees the source in ONE transaction: no
instant where the guest holds nothing or holds both after the move. `roll_back` frees the
target claim only (a failed or cancelled move); both are idempotent.

A cold move of a resize (`claim_cold_target`) claims the Instance's NEW size on the target
and charges the project for it in the same transaction (the charge is replaced, so the
difference is charged once); `hand_over` then gives the Instance that claim as it is, and
`roll_back(..., instance=)` puts the charge back to what the Instance's own claim holds.
"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, delete, select, update

from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.models import (
    Allocation,
    HostRow,
    InstanceRow,
    QuotaCharge,
    ServerGroupMember,
    VolumeAttachmentRow,
)

MIGRATION_KIND = "InstanceMigration"


def claim_target(
    engine: Engine,
    migration: inv.Consumer,
    target: str,
    resources: inv.Resources,
    group: inv.ServerGroupRef | None = None,
) -> inv.Claim:
    """Hold `resources` on `target` for the migration (capacity and hard group policies
    re-checked in the database); ClaimRefused if it no longer fits."""
    if migration.kind != MIGRATION_KIND:
        raise ValueError(f"a migration's claim is of kind {MIGRATION_KIND}, not {migration.kind}")
    return inv.claim(engine, migration, target, resources, group)


def claim_cold_target(
    engine: Engine,
    migration: inv.Consumer,
    instance: inv.Consumer,
    target: str,
    resources: inv.Resources,
    *,
    group: inv.ServerGroupRef | None = None,
) -> inv.Claim:
    """Hold `resources` (the Instance's new size) on `target` for the migration and charge
    the Instance's project for them, in one transaction: QuotaExceeded or ClaimRefused and
    nothing is written. Idempotent: an existing claim of the migration is returned."""
    if migration.kind != MIGRATION_KIND:
        raise ValueError(f"a migration's claim is of kind {MIGRATION_KIND}, not {migration.kind}")
    with inv.write_transaction(engine) as connection:
        # Lock order as every claim: the quota row first, then group and host.
        _recharge(connection, instance, resources, checked=True)
        return inv.claim_in(connection, migration, target, resources, group)


def _recharge(
    connection: Connection, instance: inv.Consumer, resources: inv.Resources, *, checked: bool
) -> None:
    """The Instance's quota charge set to `resources` (its floating IPs kept). Unchecked, a
    return to what its claim holds is never refused (as a release is not)."""
    fips = connection.execute(
        select(QuotaCharge.floating_ips).where(QuotaCharge.consumer_uid == instance.uid)
    ).scalar_one_or_none()
    if fips is None:
        return  # no charge (never claimed, or released): nothing to change
    if checked:
        quotas.charge(connection, instance, quotas.QuotaAmounts.for_instance(resources, fips))
        return
    connection.execute(
        update(QuotaCharge)
        .where(QuotaCharge.consumer_uid == instance.uid)
        .values(vcpus=resources.vcpus, memory_mib=resources.memory_mb)
    )


def hand_over(engine: Engine, migration_uid: str, instance_uid: str) -> inv.Claim | None:
    """The guest runs on the target: the Instance now holds the target claim and its source
    allocations are gone, in one transaction. None if the migration holds nothing (done
    already: then the Instance's claim is returned as it is)."""
    with inv.write_transaction(engine) as connection:
        moved = inv.find_claim(connection, migration_uid)
        if moved is None:
            return inv.find_claim(connection, instance_uid)
        source = inv.find_claim(connection, instance_uid)
        connection.execute(delete(Allocation).where(Allocation.consumer_uid == instance_uid))
        connection.execute(
            delete(ServerGroupMember).where(ServerGroupMember.consumer_uid == instance_uid)
        )
        instance = connection.execute(
            select(InstanceRow.name, InstanceRow.namespace).where(InstanceRow.uid == instance_uid)
        ).one_or_none()
        values = {"consumer_uid": instance_uid, "consumer_kind": "Instance"}
        if instance is not None:
            values |= {"consumer_name": instance.name, "consumer_namespace": instance.namespace}
        connection.execute(
            update(Allocation).where(Allocation.consumer_uid == migration_uid).values(values)
        )
        connection.execute(
            update(ServerGroupMember)
            .where(ServerGroupMember.consumer_uid == migration_uid)
            .values(consumer_uid=instance_uid)
        )
        target_id = select(HostRow.id).where(HostRow.name == moved.host).scalar_subquery()
        connection.execute(
            update(InstanceRow).where(InstanceRow.uid == instance_uid).values(host_id=target_id)
        )
        # Its volumes are opened from the target now: their access lists follow (the
        # source's initiator goes, the target's stays).
        connection.execute(
            update(VolumeAttachmentRow)
            .where(VolumeAttachmentRow.instance_uid == instance_uid)
            .values(host_id=target_id)
        )
        # Both hosts' usage changed: views re-read them.
        hosts = [moved.host] + ([source.host] if source is not None else [])
        connection.execute(
            update(HostRow).where(HostRow.name.in_(hosts)).values(generation=HostRow.generation + 1)
        )
        return inv.find_claim(connection, instance_uid)


def settle(
    engine: Engine,
    migration_uid: str,
    instance: inv.Consumer,
    running_on: str,
    *,
    cold: bool = False,
) -> inv.Claim | None:
    """After a crash (operator or agent killed mid-move), make the inventory agree with where
    the guest runs now, as its hosts' agents report it: handed over if it runs on the
    migration's target, rolled back if it runs on its source. The Instance's claim after."""
    target = inv.find_claim(engine, migration_uid)
    if target is not None and target.host == running_on:
        return hand_over(engine, migration_uid, instance.uid)
    source = inv.find_claim(engine, instance.uid)
    if source is None or source.host != running_on:
        raise ValueError(
            f"the guest runs on {running_on}, which neither the instance's claim "
            f"({source.host if source else 'none'}) nor the migration's "
            f"({target.host if target else 'none'}) holds"
        )
    roll_back(engine, migration_uid, instance if cold else None)
    return source


def roll_back(
    engine: Engine, migration_uid: str, instance: inv.Consumer | None = None
) -> inv.Claim | None:
    """A failed or cancelled move: the target claim goes, the source keeps the guest's.
    With `instance` (a cold move's), its quota charge returns to what its claim holds."""
    if instance is not None:
        with inv.write_transaction(engine) as connection:
            kept = inv.find_claim(connection, instance.uid)
            if kept is not None:
                _recharge(connection, instance, kept.resources, checked=False)
    return inv.release(engine, migration_uid)
