"""a MAC on every audit entry, keyed outside the database

Revision ID: 0006_audit_anchor
Revises: 0005_application_attachments

Entries already in the table keep no MAC ("unkeyed"): their hashes were made without a key, and no key can vouch
for them now. init-db then appends an `audit.keyed` entry (federation/audit/chain.py) from which every entry is
keyed, and whose MAC covers the hash of everything before it.
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_audit_anchor"
down_revision = "0005_application_attachments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mac", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_column("mac")
