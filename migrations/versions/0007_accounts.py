"""accounts without e-mail: one-time reset and activation links; login ids in their one form, matched by a key

A login id is kept as written once NFKC-normalised (ＥＭＰ００１ becomes EMP001); its case-folded key
(users.login_key) is what is unique in a tenant and what sign-in compares.

Joins the two 0006 branches (the audit anchor, push subscriptions per sign-in).

Revision ID: 0007_accounts
Revises: 0006_audit_anchor, 0006_push_subscription_session
"""
from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0007_accounts"
down_revision = ("0006_audit_anchor", "0006_push_subscription_session")
branch_labels = None
depends_on = None


def _normal(login_id: str) -> str:
    # The rule of tenants/login_ids.py at the time of this migration (kept here: a migration must not change
    # meaning when the code does). Ids with invisible characters are kept as they are, for an officer to fix.
    return unicodedata.normalize("NFKC", login_id)


def upgrade() -> None:
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("purpose", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_account_tokens_user_id", "account_tokens", ["user_id"])

    # Added in place, never by rebuilding `users` (SQLite's batch mode would drop the table, and with foreign keys on
    # that cascades to every role grant, session and receipt): NOT NULL with a default '' until filled.
    op.add_column("users", sa.Column("login_key", sa.String(254), nullable=False, server_default=""))

    conn = op.get_bind()
    rows = conn.execute(sa.text("SELECT id, tenant_id, login_id FROM users")).all()
    taken: dict[tuple[int, str], str] = {}
    updates = []
    for user_id, tenant_id, login_id in rows:
        normal = _normal(login_id)
        key = normal.casefold()
        other = taken.get((tenant_id, key))
        if other is not None:
            raise RuntimeError(f"login ids {other!r} and {login_id!r} of tenant {tenant_id} are the same account once "
                               "normalised (case, fullwidth forms): rename one, then migrate again")
        taken[(tenant_id, key)] = login_id
        updates.append({"login_id": normal, "key": key, "id": user_id})
    if updates:  # one executemany: a federation's 200,000 members in seconds, not a round trip each
        conn.execute(sa.text("UPDATE users SET login_id = :login_id, login_key = :key WHERE id = :id"), updates)

    # The key is what is unique (the old constraint on login_id stays: it follows from this one).
    op.create_index("uq_users_tenant_login_key", "users", ["tenant_id", "login_key"], unique=True)
    if conn.dialect.name != "sqlite":
        op.alter_column("users", "login_key", server_default=None)


def downgrade() -> None:
    op.drop_index("uq_users_tenant_login_key", table_name="users")
    op.drop_column("users", "login_key")
    op.drop_index("ix_account_tokens_user_id", table_name="account_tokens")
    op.drop_table("account_tokens")
