"""The KPI board's pages: a union's own board for its officers (with the roster form for its admin), and the
federation's board of its unions' counts. The same service and firewall path as the API (federation/kpi)."""
from __future__ import annotations

import unicodedata
from typing import Any

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError

from federation.access import access_tenant, tenant_by_slug
from federation.auth.service import require_caller
from federation.errors import APIError
from federation.firewall import firewall
from federation.kpi import service
from federation.kpi.schemas import KpiRosterIn
from federation.kpi.views import union_officer
from federation.privacy import SMALL_GROUP
from federation.web import bp


def _hours_text(hours: float | None) -> str | None:
    """Hours as people read them: under two days in hours, otherwise in days (one decimal)."""
    if hours is None:
        return None
    if hours < 48:
        return str(_("%(n)s hours", n=f"{hours:g}"))
    return str(_("%(n)s days", n=f"{round(hours / 24, 1):g}"))


def _union_page(slug: str, *, error: str | None = None, entered: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    tenant, subject = union_officer(slug)
    board = service.union_board(tenant)
    scale = max(board["registered"], board["roster"] or 0, 1)
    return render_template("web/kpi_union.html", tenant=tenant, board=board, scale=scale, hours=_hours_text,
                           may_roster=firewall.allowed(subject, tenant.slug, "kpi", "write"), error=error,
                           entered=entered, done=request.args.get("done")), status


@bp.route("/t/<slug>/kpi")
def kpi(slug: str):  # type: ignore[no-untyped-def]
    require_caller()
    tenant = tenant_by_slug(slug)
    if tenant is None or tenant.kind != "federation":
        return _union_page(slug)
    federation, subject = access_tenant(slug, "kpi", "read", kind="federation")
    board = service.federation_board(federation, subject)
    return render_template("web/kpi_federation.html", tenant=federation, board=board, hours=_hours_text,
                           small_group=SMALL_GROUP)


def _roster_value(raw: str) -> Any:
    text = unicodedata.normalize("NFKC", raw).strip().replace(",", "")
    if not text:
        return None
    # Longer than any roster: passed on as text, so the schema names the field (int() would refuse 5,000 digits).
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else text


@bp.route("/t/<slug>/kpi/roster", methods=["POST"])
def kpi_roster(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = union_officer(slug, "write")
    raw = request.form.get("roster_size", "")
    try:
        body = KpiRosterIn().load({"roster_size": _roster_value(raw)})
        service.set_roster(tenant, subject, body["roster_size"])
    except (APIError, ValidationError):
        return _union_page(slug, error="roster_size", entered=raw[:20], status=422)
    return redirect(url_for("web.kpi", slug=slug, done="roster") + "#roster")
