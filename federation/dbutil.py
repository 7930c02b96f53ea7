"""Small portable pieces of SQL that SQLAlchemy spells per dialect."""
from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from federation.extensions import db

MAX_ROW_ID = 2**31 - 1  # ids are INTEGER columns: 32-bit on PostgreSQL


def get_row(model: type[Any], row_id: int) -> Any:
    """db.session.get for an id that came from outside (a form, a body): a number no id can be is no row, rather
    than a query the database refuses with an overflow."""
    if not 0 < row_id <= MAX_ROW_ID:
        return None
    return db.session.get(model, row_id)


def insert_ignore(model: type[Any]):  # type: ignore[no-untyped-def]
    """INSERT ... ON CONFLICT DO NOTHING for the current database; chain .values(...).returning(...)."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    return sqlite.insert(model).on_conflict_do_nothing()
