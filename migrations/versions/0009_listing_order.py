"""the order unions and units are listed in: a union's reading (よみ) and a unit's position among its siblings

tenants.name_kana is the reading of the name, kana_key its 50-on sort key (of the name while there is no reading);
org_units.position orders siblings: a council's prefecture code, a block's region from north to south.

Revision ID: 0009_listing_order
Revises: 0008_ballots
"""
from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0009_listing_order"
down_revision = "0008_ballots"
branch_labels = None
depends_on = None

# The rules of tenants/kana.py and tenants/regions.py at the time of this migration (kept here: a migration must not
# change meaning when the code does).
REGIONS = (("北海道", 1), ("東北", 2), ("関東", 3), ("首都圏", 3), ("東海", 4), ("中部", 4), ("北陸", 5),
           ("信越", 5), ("近畿", 6), ("関西", 6), ("中国", 7), ("四国", 8), ("九州", 9), ("沖縄", 9))


def _kana_key(text: str) -> str:
    out = []
    for ch in " ".join(unicodedata.normalize("NFKC", text).split()):
        code = ord(ch)
        if 0x30A1 <= code <= 0x30F6:
            out.append(chr(code - 0x60))
        elif ch not in " \u3000・":
            out.append(ch)
    return "".join(out)


def _block_rank(name: str) -> int | None:
    return next((rank for region, rank in REGIONS if name.strip().startswith(region)), None)


def upgrade() -> None:
    # Added in place (not by a batch rebuild, which on SQLite would cascade-delete every row that references tenants).
    op.add_column("tenants", sa.Column("name_kana", sa.String(200), nullable=True))
    op.add_column("tenants", sa.Column("kana_key", sa.String(200), nullable=False, server_default=""))
    op.add_column("org_units", sa.Column("position", sa.Integer(), nullable=True))

    conn = op.get_bind()
    keys = [{"key": _kana_key(name), "id": tenant_id}
            for tenant_id, name in conn.execute(sa.text("SELECT id, name FROM tenants")).all()]
    if keys:
        conn.execute(sa.text("UPDATE tenants SET kana_key = :key WHERE id = :id"), keys)
    positions = []
    for unit_id, kind, name, prefecture in conn.execute(sa.text(
            "SELECT id, kind, name, prefecture FROM org_units WHERE kind IN ('block', 'council')")).all():
        if kind == "council":
            position = int(prefecture) if prefecture and prefecture.isdigit() else None
        else:
            position = _block_rank(name)
        if position is not None:
            positions.append({"position": position, "id": unit_id})
    if positions:
        conn.execute(sa.text("UPDATE org_units SET position = :position WHERE id = :id"), positions)


def downgrade() -> None:
    op.drop_column("org_units", "position")
    op.drop_column("tenants", "kana_key")
    op.drop_column("tenants", "name_kana")
