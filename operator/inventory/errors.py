"""What the inventory raises, as one tree so callers know what to catch.

InventoryError (a kubenova.errors.KubenovaError)
├── SchemaOutOfDate        the database needs `kubenova db upgrade`; the operator refuses to start
├── UnknownHost            a claim named a host the inventory does not have
├── VolumeNotPlaced        an attachment named a volume that has no target (not placed yet)
├── AoeAddressesExhausted  every AoE shelf/slot pair is taken
└── ClaimRefused           the claim was checked against the database and does not fit;
    │                      the caller may try another host (the scheduler does)
    ├── InsufficientCapacity   carries the host's fresh snapshot, to correct a cached view
    ├── ServerGroupConflict    a hard (anti-)affinity rule would break; carries the member hosts
    └── VolumeInUse            the volume is attached elsewhere and not multi-attach
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubenova.errors import KubenovaError
from kubenova.operator.inventory.records import HostSnapshot
from kubenova.operator.resources import GroupPolicy, Resources

if TYPE_CHECKING:
    from kubenova.operator.inventory.volumes import AttachmentRecord


class InventoryError(KubenovaError):
    """Base of everything the inventory raises on purpose."""


class SchemaOutOfDate(InventoryError):
    """The database is not at the revision this kubenova needs."""

    def __init__(self, current: str | None, needed: str) -> None:
        self.current = current
        self.needed = needed
        shown = current or "none (empty database)"
        super().__init__(
            f"database schema is at revision {shown}, kubenova needs {needed}: "
            "run `kubenova db upgrade`"
        )


class UnknownHost(InventoryError):
    """No host of that name is registered in the inventory."""

    def __init__(self, host: str) -> None:
        self.host = host
        super().__init__(f"host {host!r} is not in the inventory")


class ClaimRefused(InventoryError):
    """The claim does not fit on that host any more; nothing was written."""


class InsufficientCapacity(ClaimRefused):
    """The host lacks room for the request once overcommit is applied."""

    def __init__(self, snapshot: HostSnapshot, requested: Resources) -> None:
        self.snapshot = snapshot
        self.requested = requested
        free = snapshot.record.overcommit.capacity(snapshot.record.capacity) - snapshot.used
        super().__init__(
            f"host {snapshot.record.name!r} has room for vcpus={free.vcpus} "
            f"memory_mb={free.memory_mb} disk_gb={free.disk_gb}, "
            f"requested vcpus={requested.vcpus} memory_mb={requested.memory_mb} "
            f"disk_gb={requested.disk_gb}"
        )


class ServerGroupConflict(ClaimRefused):
    """Placing the consumer on that host would break its group's hard policy."""

    def __init__(self, group: str, policy: GroupPolicy, host: str, member_hosts: frozenset[str]):
        self.group = group
        self.policy = policy
        self.host = host
        self.member_hosts = member_hosts
        super().__init__(
            f"server group {group!r} ({policy}) has members on {sorted(member_hosts)}; "
            f"host {host!r} would break it"
        )


class VolumeNotPlaced(InventoryError):
    """The volume has no target yet: it was not placed (or was released)."""

    def __init__(self, volume_uid: str) -> None:
        self.volume_uid = volume_uid
        super().__init__(f"volume {volume_uid} has no target yet")


class AoeAddressesExhausted(InventoryError):
    """No AoE shelf/slot pair is free."""


class VolumeInUse(ClaimRefused):
    """The volume is attached to another Instance and does not allow multi-attach."""

    def __init__(self, volume_uid: str, holders: tuple[AttachmentRecord, ...]) -> None:
        self.volume_uid = volume_uid
        self.holders = holders
        names = ", ".join(f"{h.instance_namespace}/{h.instance_name}" for h in holders)
        super().__init__(f"volume {volume_uid} is attached to {names}")
