"""network IPAM: gateways, gateway hosts, one NIC per instance and network, floating IPs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 08:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gateway", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("gateway_host", sa.String(length=253), nullable=True))

    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_fixed_ips_network_uid_consumer_uid"), ["network_uid", "consumer_uid"]
        )

    op.create_table(
        "floating_ips",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("network_uid", sa.String(length=64), nullable=False),
        sa.Column("consumer_uid", sa.String(length=64), nullable=False),
        sa.Column("fixed_address", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_uid"],
            ["networks.uid"],
            name=op.f("fk_floating_ips_network_uid_networks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_floating_ips")),
        sa.UniqueConstraint(
            "network_uid", "consumer_uid", name=op.f("uq_floating_ips_network_uid_consumer_uid")
        ),
    )
    with op.batch_alter_table("floating_ips", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_floating_ips_consumer_uid"), ["consumer_uid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("floating_ips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_floating_ips_consumer_uid"))
    op.drop_table("floating_ips")
    with op.batch_alter_table("fixed_ips", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_fixed_ips_network_uid_consumer_uid"), type_="unique"
        )
    with op.batch_alter_table("networks", schema=None) as batch_op:
        batch_op.drop_column("gateway_host")
        batch_op.drop_column("gateway")
