"""SQLAlchemy models of the inventory: the authoritative record of capacity and identifiers.

The constraints here are what make double allocation impossible, also with several
operator replicas: one allocation per (consumer, resource class), one fixed IP per
(network, address), one segment id per kind, one iSCSI target per IQN, one AoE slot per
(shelf, slot). Schema changes go through a new Alembic revision in `migrations/versions/`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints so Alembic can alter them later on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME = 253  # a Kubernetes object name or namespace (DNS subdomain)
UID = 64


def utcnow() -> datetime:
    """Timestamps are always timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class HostRow(Base):
    """A compute/volume/network host and its physical resources."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    availability_zone: Mapped[str] = mapped_column(String(NAME), default="nova")
    state: Mapped[str] = mapped_column(String(16), default="NotReady")  # Ready | NotReady
    schedulable: Mapped[bool] = mapped_column(default=True)
    services: Mapped[list[str]] = mapped_column(JSON, default=list)
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    disk_gb: Mapped[int] = mapped_column(Integer, default=0)
    vcpu_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    memory_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    disk_ratio: Mapped[float] = mapped_column(Float, default=1.0)
    # Bumped by every claim and release on the host, so a cached view can tell it is stale.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Allocation(Base):
    """An amount of one resource class held on a host by one consumer (placement-style)."""

    __tablename__ = "allocations"
    __table_args__ = (
        UniqueConstraint("consumer_uid", "resource_class"),
        # Usage per host is a sum over this index; the amount rides along so SQLite
        # answers from the index alone.
        Index("ix_allocations_host_usage", "host_id", "resource_class", "amount"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consumer_uid: Mapped[str] = mapped_column(String(UID))
    consumer_kind: Mapped[str] = mapped_column(String(63))
    consumer_namespace: Mapped[str] = mapped_column(String(NAME), default="")
    consumer_name: Mapped[str] = mapped_column(String(NAME))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="RESTRICT"))
    resource_class: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InstanceRow(Base):
    """A scheduled Instance: where it runs and in which server group (extended later)."""

    __tablename__ = "instances"

    uid: Mapped[str] = mapped_column(String(UID), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    host_id: Mapped[int | None] = mapped_column(
        ForeignKey("hosts.id", ondelete="RESTRICT"), index=True
    )
    server_group_uid: Mapped[str | None] = mapped_column(
        ForeignKey("server_groups.uid", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServerGroupRow(Base):
    """A ServerGroup; its row is locked while a member is claimed, so policies hold."""

    __tablename__ = "server_groups"

    uid: Mapped[str] = mapped_column(String(UID), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    policy: Mapped[str] = mapped_column(String(32))


class ServerGroupMember(Base):
    """A consumer placed in a server group, with the host it landed on."""

    __tablename__ = "server_group_members"
    __table_args__ = (Index("ix_server_group_members_group_host", "group_uid", "host_id"),)

    group_uid: Mapped[str] = mapped_column(
        ForeignKey("server_groups.uid", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own too: release() finds memberships by consumer alone.
    consumer_uid: Mapped[str] = mapped_column(String(UID), primary_key=True, index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="RESTRICT"))


class NetworkRow(Base):
    """A tenant Network; fixed IPs and its segment id hang off it."""

    __tablename__ = "networks"

    uid: Mapped[str] = mapped_column(String(UID), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    mode: Mapped[str] = mapped_column(String(16))  # flat | vlan | vxlan
    cidr: Mapped[str] = mapped_column(String(64))
    # Held by the gateway host's bridge, never given to a NIC (revision 0002).
    gateway: Mapped[str | None] = mapped_column(String(64))
    # The network host running DHCP, router and floating IPs (revision 0002).
    gateway_host: Mapped[str | None] = mapped_column(String(NAME))


class FixedIp(Base):
    """An address of a network, leased to a consumer (an instance's NIC) or free."""

    __tablename__ = "fixed_ips"
    # One NIC per (network, instance): the Instance CRD refuses a network listed twice.
    __table_args__ = (
        UniqueConstraint("network_uid", "address"),
        UniqueConstraint("network_uid", "consumer_uid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_uid: Mapped[str] = mapped_column(ForeignKey("networks.uid", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(17), unique=True)
    consumer_uid: Mapped[str | None] = mapped_column(String(UID), index=True)


class SegmentId(Base):
    """A VLAN id or VXLAN VNI held by one network."""

    __tablename__ = "segment_ids"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # vlan | vxlan
    value: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_uid: Mapped[str] = mapped_column(
        ForeignKey("networks.uid", ondelete="CASCADE"), unique=True
    )


class FloatingIp(Base):
    """An address of the external pool mapped 1:1 to one fixed IP (revision 0002)."""

    __tablename__ = "floating_ips"
    __table_args__ = (UniqueConstraint("network_uid", "consumer_uid"),)

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    network_uid: Mapped[str] = mapped_column(ForeignKey("networks.uid", ondelete="CASCADE"))
    consumer_uid: Mapped[str] = mapped_column(String(UID), index=True)
    fixed_address: Mapped[str] = mapped_column(String(64))


class VolumeTargetRow(Base):
    """Where a volume is exported: an iSCSI target or an AoE shelf/slot on a host.

    Each volume gets a target of its own (per-target CHAP and ACLs isolate tenants), so
    an IQN is unique, and (iqn, lun) with it.
    """

    __tablename__ = "volume_targets"
    __table_args__ = (UniqueConstraint("shelf", "slot"),)

    volume_uid: Mapped[str] = mapped_column(String(UID), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="RESTRICT"))
    protocol: Mapped[str] = mapped_column(String(8))  # iscsi | aoe
    iqn: Mapped[str | None] = mapped_column(String(223), unique=True)
    lun: Mapped[int | None] = mapped_column(Integer)
    shelf: Mapped[int | None] = mapped_column(Integer)
    slot: Mapped[int | None] = mapped_column(Integer)


class VolumeAttachmentRow(Base):
    """An Instance allowed to attach a volume; the volume's row is locked while one is added,
    so a volume that is not multi-attach never gets two."""

    __tablename__ = "volume_attachments"

    volume_uid: Mapped[str] = mapped_column(
        ForeignKey("volume_targets.volume_uid", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own too: an Instance's release finds its attachments by it alone.
    instance_uid: Mapped[str] = mapped_column(String(UID), primary_key=True, index=True)
    instance_namespace: Mapped[str] = mapped_column(String(NAME))
    instance_name: Mapped[str] = mapped_column(String(NAME))
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class User(Base):
    """A user of the database auth backend; `name` is the Kubernetes user name bound by RBAC."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    email: Mapped[str] = mapped_column(String(254), default="")
    # An argon2id PHC string; None: the user cannot log in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuthProject(Base):
    """A project of the database auth backend: the name of a Project resource."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    description: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RoleRow(Base):
    """A project role (admin, member, reader), each bound to one kubenova ClusterRole."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(String(1024), default="")


class Membership(Base):
    """A user holding a role in a project."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_project", "project_id"),)

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[int] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(
        ForeignKey("roles.name", ondelete="RESTRICT"), primary_key=True
    )


class QuotaLimit(Base):
    """A Project's quota, copied from its spec; its row is locked while a charge is checked."""

    __tablename__ = "quota_limits"

    namespace: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    project: Mapped[str] = mapped_column(String(NAME))
    # None: unlimited.
    instances: Mapped[int | None] = mapped_column(Integer)
    vcpus: Mapped[int | None] = mapped_column(Integer)
    memory_mib: Mapped[int | None] = mapped_column(Integer)
    volumes: Mapped[int | None] = mapped_column(Integer)
    volume_gib: Mapped[int | None] = mapped_column(Integer)
    floating_ips: Mapped[int | None] = mapped_column(Integer)


class QuotaCharge(Base):
    """What one consumer counts against its namespace's quota.

    Written by the consumer's claim, in the claim's transaction, which re-checks the
    quota; removed when the claim is released.
    """

    __tablename__ = "quota_charges"
    __table_args__ = (Index("ix_quota_charges_namespace", "namespace"),)

    consumer_uid: Mapped[str] = mapped_column(String(UID), primary_key=True)
    consumer_kind: Mapped[str] = mapped_column(String(63))
    namespace: Mapped[str] = mapped_column(String(NAME))
    name: Mapped[str] = mapped_column(String(NAME))
    instances: Mapped[int] = mapped_column(Integer, default=0)
    vcpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib: Mapped[int] = mapped_column(Integer, default=0)
    volumes: Mapped[int] = mapped_column(Integer, default=0)
    volume_gib: Mapped[int] = mapped_column(Integer, default=0)
    floating_ips: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
