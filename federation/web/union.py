"""Pages for running a tenant's own space: members in 50-on order, org units, roles, the union's link to its
federation (the cascade opt-in) and the federation notices waiting to be relayed."""
from __future__ import annotations

from flask import g, redirect, render_template, request, url_for

from federation.access import access_tenant
from federation.errors import APIError
from federation.extensions import db
from federation.firewall import firewall
from federation.firewall.templates import GRANTABLE, UNIT_SCOPED
from federation.notices import service as notice_service
from federation.notices.reads import received_notices
from federation.pagination import decode_cursor, encode_cursor
from federation.web import bp
from tenants import service as tenant_service
from tenants.reads import units_by_id

MEMBERS_PAGE = 50


@bp.route("/t/<slug>/members")
def members(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "members", "read")
    q = (request.args.get("q") or "").strip()[:100] or None
    after = decode_cursor(request.args.get("cursor"), (str, int))
    rows = tenant_service.members_page(tenant, limit=MEMBERS_PAGE + 1, after=after, q=q)  # type: ignore[arg-type]
    more = len(rows) > MEMBERS_PAGE
    rows = rows[:MEMBERS_PAGE]
    next_cursor = encode_cursor(rows[-1].kana_key, rows[-1].id) if more else None
    return render_template("web/members.html", tenant=tenant, members=rows, q=q or "", next_cursor=next_cursor,
                           units=units_by_id(tenant), first_page=after is None,
                           may_write=firewall.allowed(subject, tenant.slug, "members", "write"))


@bp.route("/t/<slug>/units", methods=["GET", "POST"])
def units(slug: str):  # type: ignore[no-untyped-def]
    if request.method == "POST":
        tenant, subject = access_tenant(slug, "units", "write")
        form = request.form
        try:
            parent = int(form["parent_id"]) if form.get("parent_id") else None
        except ValueError:
            parent = None
        try:
            tenant_service.create_unit(tenant, name=form.get("name", "").strip()[:200], kind=form.get("kind", ""),
                                       parent_id=parent, prefecture=form.get("prefecture") or None,
                                       actor=subject.key)
        except APIError as exc:
            db.session.rollback()
            return _units_page(tenant, subject, error=exc, form=form), 422
        return redirect(url_for("web.units", slug=slug, done="created"))
    tenant, subject = access_tenant(slug, "units", "read")
    return _units_page(tenant, subject)


def _units_page(tenant, subject, *, error: APIError | None = None, form=None):  # type: ignore[no-untyped-def]
    rows = tenant_service.units_of(tenant)
    depth = {u.id: u.path.count("/") - 2 for u in rows}
    return render_template("web/units.html", tenant=tenant, units=rows, depth=depth, error=error, form=form or {},
                           may_write=firewall.allowed(subject, tenant.slug, "units", "write"),
                           kinds={"federation": ("block", "council"), "union": ("branch", "workplace")}
                           .get(tenant.kind, ()), done=request.args.get("done"))


@bp.route("/t/<slug>/roles", methods=["GET", "POST"])
def roles(slug: str):  # type: ignore[no-untyped-def]
    if request.method == "POST":
        tenant, subject = access_tenant(slug, "roles", "manage")
        form = request.form
        try:
            unit_id = int(form["unit_id"]) if form.get("unit_id") else None
        except ValueError:
            unit_id = None
        try:
            user = tenant_service.user_in(tenant, form.get("login_id", "").strip())
            if form.get("op") == "revoke":
                if not tenant_service.revoke_role(tenant, user, form.get("role", ""), unit_id, actor=subject.key):
                    raise APIError(422, "role: not held", fields={"role": ["not held"]})
            else:
                tenant_service.grant_role(tenant, user, form.get("role", ""), unit_id, actor=subject.key)
        except APIError as exc:
            db.session.rollback()
            return _roles_page(tenant, subject, error=exc), 422
        return redirect(url_for("web.roles", slug=slug, done=form.get("op") or "grant"))
    tenant, subject = access_tenant(slug, "roles", "read")
    return _roles_page(tenant, subject)


def _roles_page(tenant, subject, *, error: APIError | None = None):  # type: ignore[no-untyped-def]
    grants = tenant_service.grants_of(tenant)
    return render_template("web/roles.html", tenant=tenant, grants=grants, error=error,
                           grantable=GRANTABLE.get(tenant.kind, ()), unit_scoped=UNIT_SCOPED,
                           units=units_by_id(tenant),
                           may_manage=firewall.allowed(subject, tenant.slug, "roles", "manage"),
                           done=request.args.get("done"))


@bp.route("/t/<slug>/cascade", methods=["GET", "POST"])
def cascade(slug: str):  # type: ignore[no-untyped-def]
    if request.method == "POST":
        op = request.form.get("op")
        try:
            if op == "accept":
                tenant, subject = access_tenant(slug, "affiliation", "write", kind="union")
                tenant_service.accept(tenant, actor=subject.key)
            else:
                # F3: the union's own cascade write, which no federation role holds.
                tenant, subject = access_tenant(slug, "cascade", "write", kind="union")
                value = request.form.get("cascade")
                if value not in ("opted_in", "opted_out"):
                    raise APIError(422, "cascade: opted_in or opted_out", fields={"cascade": ["unknown"]})
                tenant_service.set_cascade(tenant, value, actor=subject.key)
        except APIError as exc:
            if exc.status == 401:
                raise
            db.session.rollback()
            tenant, subject = access_tenant(slug, "affiliation", "read", kind="union")
            return _cascade_page(tenant, subject, error=exc), exc.status
        return redirect(url_for("web.cascade", slug=slug, done=op or "cascade"))
    tenant, subject = access_tenant(slug, "affiliation", "read", kind="union")
    return _cascade_page(tenant, subject)


def _cascade_page(tenant, subject, *, error: APIError | None = None):  # type: ignore[no-untyped-def]
    aff = tenant_service.live_affiliation(tenant)
    return render_template("web/cascade.html", tenant=tenant, aff=aff, error=error,
                           may_change=firewall.allowed(subject, tenant.slug, "cascade", "write"),
                           may_accept=firewall.allowed(subject, tenant.slug, "affiliation", "write"),
                           done=request.args.get("done"))


@bp.route("/t/<slug>/relay", methods=["GET", "POST"])
def relay_inbox(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "notices", "relay", kind="union")
    notice_service.require_relay(tenant, subject)  # the union's own page: relaying is publishing to its members
    error = None
    if request.method == "POST":
        try:
            notice_id = int(request.form.get("notice_id", ""))
        except ValueError:
            notice_id = 0
        target = request.form.get("audience", "all")
        audience: dict = {"all": True}
        if target != "all":
            try:
                audience = {"units": [int(target)]}
            except ValueError:
                audience = {"all": True}
        try:
            notice_service.relay(tenant, subject, notice_id, audience)
        except APIError as exc:
            db.session.rollback()
            error = exc
        else:
            return redirect(url_for("web.relay_inbox", slug=slug, done=notice_id))
    branches = [u for u in tenant_service.units_of(tenant) if u.kind == "branch"]
    return render_template("web/relay.html", tenant=tenant, received=received_notices(tenant), branches=branches,
                           error=error, done=request.args.get("done"), user=g.user), 422 if error else 200


@bp.route("/t/<slug>/members/import", methods=["GET", "POST"])
def members_import(slug: str):  # type: ignore[no-untyped-def]
    """CSV import for union officers: check first (every row's problem shown), then import all rows or none."""
    from tenants import members_csv

    tenant, subject = access_tenant(slug, "members", "write")
    report = error = None
    imported = None
    if request.method == "POST":
        upload = request.files.get("file")
        try:
            if upload is None or not upload.filename:
                raise APIError(422, "file: choose a CSV file", fields={"file": ["missing"]})
            report = members_csv.check(tenant, upload.read(members_csv.MAX_BYTES + 1))
            if request.form.get("op") == "import" and report.ok:
                imported = members_csv.commit(tenant, report, actor=subject.key)
        except APIError as exc:
            db.session.rollback()
            error = exc
    status = 422 if error or (report is not None and not report.ok) else 200
    return render_template("web/members_import.html", tenant=tenant, report=report, error=error,
                           imported=imported), status
