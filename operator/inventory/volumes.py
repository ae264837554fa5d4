"""Volume targets and attachments: the identities a volume is exported under, and who may attach.

The inventory hands out every export identity, so two volumes can never share one: an iSCSI
volume gets a target of its own (IQN unique by constraint, the disk on LUN 1 — tgt keeps
LUN 0 for its controller); an AoE volume gets the lowest free (shelf, slot) pair, unique by
constraint across the storage network. Both are idempotent per volume uid.

Attachments are added in a transaction that locks the volume's target row first, so a
volume that is not multi-attach can never be given to two Instances, also with several
operator replicas. The disk space itself is an ordinary DISK_GB claim (`claims.claim`)
with a consumer of kind "Volume", which also charges the project's volumes/volumeGiB quota.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.errors import (
    AoeAddressesExhausted,
    UnknownHost,
    VolumeInUse,
    VolumeNotPlaced,
)
from kubenova.operator.inventory.models import HostRow, VolumeAttachmentRow, VolumeTargetRow, utcnow
from kubenova.operator.resources import Consumer

IQN_PREFIX = "iqn.2010-10.io.kubenova"
ISCSI_LUN = 1
# AoE addresses: shelf 0xffff and slot 0xff are broadcast, never a device's.
AOE_SHELVES = 0xFFFF
AOE_SLOTS = 0xFF
# Racing allocators (PostgreSQL) may pick the same free pair; the loser picks again.
_ALLOCATION_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class TargetIdentity:
    """Where a volume is exported: its host, and an IQN + LUN or an AoE shelf + slot."""

    volume_uid: str
    host: str
    protocol: str
    iqn: str | None = None
    lun: int | None = None
    shelf: int | None = None
    slot: int | None = None


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    """An Instance allowed to attach a volume, on the host the Instance runs on."""

    volume_uid: str
    instance_uid: str
    instance_namespace: str
    instance_name: str
    host: str


def target_iqn(volume_uid: str) -> str:
    """The IQN of a volume's own target: derived from its uid, so unique by construction too."""
    return f"{IQN_PREFIX}:volume-{volume_uid}"


def aoe_address(index: int) -> tuple[int, int]:
    """The index-th AoE (shelf, slot) pair, slots first."""
    return divmod(index, AOE_SLOTS)


_READ_TARGET = select(
    VolumeTargetRow.volume_uid,
    HostRow.name,
    VolumeTargetRow.protocol,
    VolumeTargetRow.iqn,
    VolumeTargetRow.lun,
    VolumeTargetRow.shelf,
    VolumeTargetRow.slot,
).join(HostRow, HostRow.id == VolumeTargetRow.host_id)
_READ_ATTACHMENTS = select(
    VolumeAttachmentRow.volume_uid,
    VolumeAttachmentRow.instance_uid,
    VolumeAttachmentRow.instance_namespace,
    VolumeAttachmentRow.instance_name,
    HostRow.name,
).join(HostRow, HostRow.id == VolumeAttachmentRow.host_id)


def allocate_target(engine: Engine, volume_uid: str, host: str, protocol: str) -> TargetIdentity:
    """Give the volume its export identity on `host`, or return the one it already has."""
    if protocol not in ("iscsi", "aoe"):
        raise ValueError(f"protocol must be iscsi or aoe, not {protocol!r}")
    existing = find_target(engine, volume_uid)
    if existing is not None:
        return existing
    for _ in range(_ALLOCATION_ATTEMPTS):
        try:
            with write_transaction(engine) as connection:
                return _allocate_once(connection, volume_uid, host, protocol)
        except IntegrityError:
            existing = find_target(engine, volume_uid)
            if existing is not None:
                return existing  # a retry of our own allocation won
    raise AoeAddressesExhausted(f"no free AoE shelf/slot after {_ALLOCATION_ATTEMPTS} attempts")


def _allocate_once(
    connection: Connection, volume_uid: str, host: str, protocol: str
) -> TargetIdentity:
    host_id = connection.execute(
        select(HostRow.id).where(HostRow.name == host)
    ).scalar_one_or_none()
    if host_id is None:
        raise UnknownHost(host)
    if protocol == "iscsi":
        identity = TargetIdentity(
            volume_uid, host, protocol, iqn=target_iqn(volume_uid), lun=ISCSI_LUN
        )
    else:
        shelf, slot = _free_aoe_address(connection)
        identity = TargetIdentity(volume_uid, host, protocol, shelf=shelf, slot=slot)
    connection.execute(
        insert(VolumeTargetRow).values(
            volume_uid=volume_uid,
            host_id=host_id,
            protocol=protocol,
            iqn=identity.iqn,
            lun=identity.lun,
            shelf=identity.shelf,
            slot=identity.slot,
        )
    )
    return identity


def _free_aoe_address(connection: Connection) -> tuple[int, int]:
    """The lowest (shelf, slot) no volume holds: a gap left by a deleted volume first."""
    used = connection.execute(
        select(VolumeTargetRow.shelf, VolumeTargetRow.slot).where(
            VolumeTargetRow.shelf.is_not(None)
        )
    ).all()
    taken = {(shelf or 0) * AOE_SLOTS + (slot or 0) for shelf, slot in used}
    index = next(i for i in range(len(taken) + 1) if i not in taken)
    if index >= AOE_SHELVES * AOE_SLOTS:
        raise AoeAddressesExhausted(
            f"all {AOE_SHELVES * AOE_SLOTS} AoE shelf/slot addresses are in use"
        )
    return aoe_address(index)


def find_target(engine: Engine, volume_uid: str) -> TargetIdentity | None:
    """The volume's export identity, or None if it has none (not placed, or released)."""
    with engine.connect() as connection:
        row = connection.execute(
            _READ_TARGET.where(VolumeTargetRow.volume_uid == volume_uid)
        ).one_or_none()
    return None if row is None else TargetIdentity(*row)


def list_targets(engine: Engine, host: str | None = None) -> list[TargetIdentity]:
    """Every volume's export identity (on one host), for audits."""
    query = _READ_TARGET.order_by(VolumeTargetRow.volume_uid)
    if host is not None:
        query = query.where(HostRow.name == host)
    with engine.connect() as connection:
        return [TargetIdentity(*row) for row in connection.execute(query)]


def release_target(engine: Engine, volume_uid: str) -> bool:
    """Free the volume's identity and its attachments; True if it had one (idempotent)."""
    with write_transaction(engine) as connection:
        connection.execute(
            delete(VolumeAttachmentRow).where(VolumeAttachmentRow.volume_uid == volume_uid)
        )
        result = connection.execute(
            delete(VolumeTargetRow).where(VolumeTargetRow.volume_uid == volume_uid)
        )
        return bool(result.rowcount)


def attach(
    engine: Engine, volume_uid: str, instance: Consumer, host: str, *, multi_attach: bool
) -> AttachmentRecord:
    """Allow `instance` (running on `host`) to attach the volume; idempotent per pair.

    Raises VolumeNotPlaced when the volume has no target yet, VolumeInUse when another
    Instance holds a volume that is not multi-attach (nothing is written then).
    """
    with write_transaction(engine) as connection:
        return attach_in(connection, volume_uid, instance, host, multi_attach=multi_attach)


def attach_in(
    connection: Connection,
    volume_uid: str,
    instance: Consumer,
    host: str,
    *,
    multi_attach: bool,
) -> AttachmentRecord:
    """`attach` inside the caller's write transaction (an Instance's claim); it checks
    before it writes, so a refusal leaves nothing to roll back."""
    locked = connection.execute(
        select(VolumeTargetRow.volume_uid)
        .where(VolumeTargetRow.volume_uid == volume_uid)
        .with_for_update()
    ).one_or_none()
    if locked is None:
        raise VolumeNotPlaced(volume_uid)
    holders = _attachments(connection, VolumeAttachmentRow.volume_uid == volume_uid)
    mine = [record for record in holders if record.instance_uid == instance.uid]
    if mine:
        return mine[0]
    if holders and not multi_attach:
        raise VolumeInUse(volume_uid, tuple(holders))
    host_id = connection.execute(
        select(HostRow.id).where(HostRow.name == host)
    ).scalar_one_or_none()
    if host_id is None:
        raise UnknownHost(host)
    connection.execute(
        insert(VolumeAttachmentRow).values(
            volume_uid=volume_uid,
            instance_uid=instance.uid,
            instance_namespace=instance.namespace,
            instance_name=instance.name,
            host_id=host_id,
            created_at=utcnow(),
        )
    )
    return AttachmentRecord(volume_uid, instance.uid, instance.namespace, instance.name, host)


def detach(engine: Engine, volume_uid: str, instance_uid: str) -> bool:
    """Withdraw the Instance's permission to attach; True if it had one (idempotent)."""
    with write_transaction(engine) as connection:
        result = connection.execute(
            delete(VolumeAttachmentRow)
            .where(VolumeAttachmentRow.volume_uid == volume_uid)
            .where(VolumeAttachmentRow.instance_uid == instance_uid)
        )
        return bool(result.rowcount)


def detach_instance(engine: Engine, instance_uid: str) -> list[AttachmentRecord]:
    """Withdraw every attachment of an Instance (it is gone); what was withdrawn."""
    with write_transaction(engine) as connection:
        records = _attachments(connection, VolumeAttachmentRow.instance_uid == instance_uid)
        connection.execute(
            delete(VolumeAttachmentRow).where(VolumeAttachmentRow.instance_uid == instance_uid)
        )
        return records


def attachments_of(engine: Engine, volume_uid: str) -> list[AttachmentRecord]:
    """The Instances allowed to attach the volume, oldest first."""
    with engine.connect() as connection:
        return _attachments(connection, VolumeAttachmentRow.volume_uid == volume_uid)


def attachments_of_instance(engine: Engine, instance_uid: str) -> list[AttachmentRecord]:
    """The volumes an Instance is allowed to attach."""
    with engine.connect() as connection:
        return _attachments(connection, VolumeAttachmentRow.instance_uid == instance_uid)


def list_attachments(engine: Engine) -> list[AttachmentRecord]:
    """Every attachment, for audits."""
    with engine.connect() as connection:
        return _attachments(connection, None)


def count_attachments(engine: Engine) -> int:
    with engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(VolumeAttachmentRow)).scalar()
        return int(count or 0)


def _attachments(
    connection: Connection, where: ColumnElement[bool] | None
) -> list[AttachmentRecord]:
    query = _READ_ATTACHMENTS.order_by(
        VolumeAttachmentRow.created_at, VolumeAttachmentRow.instance_uid
    )
    if where is not None:
        query = query.where(where)
    return [AttachmentRecord(*row) for row in connection.execute(query)]
