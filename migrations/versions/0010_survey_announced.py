"""surveys.announced_at: when the push saying a survey is open went out (claimed once, by one scheduler)

Surveys that exist already count as announced: an upgrade must not push every old survey to every member.

Revision ID: 0010_survey_announced
Revises: 0009_listing_order
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_survey_announced"
down_revision = "0009_listing_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("surveys") as batch:
        batch.add_column(sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE surveys SET announced_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("surveys") as batch:
        batch.drop_column("announced_at")
