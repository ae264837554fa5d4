"""SQLAlchemy tables of the inventory: the authoritative record of capacity and identifiers.

The constraints here are what make double allocation impossible, also with several
operator replicas: one allocation per (consumer, resource class), one fixed IP per
(network, address), one segment id per kind, one iSCSI target per IQN, one AoE slot per
(shelf, slot). Schema changes go through a new Alembic revision in `migrations/versions/`.

Each class holds one Core `Table` and its columns as class attributes, for Core statements
(`select(HostRow.name)`, `insert(HostRow)`, `.join(HostRow, ...)`): nothing here is an ORM
mapping, so the operator does not import `sqlalchemy.orm` (38 modules) at start-up. A column
is NOT NULL only when it says `nullable=False` (or is part of the primary key).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ColumnClause,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.sql.base import SchemaEventTarget
from sqlalchemy.types import TypeEngine

_T = TypeVar("_T")

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


def col(
    type_: TypeEngine[_T] | type[TypeEngine[_T]], *args: SchemaEventTarget, **kwargs: Any
) -> ColumnClause[_T]:
    """A `Column` of a table below, named after its attribute; typed as the column it is.

    Typed as `Column`, a class attribute would read as `Never` with SQLAlchemy 2.1, whose
    typing-only `Named.__get__` keeps `TypedColumns` classes from passing for ORM classes.
    """
    return Column(type_, *args, **kwargs)


class Base:
    """A table: its columns (`col`) as class attributes, in order, named after them.

    `__table_args__` adds constraints and indexes. The class itself stands for its table in
    Core statements (`__clause_element__`); it is never instantiated.
    """

    metadata: ClassVar[MetaData] = MetaData(naming_convention=NAMING_CONVENTION)
    __tablename__: ClassVar[str]
    __table_args__: ClassVar[tuple[Any, ...]] = ()
    __table__: ClassVar[Table]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        columns: list[Column[Any]] = []
        for attribute, value in vars(cls).items():
            if isinstance(value, Column):
                if value.name is not None:
                    raise TypeError(
                        f"{cls.__name__}.{attribute}: a column takes its attribute's name"
                    )
                value.name = value.key = attribute
                columns.append(value)
        cls.__table__ = Table(cls.__tablename__, cls.metadata, *columns, *cls.__table_args__)

    @classmethod
    def __clause_element__(cls) -> Table:
        return cls.__table__


class HostRow(Base):
    """A compute/volume/network host and its physical resources."""

    __tablename__ = "hosts"

    id = col(Integer, primary_key=True)
    name = col(String(NAME), nullable=False, unique=True)
    availability_zone = col(String(NAME), nullable=False, default="nova")
    state = col(String(16), nullable=False, default="NotReady")  # Ready | NotReady
    schedulable = col(Boolean, nullable=False, default=True)
    services: ColumnClause[list[str]] = col(JSON, nullable=False, default=list)
    vcpus = col(Integer, nullable=False, default=0)
    memory_mb = col(Integer, nullable=False, default=0)
    disk_gb = col(Integer, nullable=False, default=0)
    vcpu_ratio = col(Float, nullable=False, default=1.0)
    memory_ratio = col(Float, nullable=False, default=1.0)
    disk_ratio = col(Float, nullable=False, default=1.0)
    # Bumped by every claim and release on the host, so a cached view can tell it is stale.
    generation = col(Integer, nullable=False, default=0)
    updated_at = col(DateTime(timezone=True), nullable=False, default=utcnow)


class Allocation(Base):
    """An amount of one resource class held on a host by one consumer (placement-style)."""

    __tablename__ = "allocations"
    __table_args__ = (
        UniqueConstraint("consumer_uid", "resource_class"),
        # Usage per host is a sum over this index; the amount rides along so SQLite
        # answers from the index alone.
        Index("ix_allocations_host_usage", "host_id", "resource_class", "amount"),
    )

    id = col(Integer, primary_key=True)
    consumer_uid = col(String(UID), nullable=False)
    consumer_kind = col(String(63), nullable=False)
    consumer_namespace = col(String(NAME), nullable=False, default="")
    consumer_name = col(String(NAME), nullable=False)
    host_id = col(Integer, ForeignKey("hosts.id", ondelete="RESTRICT"), nullable=False)
    resource_class = col(String(32), nullable=False)
    amount = col(Integer, nullable=False)
    created_at = col(DateTime(timezone=True), nullable=False, default=utcnow)


class InstanceRow(Base):
    """A scheduled Instance: where it runs and in which server group (extended later)."""

    __tablename__ = "instances"

    uid = col(String(UID), primary_key=True)
    namespace = col(String(NAME), nullable=False)
    name = col(String(NAME), nullable=False)
    host_id = col(Integer, ForeignKey("hosts.id", ondelete="RESTRICT"), index=True)
    server_group_uid = col(String(UID), ForeignKey("server_groups.uid", ondelete="SET NULL"))
    created_at = col(DateTime(timezone=True), nullable=False, default=utcnow)


class ServerGroupRow(Base):
    """A ServerGroup; its row is locked while a member is claimed, so policies hold."""

    __tablename__ = "server_groups"

    uid = col(String(UID), primary_key=True)
    namespace = col(String(NAME), nullable=False)
    name = col(String(NAME), nullable=False)
    policy = col(String(32), nullable=False)


class ServerGroupMember(Base):
    """A consumer placed in a server group, with the host it landed on."""

    __tablename__ = "server_group_members"
    __table_args__ = (Index("ix_server_group_members_group_host", "group_uid", "host_id"),)

    group_uid = col(
        String(UID), ForeignKey("server_groups.uid", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own too: release() finds memberships by consumer alone.
    consumer_uid = col(String(UID), primary_key=True, index=True)
    host_id = col(Integer, ForeignKey("hosts.id", ondelete="RESTRICT"), nullable=False)


class NetworkRow(Base):
    """A tenant Network; fixed IPs and its segment id hang off it."""

    __tablename__ = "networks"

    uid = col(String(UID), primary_key=True)
    namespace = col(String(NAME), nullable=False)
    name = col(String(NAME), nullable=False)
    mode = col(String(16), nullable=False)  # flat | vlan | vxlan
    cidr = col(String(64), nullable=False)
    # Held by the gateway host's bridge, never given to a NIC (revision 0002).
    gateway = col(String(64))
    # The network host running DHCP, router and floating IPs (revision 0002).
    gateway_host = col(String(NAME))


class FixedIp(Base):
    """An address of a network, leased to a consumer (an instance's NIC) or free."""

    __tablename__ = "fixed_ips"
    # One NIC per (network, instance): the Instance CRD refuses a network listed twice.
    __table_args__ = (
        UniqueConstraint("network_uid", "address"),
        UniqueConstraint("network_uid", "consumer_uid"),
    )

    id = col(Integer, primary_key=True)
    network_uid = col(String(UID), ForeignKey("networks.uid", ondelete="CASCADE"), nullable=False)
    address = col(String(64), nullable=False)
    mac = col(String(17), unique=True)
    consumer_uid = col(String(UID), index=True)


class SegmentId(Base):
    """A VLAN id or VXLAN VNI held by one network."""

    __tablename__ = "segment_ids"

    kind = col(String(16), primary_key=True)  # vlan | vxlan
    value = col(Integer, primary_key=True)
    network_uid = col(
        String(UID), ForeignKey("networks.uid", ondelete="CASCADE"), nullable=False, unique=True
    )


class FloatingIp(Base):
    """An address of the external pool mapped 1:1 to one fixed IP (revision 0002)."""

    __tablename__ = "floating_ips"
    __table_args__ = (UniqueConstraint("network_uid", "consumer_uid"),)

    address = col(String(64), primary_key=True)
    network_uid = col(String(UID), ForeignKey("networks.uid", ondelete="CASCADE"), nullable=False)
    consumer_uid = col(String(UID), nullable=False, index=True)
    fixed_address = col(String(64), nullable=False)


class VolumeTargetRow(Base):
    """Where a volume is exported: an iSCSI target or an AoE shelf/slot on a host.

    Each volume gets a target of its own (per-target CHAP and ACLs isolate tenants), so
    an IQN is unique, and (iqn, lun) with it.
    """

    __tablename__ = "volume_targets"
    __table_args__ = (UniqueConstraint("shelf", "slot"),)

    volume_uid = col(String(UID), primary_key=True)
    host_id = col(Integer, ForeignKey("hosts.id", ondelete="RESTRICT"), nullable=False)
    protocol = col(String(8), nullable=False)  # iscsi | aoe
    iqn = col(String(223), unique=True)
    lun = col(Integer)
    shelf = col(Integer)
    slot = col(Integer)


class VolumeAttachmentRow(Base):
    """An Instance allowed to attach a volume; the volume's row is locked while one is added,
    so a volume that is not multi-attach never gets two."""

    __tablename__ = "volume_attachments"

    volume_uid = col(
        String(UID), ForeignKey("volume_targets.volume_uid", ondelete="CASCADE"), primary_key=True
    )
    # Indexed on its own too: an Instance's release finds its attachments by it alone.
    instance_uid = col(String(UID), primary_key=True, index=True)
    instance_namespace = col(String(NAME), nullable=False)
    instance_name = col(String(NAME), nullable=False)
    host_id = col(Integer, ForeignKey("hosts.id", ondelete="RESTRICT"), nullable=False)
    created_at = col(DateTime(timezone=True), nullable=False, default=utcnow)


class User(Base):
    """A user of the database auth backend; `name` is the Kubernetes user name bound by RBAC."""

    __tablename__ = "users"

    id = col(Integer, primary_key=True)
    name = col(String(NAME), nullable=False, unique=True)
    email = col(String(254), nullable=False, default="")
    # An argon2id PHC string; None: the user cannot log in with a password.
    password_hash = col(String(255))
    enabled = col(Boolean, nullable=False, default=True)
    created_at = col(DateTime(timezone=True), nullable=False, default=utcnow)


class AuthProject(Base):
    """A project of the database auth backend: the name of a Project resource."""

    __tablename__ = "projects"

    id = col(Integer, primary_key=True)
    name = col(String(63), nullable=False, unique=True)
    description = col(String(1024), nullable=False, default="")
    created_at = col(DateTime(timezone=True), nullable=False, default=utcnow)


class RoleRow(Base):
    """A project role (admin, member, reader), each bound to one kubenova ClusterRole."""

    __tablename__ = "roles"

    name = col(String(63), primary_key=True)
    description = col(String(1024), nullable=False, default="")


class Membership(Base):
    """A user holding a role in a project."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_project", "project_id"),)

    user_id = col(Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    project_id = col(Integer, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True)
    role = col(String(63), ForeignKey("roles.name", ondelete="RESTRICT"), primary_key=True)


class QuotaLimit(Base):
    """A Project's quota, copied from its spec; its row is locked while a charge is checked."""

    __tablename__ = "quota_limits"

    namespace = col(String(NAME), primary_key=True)
    project = col(String(NAME), nullable=False)
    # None: unlimited.
    instances = col(Integer)
    vcpus = col(Integer)
    memory_mib = col(Integer)
    volumes = col(Integer)
    volume_gib = col(Integer)
    floating_ips = col(Integer)


class QuotaCharge(Base):
    """What one consumer counts against its namespace's quota.

    Written by the consumer's claim, in the claim's transaction, which re-checks the
    quota; removed when the claim is released.
    """

    __tablename__ = "quota_charges"
    __table_args__ = (Index("ix_quota_charges_namespace", "namespace"),)

    consumer_uid = col(String(UID), primary_key=True)
    consumer_kind = col(String(63), nullable=False)
    namespace = col(String(NAME), nullable=False)
    name = col(String(NAME), nullable=False)
    instances = col(Integer, nullable=False, default=0)
    vcpus = col(Integer, nullable=False, default=0)
    memory_mib = col(Integer, nullable=False, default=0)
    volumes = col(Integer, nullable=False, default=0)
    volume_gib = col(Integer, nullable=False, default=0)
    floating_ips = col(Integer, nullable=False, default=0)
    created_at = col(DateTime(timezone=True), nullable=False, default=utcnow)
