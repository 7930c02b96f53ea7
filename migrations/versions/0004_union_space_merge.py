"""join the two union-space branches (documents and surveys; applications and invitations)

Revision ID: 0004
Revises: 0003_documents_surveys, 0003_applications_invitations
"""
from __future__ import annotations

revision = "0004"
down_revision = ("0003_documents_surveys", "0003_applications_invitations")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
