"""volume attachments: which Instances may attach which volume

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "volume_attachments",
        sa.Column("volume_uid", sa.String(length=64), nullable=False),
        sa.Column("instance_uid", sa.String(length=64), nullable=False),
        sa.Column("instance_namespace", sa.String(length=253), nullable=False),
        sa.Column("instance_name", sa.String(length=253), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["host_id"],
            ["hosts.id"],
            name=op.f("fk_volume_attachments_host_id_hosts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["volume_uid"],
            ["volume_targets.volume_uid"],
            name=op.f("fk_volume_attachments_volume_uid_volume_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("volume_uid", "instance_uid", name=op.f("pk_volume_attachments")),
    )
    with op.batch_alter_table("volume_attachments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_volume_attachments_instance_uid"), ["instance_uid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("volume_attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_volume_attachments_instance_uid"))
    op.drop_table("volume_attachments")
