"""The one way to reach tenant data: resolve the tenant, ask the firewall, and load rows only through their tenant.

Every view and job goes through these helpers (STYLE: Zulip's access_stream_by_id, redash's get_by_id_and_org);
tests/test_tenant_scoping.py fails when a view queries a tenant-owned model without them.
"""
from __future__ import annotations

from typing import TypeVar

from flask import g
from sqlalchemy import select

from federation.auth.service import require_caller
from federation.extensions import db
from federation.firewall import Denied, Subject, firewall
from tenants.models import Tenant

M = TypeVar("M")


def tenant_by_slug(slug: str) -> Tenant | None:
    cache: dict[str, Tenant | None] = g.setdefault("tenants_by_slug", {})
    if slug not in cache:
        cache[slug] = db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    return cache[slug]


def access_tenant(slug: str, obj: str, act: str, *, kind: str | None = None) -> tuple[Tenant, Subject]:
    """The tenant named in the path, after the firewall allowed `act` on `obj` there for the caller.

    A tenant that does not exist, or of the wrong kind for the path, answers exactly like a denied one (404), so
    slugs cannot be probed.
    """
    subject = require_caller()
    tenant = tenant_by_slug(slug)
    if tenant is None or (kind is not None and tenant.kind != kind):
        raise Denied(404)
    firewall.require(subject, tenant.slug, obj, act)
    return tenant, subject


def get_owned(model: type[M], row_id: int, tenant: Tenant) -> M:
    """A row by id that belongs to `tenant`; 404 both when it is missing and when it is someone else's."""
    row = db.session.get(model, row_id)
    if row is None or getattr(row, "tenant_id", None) != tenant.id:
        raise Denied(404)
    return row
