"""secret ballots: ballots, their trustees' public keys, the frozen roll and the board of encrypted ballots

The roll and the board are WITHOUT ROWID on SQLite and carry no timestamps, so neither the row order nor a clock
ties a voter to a ballot (federation/ballots/models.py).

Revision ID: 0008_ballots
Revises: 0007_accounts
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_ballots"
down_revision = "0007_accounts"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ballots",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("choose_min", sa.Integer(), nullable=False),
        sa.Column("choose_max", sa.Integer(), nullable=False),
        sa.Column("electorate", sa.Text(), nullable=False),
        sa.Column("opens_at", TS, nullable=False),
        sa.Column("closes_at", TS, nullable=False),
        sa.Column("quorum", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("encrypted_tally", sa.Text(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("opened_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("tallied_at", TS, nullable=True),
        sa.Column("reminded_at", TS, nullable=True),
        sa.CheckConstraint("kind IN ('election', 'referendum', 'strike')", name=op.f("ck_ballots_kind")),
        sa.CheckConstraint("status IN ('draft', 'open', 'closed', 'tallied')", name=op.f("ck_ballots_status")),
    )
    op.create_index("ix_ballots_tenant_created", "ballots", ["tenant_id", "created_at"])
    op.create_index("ix_ballots_status_closes", "ballots", ["status", "closes_at"])
    op.create_table(
        "ballot_trustees",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ballot_id", sa.Integer(), sa.ForeignKey("ballots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False),
        sa.Column("key_proof", sa.Text(), nullable=False),
        sa.Column("decryption", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_ballot_trustees_ballot_id", "ballot_trustees", ["ballot_id"])
    op.create_table(
        "ballot_voters",
        sa.Column("ballot_id", sa.Integer(), sa.ForeignKey("ballots.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("voted", sa.Boolean(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ballot_votes",
        sa.Column("slot", sa.String(64), primary_key=True),
        sa.Column("ballot_id", sa.Integer(), sa.ForeignKey("ballots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("receipt", sa.String(64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_ballot_votes_ballot_id", "ballot_votes", ["ballot_id"])
    op.create_index("uq_ballot_votes_receipt", "ballot_votes", ["ballot_id", "receipt"], unique=True)


def downgrade() -> None:
    op.drop_table("ballot_votes")
    op.drop_table("ballot_voters")
    op.drop_table("ballot_trustees")
    op.drop_index("ix_ballots_status_closes", "ballots")
    op.drop_index("ix_ballots_tenant_created", "ballots")
    op.drop_table("ballots")
