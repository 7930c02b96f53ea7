"""upward reports: a federation's report requests and every version of each union's answer

Revision ID: 0012_reports
Revises: 0011_two_way
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_reports"
down_revision = "0011_two_way"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "report_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.Column("audience", sa.Text(), nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_report_requests_tenant", "report_requests", ["tenant_id", "id"])
    op.create_table(
        "report_answers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("report_id", sa.Integer(), sa.ForeignKey("report_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("union_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("values", sa.Text(), nullable=False),
        sa.Column("submitted_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("submitted_at", TS, nullable=False),
        sa.UniqueConstraint("report_id", "union_id", "version", name="uq_report_answers_version"),
    )
    op.create_index("ix_report_answers_union", "report_answers", ["union_id", "report_id"])


def downgrade() -> None:
    op.drop_index("ix_report_answers_union", table_name="report_answers")
    op.drop_table("report_answers")
    op.drop_index("ix_report_requests_tenant", table_name="report_requests")
    op.drop_table("report_requests")
