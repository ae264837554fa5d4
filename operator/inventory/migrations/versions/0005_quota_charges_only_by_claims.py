"""quota charges are written only by claims: no admission reservations, no `claimed` flag

The admission webhook used to reserve quota (`claimed` false) for the claim to confirm.
A forged AdmissionReview could fill a project's quota that way, so the webhook now only
reads; every charge is a claim's. Reservations still unconfirmed are dropped: their
objects are charged again by their claims.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM quota_charges WHERE NOT claimed")
    with op.batch_alter_table("quota_charges", schema=None) as batch_op:
        batch_op.drop_column("claimed")


def downgrade() -> None:
    with op.batch_alter_table("quota_charges", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("claimed", sa.Boolean(), nullable=False, server_default=sa.true())
        )
