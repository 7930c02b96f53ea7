"""Alembic environment: migrations run against the app's own engine and metadata (python cli.py init-db)."""
from __future__ import annotations

from alembic import context

from federation.extensions import db


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through 'python cli.py init-db', which supplies the connection")
    context.configure(
        connection=connection,
        target_metadata=db.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
