"""Small portable pieces of SQL that SQLAlchemy spells per dialect."""
from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from federation.extensions import db


def insert_ignore(model: type[Any]):  # type: ignore[no-untyped-def]
    """INSERT ... ON CONFLICT DO NOTHING for the current database; chain .values(...).returning(...)."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model).on_conflict_do_nothing()
    return sqlite.insert(model).on_conflict_do_nothing()
