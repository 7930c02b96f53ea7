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


# Plain ALTER TABLE on both databases (SQLite has had DROP COLUMN since 3.35). A batch operation would rebuild
# `tenants` on SQLite, and dropping the old table would cascade to every row that references a tenant.


def upgrade() -> None:
    op.add_column("tenants", sa.Column("roster_size", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("tenants", "roster_size")
