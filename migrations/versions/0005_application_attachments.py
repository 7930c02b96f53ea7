"""files attached to applications (会葬礼状, 診断書)

Revision ID: 0005_application_attachments
Revises: 0004
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import federation.extensions

revision = "0005_application_attachments"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "application_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("application_id", sa.Integer(), nullable=False),
        sa.Column("storage_key", sa.String(length=100), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=50), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.Column("created_at", federation.extensions.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["application_id"], ["applications.id"],
                                name=op.f("fk_application_attachments_application_id_applications"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"],
                                name=op.f("fk_application_attachments_tenant_id_tenants"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"],
                                name=op.f("fk_application_attachments_uploaded_by_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_attachments")),
    )
    op.create_index("ix_application_attachments_application", "application_attachments", ["application_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_application_attachments_application", table_name="application_attachments")
    op.drop_table("application_attachments")
