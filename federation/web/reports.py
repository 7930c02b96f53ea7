"""Upward reports on the pages: the federation's list, request form and answers page (with totals per council and
block, a chart, who has not answered, CSV, reminder and close), and the union officers' list and answer form.

Every page goes through the same service and firewall path as the API (federation/reports): a council officer sees
only the requests they wrote and the answers of unions in their council; a union sees only what is addressed to it.
"""
from __future__ import annotations

from typing import Any

from flask import Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from marshmallow import ValidationError
from werkzeug.exceptions import MethodNotAllowed

from federation.access import access_tenant, tenant_by_slug
from federation.auth.service import require_caller
from federation.errors import APIError
from federation.extensions import db
from federation.firewall import firewall
from federation.reports import reminders, service
from federation.reports.models import TYPES
from federation.reports.schemas import ReportIn
from federation.web import bp, formatting
from federation.web.editor import audience_choice, audience_from_form

SLOTS = 8  # field rows on the request form; an empty row is left out


def _errors(exc: APIError | ValidationError, labels: dict[str, str]) -> list[tuple[str, str]]:
    """(the name of the field at fault in the reader's words, the technical message) for the error box."""
    messages = exc.messages if isinstance(exc, ValidationError) else (exc.fields or {"": [exc.message]})
    out = []
    for key, value in (messages.items() if isinstance(messages, dict) else [("", messages)]):
        text = formatting.first_message(value)
        out.append((labels.get(str(key)) or _field_name(str(key)), text))
    return out


def _field_name(key: str) -> str:
    if key.startswith("fields["):
        index = key[len("fields["):].split("]", 1)[0]
        return _("Field %(n)s", n=int(index) + 1 if index.isdigit() else index)
    return {"title": _("Title"), "due_at": _("Due"), "audience": _("Who is asked"), "fields": _("Fields"),
            "report": _("The report")}.get(key.split(".", 1)[0], "")


# --- federation side -----------------------------------------------------------------------------------------------

def _is_union(slug: str) -> bool:
    """The same addresses serve both sides: a union's officers answer where the federation reads."""
    found = tenant_by_slug(slug)
    return found is not None and found.kind == "union"


@bp.route("/t/<slug>/reports")
def reports(slug: str):  # type: ignore[no-untyped-def]
    if _is_union(slug):
        return union_reports(slug)
    tenant, subject = access_tenant(slug, "reports", "read", kind="federation")
    rows = service.listing(tenant, subject)
    counts = {r.id: service.progress(r, subject) for r in rows}
    return render_template("web/reports.html", tenant=tenant, reports=rows, counts=counts, is_open=service.is_open,
                           may_write=firewall.allowed(subject, slug, "reports", "write"),
                           done=request.args.get("done"))


def _request_form(tenant: Any, subject: Any, form: Any, *, errors: list[tuple[str, str]] | None = None,
                  status: int = 200):  # type: ignore[no-untyped-def]
    return render_template("web/reports_new.html", tenant=tenant, form=form or {},
                           **audience_choice(tenant, subject, form), slots=range(1, SLOTS + 1), types=TYPES,
                           errors=errors or []), status


def _request_body(form: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The form as the API's request body; the field rows become `fields` keyed q1, q2 ... in their order."""
    problems: list[tuple[str, str]] = []
    fields_: list[dict[str, Any]] = []
    for slot in range(1, SLOTS + 1):
        label = form.get(f"f{slot}_label", "").strip()
        if not label:
            continue
        kind = form.get(f"f{slot}_type", "integer")
        item: dict[str, Any] = {"key": f"q{len(fields_) + 1}", "label": label, "type": kind,
                                "required": bool(form.get(f"f{slot}_required"))}
        if kind == "choice":
            item["choices"] = [c.strip() for c in form.get(f"f{slot}_choices", "").splitlines() if c.strip()]
        unit = form.get(f"f{slot}_unit", "").strip()
        if unit and kind in ("integer", "decimal"):
            item["unit"] = unit
        fields_.append(item)
    raw: dict[str, Any] = {"title": form.get("title", "").strip(), "fields": fields_,
                           "audience": audience_from_form(form)}
    try:
        due = formatting.parse_local(form.get("due_at"))
    except ValueError:
        due = None
    if due is None:
        problems.append((_("Due"), "a date and time"))
    else:
        raw["due_at"] = due.isoformat()
    return raw, problems


@bp.route("/t/<slug>/reports/new", methods=["GET", "POST"])
def report_new(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "reports", "write", kind="federation")
    if request.method == "GET":
        return _request_form(tenant, subject, None)
    raw, problems = _request_body(request.form)
    if problems:
        return _request_form(tenant, subject, request.form, errors=problems, status=422)
    try:
        report = service.create(tenant, subject, ReportIn().load(raw))
    except (APIError, ValidationError) as exc:
        db.session.rollback()
        return _request_form(tenant, subject, request.form, errors=_errors(exc, {}), status=422)
    return redirect(url_for("web.report", slug=slug, report_id=report.id, done="sent"))


def _chart(report_fields: list[dict[str, Any]], councils: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per numeric field, a horizontal bar per council of its total, scaled to the largest (for the SVG)."""
    out = []
    for f in report_fields:
        if f["type"] not in ("integer", "decimal"):
            continue
        bars = [{"name": c["name"], "total": c["fields"][f["key"]]["total"] or 0,
                 "count": c["fields"][f["key"]]["count"]} for c in councils]
        top = max((abs(b["total"]) for b in bars), default=0) or 1
        for b in bars:
            b["width"] = round(abs(b["total"]) / top * 100, 1)
        out.append({"field": f, "bars": bars})
    return out


@bp.route("/t/<slug>/reports/<int:report_id>", methods=["GET", "POST"])
def report(slug: str, report_id: int):  # type: ignore[no-untyped-def]
    if _is_union(slug):
        return union_report(slug, report_id)
    if request.method == "POST":
        raise MethodNotAllowed(["GET"])
    tenant, subject = access_tenant(slug, "reports", "read", kind="federation")
    found = service.officer_report(tenant, subject, report_id)
    data = service.answers(found, subject)
    fields_ = service.fields_of(found)
    return render_template("web/report.html", tenant=tenant, report=found, data=data, fields=fields_,
                           is_open=service.is_open(found), charts=_chart(fields_, data["councils"]),
                           may_write=firewall.allowed(subject, slug, "reports", "write"),
                           done=request.args.get("done"))


@bp.route("/t/<slug>/reports/<int:report_id>/answers.csv")
def report_csv(slug: str, report_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "reports", "read", kind="federation")
    found = service.officer_report(tenant, subject, report_id)
    return Response(service.answers_csv(found, subject), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="report-{found.id}-answers.csv"',
        "Cache-Control": "private, no-store"})


@bp.route("/t/<slug>/reports/<int:report_id>/remind", methods=["POST"])
def report_remind(slug: str, report_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "reports", "write", kind="federation")
    found = service.officer_report(tenant, subject, report_id)
    reminders.request_reminder(found, subject)
    return redirect(url_for("web.report", slug=slug, report_id=report_id, done="reminded"))


@bp.route("/t/<slug>/reports/<int:report_id>/close", methods=["POST"])
def report_close(slug: str, report_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "reports", "write", kind="federation")
    service.close(service.officer_report(tenant, subject, report_id), subject)
    return redirect(url_for("web.report", slug=slug, report_id=report_id, done="closed"))


# --- union side ----------------------------------------------------------------------------------------------------

@bp.route("/reports/<int:report_id>")
def report_from_push(report_id: int):  # type: ignore[no-untyped-def]
    """Where a reminder push points: the request on the page of the officer's own union."""
    caller = require_caller()
    return redirect(url_for("web.report", slug=caller.tenant, report_id=report_id))


def union_reports(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "reports", "read", kind="union")
    rows = service.union_listing(tenant)
    return render_template("web/reports_union.html", tenant=tenant,
                           items=[service.union_view(tenant, r, a, all_versions=False) for r, a in rows])


def _values_from_form(fields_: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """What was typed, as the API's `values`: numbers where they read as numbers; anything else is passed on as
    typed so the service names the field (a whole number, a number)."""
    out: dict[str, Any] = {}
    for f in fields_:
        text = form.get(f"v_{f['key']}", "").strip()
        if not text:
            continue
        if f["type"] in ("integer", "decimal"):
            plain = text.replace(",", "").replace("，", "")
            try:
                out[f["key"]] = int(plain)
                continue
            except ValueError:
                pass
            if f["type"] == "decimal":
                try:
                    out[f["key"]] = float(plain)
                    continue
                except ValueError:
                    pass
        out[f["key"]] = text
    return out


def union_report(slug: str, report_id: int):  # type: ignore[no-untyped-def]
    act = "read" if request.method == "GET" else "answer"
    tenant, subject = access_tenant(slug, "reports", act, kind="union")
    found = service.union_report(tenant, report_id)
    errors: list[tuple[str, str]] = []
    status = 200
    form = request.form if request.method == "POST" else None
    if request.method == "POST":
        fields_ = service.fields_of(found)
        try:
            service.submit(tenant, subject, found, _values_from_form(fields_, request.form))
        except APIError as exc:
            db.session.rollback()
            labels = {f"values.{f['key']}": f["label"] for f in fields_}
            errors, status = _errors(exc, labels), exc.status
        else:
            return redirect(url_for("web.report", slug=slug, report_id=report_id, done="answered"))
    view = service.union_view(tenant, found, None, all_versions=True)
    current = view["answer"]["values"] if view["answer"] else {}
    return render_template("web/report_union.html", tenant=tenant, report=view, errors=errors, form=form,
                           current=current, may_answer=firewall.allowed(subject, slug, "reports", "answer"),
                           done=request.args.get("done")), status
