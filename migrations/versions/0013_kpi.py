"""KPI board: the roster size a union's admin sets (組合員名簿の人数), against which registrations are measured

Revision ID: 0013_kpi
Revises: 0012_reports
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_kpi"
down_revision = "0012_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("roster_size", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants", schema=None) as batch_op:
        batch_op.drop_column("roster_size")
