"""auth backend tables (users, projects, roles, memberships) and project quotas

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# The roles a project member can hold; each is bound to the ClusterRole of the same name
# (kubenova-project-<role>) that the operator keeps.
ROLES = (
    ("admin", "Manage every kubenova resource of the project, networks included."),
    ("member", "Run Instances, Volumes and ServerGroups; read Networks."),
    ("reader", "Read the project's kubenova resources."),
)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )
    op.bulk_insert(roles, [{"name": name, "description": text} for name, text in ROLES])
    op.create_table(
        "memberships",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=63), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_memberships_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role"], ["roles.name"], name=op.f("fk_memberships_role_roles"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("user_id", "project_id", "role", name=op.f("pk_memberships")),
    )
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.create_index("ix_memberships_project", ["project_id"], unique=False)

    op.create_table(
        "quota_limits",
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("project", sa.String(length=253), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=True),
        sa.Column("vcpus", sa.Integer(), nullable=True),
        sa.Column("memory_mib", sa.Integer(), nullable=True),
        sa.Column("volumes", sa.Integer(), nullable=True),
        sa.Column("volume_gib", sa.Integer(), nullable=True),
        sa.Column("floating_ips", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("namespace", name=op.f("pk_quota_limits")),
    )
    op.create_table(
        "quota_charges",
        sa.Column("consumer_uid", sa.String(length=64), nullable=False),
        sa.Column("consumer_kind", sa.String(length=63), nullable=False),
        sa.Column("namespace", sa.String(length=253), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.Column("volumes", sa.Integer(), nullable=False),
        sa.Column("volume_gib", sa.Integer(), nullable=False),
        sa.Column("floating_ips", sa.Integer(), nullable=False),
        sa.Column("claimed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer_uid", name=op.f("pk_quota_charges")),
    )
    with op.batch_alter_table("quota_charges", schema=None) as batch_op:
        batch_op.create_index("ix_quota_charges_namespace", ["namespace"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quota_charges", schema=None) as batch_op:
        batch_op.drop_index("ix_quota_charges_namespace")
    op.drop_table("quota_charges")
    op.drop_table("quota_limits")
    with op.batch_alter_table("memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_memberships_project")
    op.drop_table("memberships")
    op.drop_table("roles")
    op.drop_table("projects")
    op.drop_table("users")
