"""Tenancy: tenants, org-unit trees, users, role grants and affiliations (SPEC "Tenancy")."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from federation.extensions import UTCDateTime, db, utcnow
from tenants.kana import kana_sort_key
from tenants.login_ids import login_key

TENANT_KINDS = ("platform", "federation", "union")
UNIT_KINDS = {"federation": ("block", "council"), "union": ("branch", "workplace")}
# Which kind of unit may sit under which; None is the tenant's root.
UNIT_PARENTS = {"block": (None,), "council": ("block",), "branch": (None,), "workplace": ("branch",)}
USER_STATUSES = ("invited", "active", "suspended")
CASCADE_STATES = ("opted_in", "opted_out")
AFFILIATION_STATES = ("pending", "active", "ended")


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # The reading of the name (よみ), as for members; unions are listed in 50-on order of it (tenants/ordering.py).
    name_kana: Mapped[str | None] = mapped_column(String(200))
    # kana_sort_key of the reading, or of the name while there is none: kept by the validator below.
    kana_key: Mapped[str] = mapped_column(String(200), default="", server_default="")
    kind: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped whenever what this tenant's members see in their inboxes changes (a delivery, a retraction, an edit):
    # with users.inbox_version and the policy version it keys the inbox cache (federation/notices/inbox_cache.py).
    inbox_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # How many people the union counts as its members on paper (組合員名簿), set by its admin: the KPI board measures
    # registrations against it (federation/kpi). None until set.
    roster_size: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("kind IN ('platform', 'federation', 'union')", name="kind"),)

    @validates("name", "name_kana")
    def _keyed(self, field: str, value: str | None) -> str | None:
        reading = value if field == "name_kana" else self.name_kana
        name = value if field == "name" else self.name
        self.kana_key = kana_sort_key(reading or name or "")
        return value

    def __repr__(self) -> str:
        return f"<Tenant {self.slug} ({self.kind})>"


class OrgUnit(db.Model):
    """A node of a tenant's tree: block → council (federation), branch → workplace (union).

    `path` is the materialized chain of ids ("/3/17/"), so "this unit and everything under it" is one prefix match.
    """

    __tablename__ = "org_units"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    prefecture: Mapped[str | None] = mapped_column(String(2))
    # Order among siblings (tenants/ordering.py): a council's prefecture code, a block's region from north to south
    # (tenants/regions.py), or what its creator gave; None lists it after those, in the order of creation.
    position: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(400), default="/")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    tenant: Mapped[Tenant] = relationship()

    __table_args__ = (
        CheckConstraint("kind IN ('block', 'council', 'branch', 'workplace')", name="kind"),
        Index("ix_org_units_tenant_path", "tenant_id", "path"),
    )


class User(db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    login_id: Mapped[str] = mapped_column(String(254))
    # The case-folded login id (tenants/login_ids.py): unique per tenant, what sign-in and lookups match.
    login_key: Mapped[str] = mapped_column(String(254))
    display_name: Mapped[str] = mapped_column(String(100))
    name_kana: Mapped[str] = mapped_column(String(100))
    kana_key: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("org_units.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped when this user's own view of their inbox changes (they read or react, they move to another unit).
    inbox_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    tenant: Mapped[Tenant] = relationship(lazy="joined")
    # Joined: the unit's path scopes the member's inbox on every request, so it comes with the user.
    unit: Mapped[OrgUnit | None] = relationship(lazy="joined")

    __table_args__ = (
        UniqueConstraint("tenant_id", "login_id", name="uq_users_tenant_login"),
        Index("uq_users_tenant_login_key", "tenant_id", "login_key", unique=True),
        CheckConstraint("status IN ('invited', 'active', 'suspended')", name="status"),
        Index("ix_users_tenant_status_kana", "tenant_id", "status", "kana_key"),
        Index("ix_users_unit", "unit_id"),
    )

    @validates("login_id")
    def _keyed(self, _name: str, value: str) -> str:
        self.login_key = login_key(value)
        return value

    @property
    def subject(self) -> str:
        return f"user:{self.tenant.slug}/{self.login_id}"

    @property
    def unit_path(self) -> str | None:
        """The materialised path of the member's unit (what scopes their inbox), None outside any unit."""
        return self.unit.path if self.unit is not None else None


class RoleGrant(db.Model):
    """A role held by a user in their home tenant (the Casbin domain). `member` of a union is never granted:
    it follows from being an active user of that union."""

    __tablename__ = "role_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(40))
    # unit_id 0 means "the whole tenant": a real value keeps the uniqueness constraint honest on every database.
    unit_id: Mapped[int] = mapped_column(Integer, default=0)
    granted_by: Mapped[str] = mapped_column(String(300))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()

    __table_args__ = (
        UniqueConstraint("user_id", "role", "unit_id", name="uq_role_grants_user_role_unit"),
        Index("ix_role_grants_tenant_role", "tenant_id", "role"),
    )


class Affiliation(db.Model):
    """A union's membership of a federation: invited by the federation, accepted by the union.

    `cascade` belongs to the union alone (F3): opted_in lets federation notices reach its members directly.
    """

    __tablename__ = "affiliations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    federation_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    union_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    council_id: Mapped[int] = mapped_column(ForeignKey("org_units.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    cascade: Mapped[str] = mapped_column(String(20), default="opted_out")
    invited_by: Mapped[str] = mapped_column(String(300))
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_by: Mapped[str | None] = mapped_column(String(300))
    cascade_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cascade_changed_by: Mapped[str | None] = mapped_column(String(300))

    federation: Mapped[Tenant] = relationship(foreign_keys=[federation_id])
    union: Mapped[Tenant] = relationship(foreign_keys=[union_id])
    council: Mapped[OrgUnit] = relationship()

    __table_args__ = (
        CheckConstraint("status IN ('pending', 'active', 'ended')", name="status"),
        CheckConstraint("cascade IN ('opted_in', 'opted_out')", name="cascade"),
        # A union is in at most one federation at a time; ended affiliations stay as history.
        Index("uq_affiliations_live_union", "union_id", unique=True,
              sqlite_where=text("status != 'ended'"), postgresql_where=text("status != 'ended'")),
    )
