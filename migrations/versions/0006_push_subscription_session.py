"""push subscriptions remember the sign-in they were registered in, so signing out removes them

Revision ID: 0006_push_subscription_session
Revises: 0005_application_attachments
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_push_subscription_session"
down_revision = "0005_application_attachments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("session_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f("fk_push_subscriptions_session_id_auth_sessions"), "auth_sessions",
                                    ["session_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index(batch_op.f("ix_push_subscriptions_session_id"), ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("push_subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_subscriptions_session_id"))
        batch_op.drop_constraint(batch_op.f("fk_push_subscriptions_session_id_auth_sessions"), type_="foreignkey")
        batch_op.drop_column("session_id")
