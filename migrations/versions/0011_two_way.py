"""Two-way: notice_comments (comments, questions, officers' replies, answers), notices.comments and
notices.officers_only

Existing notices take no comments and are not officers-only, exactly as they behaved before.

Revision ID: 0011_two_way
Revises: 0010_survey_announced
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_two_way"
down_revision = "0010_survey_announced"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("comments", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("officers_only", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "notice_comments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notice_id", sa.Integer(), sa.ForeignKey("notices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("author_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("parent_id", sa.Integer(), sa.ForeignKey("notice_comments.id", ondelete="CASCADE"),
                  nullable=True),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("consent_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("hidden_at", TS, nullable=True),
        sa.Column("hidden_by_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.CheckConstraint("kind IN ('comment', 'question', 'officer', 'answer')", name=op.f("ck_notice_comments_kind")),
    )
    op.create_index("ix_notice_comments_thread", "notice_comments", ["notice_id", "tenant_id", "id"])
    op.create_index("ix_notice_comments_parent", "notice_comments", ["parent_id"])


def downgrade() -> None:
    op.drop_table("notice_comments")
    with op.batch_alter_table("notices") as batch:
        batch.drop_column("officers_only")
        batch.drop_column("comments")
