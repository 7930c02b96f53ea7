"""Schema management: Alembic migrations are the only way the schema is made or changed (init-db)."""
from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import select

from federation.config import PROJECT_ROOT
from federation.extensions import db
from federation.firewall.models import PolicyState

MIGRATIONS = PROJECT_ROOT / "migrations"


def alembic_config(connection=None) -> Config:  # type: ignore[no-untyped-def]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade() -> None:
    """Bring the schema to the latest migration, then make sure the rows every deployment needs exist."""
    with db.engine.begin() as connection:
        command.upgrade(alembic_config(connection), "heads")
    if db.session.execute(select(PolicyState.id).where(PolicyState.id == 1)).first() is None:
        db.session.add(PolicyState(id=1, version=1))
        db.session.commit()
    from federation.audit.chain import ensure_chain
    from tenants.service import ensure_platform

    # A keyed start of the audit chain and the policy files in force, before anything else is recorded.
    ensure_chain()
    ensure_platform()


def autogenerate(message: str) -> None:
    """For developers: write a new migration from the difference between the models and the database."""
    with db.engine.begin() as connection:
        command.revision(alembic_config(connection), message=message, autogenerate=True)
