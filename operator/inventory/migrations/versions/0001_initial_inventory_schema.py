"""initial inventory schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 07:30:41.383958
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("availability_zone", sa.String(length=253), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("schedulable", sa.Boolean(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("disk_gb", sa.Integer(), nullable=False),
        sa.Column("vcpu_ratio", sa.Float(), nullable=False),
        sa.Column("memory_ratio", sa.Float(), nullable=False),
        sa.Column("disk_ratio", sa.Float(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hosts")),
        sa.UniqueConstraint("name", name=op.f("uq_hosts_name")),
    )
    op.create_table(
        "networks",
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("cidr", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_networks")),
    )
    op.create_table(
        "server_groups",
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("policy", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_server_groups")),
    )
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consumer_uid", sa.String(length=64), nullable=False),
        sa.Column("consumer_kind", sa.String(length=63), nullable=False),
        sa.Column("consumer_namespace", sa.String(length=253), nullable=False),
        sa.Column("consumer_name", sa.String(length=253), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("resource_class", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_allocations_host_id_hosts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
        sa.UniqueConstraint(
            "consumer_uid",
            "resource_class",
            name=op.f("uq_allocations_consumer_uid_resource_class"),
        ),
    )
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_allocations_host_usage", ["host_id", "resource_class", "amount"], unique=False
        )

    op.create_table(
        "fixed_ips",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("network_uid", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("mac", sa.String(length=17), nullable=True),
        sa.Column("consumer_uid", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["network_uid"],
            ["networks.uid"],
            name=op.f("fk_fixed_ips_network_uid_networks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fixed_ips")),
        sa.UniqueConstraint("mac", name=op.f("uq_fixed_ips_mac")),
        sa.UniqueConstraint(
            "network_uid", "address", name=op.f("uq_fixed_ips_network_uid_address")
        ),
    )
    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_fixed_ips_consumer_uid"), ["consumer_uid"], unique=False
        )

    op.create_table(
        "instances",
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=True),
        sa.Column("server_group_uid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_instances_host_id_hosts"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["server_group_uid"],
            ["server_groups.uid"],
            name=op.f("fk_instances_server_group_uid_server_groups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("uid", name=op.f("pk_instances")),
    )
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_instances_host_id"), ["host_id"], unique=False)

    op.create_table(
        "segment_ids",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("network_uid", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_uid"],
            ["networks.uid"],
            name=op.f("fk_segment_ids_network_uid_networks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("kind", "value", name=op.f("pk_segment_ids")),
        sa.UniqueConstraint("network_uid", name=op.f("uq_segment_ids_network_uid")),
    )
    op.create_table(
        "server_group_members",
        sa.Column("group_uid", sa.String(length=64), nullable=False),
        sa.Column("consumer_uid", sa.String(length=64), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_uid"],
            ["server_groups.uid"],
            name=op.f("fk_server_group_members_group_uid_server_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_server_group_members_host_id_hosts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("group_uid", "consumer_uid", name=op.f("pk_server_group_members")),
    )
    with op.batch_alter_table("server_group_members", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_server_group_members_consumer_uid"), ["consumer_uid"], unique=False
        )
        batch_op.create_index(
            "ix_server_group_members_group_host", ["group_uid", "host_id"], unique=False
        )

    op.create_table(
        "volume_targets",
        sa.Column("volume_uid", sa.String(length=64), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("protocol", sa.String(length=8), nullable=False),
        sa.Column("iqn", sa.String(length=223), nullable=True),
        sa.Column("lun", sa.Integer(), nullable=True),
        sa.Column("shelf", sa.Integer(), nullable=True),
        sa.Column("slot", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_volume_targets_host_id_hosts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("volume_uid", name=op.f("pk_volume_targets")),
        sa.UniqueConstraint("iqn", name=op.f("uq_volume_targets_iqn")),
        sa.UniqueConstraint("shelf", "slot", name=op.f("uq_volume_targets_shelf_slot")),
    )


def downgrade() -> None:
    op.drop_table("volume_targets")
    with op.batch_alter_table("server_group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_server_group_members_group_host")
        batch_op.drop_index(batch_op.f("ix_server_group_members_consumer_uid"))

    op.drop_table("server_group_members")
    op.drop_table("segment_ids")
    with op.batch_alter_table("instances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_instances_host_id"))

    op.drop_table("instances")
    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fixed_ips_consumer_uid"))

    op.drop_table("fixed_ips")
    with op.batch_alter_table("allocations", schema=None) as batch_op:
        batch_op.drop_index("ix_allocations_host_usage")

    op.drop_table("allocations")
    op.drop_table("server_groups")
    op.drop_table("networks")
    op.drop_table("hosts")
