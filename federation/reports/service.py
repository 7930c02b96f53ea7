"""Report requests and answers: the scoped reads and writes, for the API views, the pages and the reminder job.

Federation side (the tenant is the federation `access_tenant` returned): a council officer (unit_editor) sees only
the requests they wrote and, of those, only the answers of unions attached inside their unit (the rule of
notices/reads.py). Union side (the tenant is the union): a request is the union's to see and answer only while the
union is actively affiliated with the requesting federation and the request's audience, resolved now, names it.

A request closes at its due time or when its federation closes it earlier, whichever comes first; an answer after
that is a 409. Each submission is a new version row and an audit entry `report.answered` naming both tenants and
the version, never the values.
"""
from __future__ import annotations

import csv
import io
import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select

from federation.audit.chain import record
from federation.dbutil import get_row
from federation.errors import APIError, conflict
from federation.extensions import db, utcnow
from federation.firewall import Denied, Subject
from federation.jobs import enqueue_after_commit
from federation.notices import audience as aud
from federation.notices import reads as notice_reads
from federation.reports.models import TYPES, ReportAnswer, ReportRequest
from tenants.models import Affiliation, Tenant, User

KEY_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")
MAX_FIELDS = 50
MAX_TEXT = 2000


def _bad(field: str, message: str) -> APIError:
    return APIError(422, f"{field}: {message}", fields={field: [message]})


# --- the request ---------------------------------------------------------------------------------------------------

def validate_fields(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise _bad("fields", "a non-empty list of fields")
    if len(raw) > MAX_FIELDS:
        raise _bad("fields", f"at most {MAX_FIELDS} fields")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, f in enumerate(raw):
        where = f"fields[{i}]"
        if not isinstance(f, dict):
            raise _bad(where, "an object {key, label, type}")
        for k in f:
            if k not in ("key", "label", "type", "choices", "unit", "required"):
                raise _bad(f"{where}.{k}", "unknown field")
        key = f.get("key")
        if not isinstance(key, str) or not 1 <= len(key) <= 40 or not set(key) <= KEY_CHARS or key[0].isdigit():
            raise _bad(f"{where}.key", "1-40 characters a-z, 0-9 and _, not starting with a digit")
        if key in seen:
            raise _bad(f"{where}.key", f"{key} is used twice")
        seen.add(key)
        label = f.get("label")
        if not isinstance(label, str) or not 1 <= len(label.strip()) <= 200 or "\x00" in label:
            raise _bad(f"{where}.label", "1-200 characters")
        kind = f.get("type")
        if kind not in TYPES:
            raise _bad(f"{where}.type", f"one of {', '.join(TYPES)}")
        item: dict[str, Any] = {"key": key, "label": label.strip(), "type": kind}
        choices = f.get("choices")
        if kind == "choice":
            if (not isinstance(choices, list) or not 1 <= len(choices) <= 50
                    or any(not isinstance(c, str) or not 1 <= len(c) <= 100 or "\x00" in c for c in choices)
                    or len(set(choices)) != len(choices)):
                raise _bad(f"{where}.choices", "1-50 distinct labels of 1-100 characters")
            item["choices"] = list(choices)
        elif choices is not None:
            raise _bad(f"{where}.choices", "only for a choice field")
        unit = f.get("unit")
        if unit is not None:
            if not isinstance(unit, str) or len(unit) > 20 or "\x00" in unit:
                raise _bad(f"{where}.unit", "at most 20 characters")
            item["unit"] = unit
        required = f.get("required", True)
        if not isinstance(required, bool):
            raise _bad(f"{where}.required", "true or false")
        item["required"] = required
        out.append(item)
    return out


def create(federation: Tenant, subject: Subject, body: dict[str, Any]) -> ReportRequest:
    fields_ = validate_fields(body["fields"])
    audience = aud.validate(body["audience"], federation, subject)
    if body["due_at"] <= utcnow():
        raise _bad("due_at", "must be in the future")
    report = ReportRequest(tenant_id=federation.id, title=body["title"].strip(), fields=json.dumps(fields_,
                           ensure_ascii=False), audience=json.dumps(audience), due_at=body["due_at"],
                           created_by=subject.user_id)
    db.session.add(report)
    db.session.flush()
    record("report.requested", actor=subject.key, tenant=federation.slug,
           data={"report_id": report.id, "audience": audience})
    from federation.reports.reminders import push_report_request

    enqueue_after_commit(push_report_request, report.id)
    db.session.commit()
    return report


def fields_of(report: ReportRequest) -> list[dict[str, Any]]:
    return json.loads(report.fields)


def is_open(report: ReportRequest) -> bool:
    return report.closed_at is None and utcnow() < report.due_at


def _may_see(report: ReportRequest, subject: Subject) -> bool:
    return notice_reads.whole_tenant(subject) or report.created_by == subject.user_id


def listing(federation: Tenant, subject: Subject) -> list[ReportRequest]:
    stmt = select(ReportRequest).where(ReportRequest.tenant_id == federation.id)
    if not notice_reads.whole_tenant(subject):
        stmt = stmt.where(ReportRequest.created_by == subject.user_id)
    return list(db.session.execute(stmt.order_by(ReportRequest.id.desc()).limit(200)).scalars())


def officer_report(federation: Tenant, subject: Subject, report_id: int) -> ReportRequest:
    report = get_row(ReportRequest, report_id)
    if report is None or report.tenant_id != federation.id or not _may_see(report, subject):
        raise Denied(404)
    return report


def close(report: ReportRequest, subject: Subject) -> ReportRequest:
    if report.closed_at is None:
        report.closed_at = utcnow()
        federation = db.session.get(Tenant, report.tenant_id)
        record("report.closed", actor=subject.key, tenant=federation.slug if federation else None,
               data={"report_id": report.id})
        db.session.commit()
    return report


# --- who is addressed ----------------------------------------------------------------------------------------------

def addressed(report: ReportRequest, subject: Subject | None = None) -> list[aud.AttachedUnion]:
    """The unions the request is addressed to now (affiliation active), in their reading order; for a unit
    officer only those attached inside their unit."""
    federation = db.session.get(Tenant, report.tenant_id)
    if federation is None:
        return []
    return aud.attached_unions(federation, subject, among={t.union_id for t in aud.resolve(report.audience,
                                                                                        federation)})


def _current(report_id: int, union_ids: list[int]) -> dict[int, ReportAnswer]:
    if not union_ids:
        return {}
    latest = (select(ReportAnswer.union_id, func.max(ReportAnswer.version).label("v"))
              .where(ReportAnswer.report_id == report_id, ReportAnswer.union_id.in_(union_ids))
              .group_by(ReportAnswer.union_id).subquery())
    rows = db.session.execute(select(ReportAnswer).join(latest, (latest.c.union_id == ReportAnswer.union_id)
                                                        & (latest.c.v == ReportAnswer.version))
                              .where(ReportAnswer.report_id == report_id)).scalars()
    return {a.union_id: a for a in rows}


# --- the federation's view of the answers --------------------------------------------------------------------------

def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _aggregate(rows: list[tuple[aud.AttachedUnion, dict[str, Any]]], numeric: list[str]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for key in numeric:
        values = [n for _, v in rows if (n := _number(v.get(key))) is not None]
        total = sum(values, Decimal(0))
        totals[key] = {"count": len(values), "total": _plain(total) if values else None,
                       "average": _plain(round(total / len(values), 2)) if values else None}
    return totals


def _plain(d: Decimal) -> float | int:
    return int(d) if d == d.to_integral_value() else float(d)


def answers(report: ReportRequest, subject: Subject) -> dict[str, Any]:
    """Each addressed union's current answer, the totals and averages per council and block, who has not answered."""
    targets = addressed(report, subject)
    current = _current(report.id, [t.union_id for t in targets])
    fields_ = fields_of(report)
    numeric = [f["key"] for f in fields_ if f["type"] in ("integer", "decimal")]
    items, unanswered, answered_rows = [], [], []
    for t in targets:
        a = current.get(t.union_id)
        base = {"union": t.slug, "name": t.name, "council": t.council, "block": t.block}
        if a is None:
            unanswered.append(base)
            continue
        values = json.loads(a.values)
        answered_rows.append((t, values))
        items.append({**base, "version": a.version, "submitted_at": a.submitted_at, "values": values})

    def groups(attr: str) -> list[dict[str, Any]]:
        names = sorted({getattr(t, attr) for t in targets})
        out = []
        for name in names:
            rows = [(t, v) for t, v in answered_rows if getattr(t, attr) == name]
            out.append({"name": name, "unions": sum(1 for t in targets if getattr(t, attr) == name),
                        "answered": len(rows), "fields": _aggregate(rows, numeric)})
        return out

    return {"report_id": report.id, "addressed": len(targets), "answered": len(items), "items": items,
            "unanswered": unanswered, "councils": groups("council"), "blocks": groups("block"),
            "overall": _aggregate(answered_rows, numeric)}


DANGEROUS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(DANGEROUS) else text


def answers_csv(report: ReportRequest, subject: Subject) -> str:
    data = answers(report, subject)
    fields_ = fields_of(report)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([_cell(c) for c in ["union", "name", "council", "block", "submitted_at", "version",
                                    *[f["key"] for f in fields_]]])
    for item in data["items"]:
        w.writerow([_cell(c) for c in [item["union"], item["name"], item["council"], item["block"],
                                        item["submitted_at"].isoformat(), item["version"],
                                        *[item["values"].get(f["key"]) for f in fields_]]])
    return "\ufeff" + buf.getvalue()


# --- the union's side ----------------------------------------------------------------------------------------------

def _federations_of(union: Tenant) -> list[int]:
    return list(db.session.execute(select(Affiliation.federation_id).where(
        Affiliation.union_id == union.id, Affiliation.status == "active")).scalars())


def _addresses(report: ReportRequest, union: Tenant) -> bool:
    federation = db.session.get(Tenant, report.tenant_id)
    return federation is not None and any(t.union_id == union.id for t in aud.resolve(report.audience, federation))


def union_listing(union: Tenant) -> list[tuple[ReportRequest, ReportAnswer | None]]:
    feds = _federations_of(union)
    if not feds:
        return []
    rows = db.session.execute(select(ReportRequest).where(ReportRequest.tenant_id.in_(feds))
                              .order_by(ReportRequest.id.desc()).limit(500)).scalars()
    mine = [r for r in rows if _addresses(r, union)]
    out = []
    for r in mine:
        out.append((r, _current(r.id, [union.id]).get(union.id)))
    return out


def union_report(union: Tenant, report_id: int) -> ReportRequest:
    report = get_row(ReportRequest, report_id)
    if report is None or report.tenant_id not in _federations_of(union) or not _addresses(report, union):
        raise Denied(404)
    return report


def versions(report: ReportRequest, union: Tenant) -> list[ReportAnswer]:
    return list(db.session.execute(select(ReportAnswer).where(
        ReportAnswer.report_id == report.id, ReportAnswer.union_id == union.id)
        .order_by(ReportAnswer.version.desc())).scalars())


def answer_out(a: ReportAnswer | None) -> dict[str, Any] | None:
    return None if a is None else {"version": a.version, "submitted_at": a.submitted_at,
                                   "values": json.loads(a.values)}


def union_view(union: Tenant, report: ReportRequest, current: ReportAnswer | None, *,
               all_versions: bool) -> dict[str, Any]:
    """A request as the union's officers see it: its fields, their current answer and (when asked) every version."""
    federation = db.session.get(Tenant, report.tenant_id)
    found = versions(report, union) if all_versions else []
    return {"id": report.id, "federation": federation.slug if federation else "",
            "federation_name": federation.name if federation else "", "title": report.title,
            "fields": fields_of(report), "due_at": report.due_at, "closed_at": report.closed_at,
            "is_open": is_open(report), "answer": answer_out(found[0] if found else current),
            "versions": [answer_out(v) for v in found]}


def validate_values(report: ReportRequest, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _bad("values", "an object {key: value}")
    fields_ = {f["key"]: f for f in fields_of(report)}
    for key in raw:
        if key not in fields_:
            raise _bad(f"values.{key}", "no such field in this report")
    out: dict[str, Any] = {}
    for key, f in fields_.items():
        where = f"values.{key}"
        value = raw.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            if f.get("required", True):
                raise _bad(where, "required")
            continue
        kind = f["type"]
        if kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int) or abs(value) > 10**15:
                raise _bad(where, "a whole number")
        elif kind == "decimal":
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
                    or abs(value) > 10**15:
                raise _bad(where, "a number")
        elif kind == "text":
            if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
                raise _bad(where, f"text of at most {MAX_TEXT} characters")
            value = value.strip()
        elif kind == "choice":
            if value not in f["choices"]:
                raise _bad(where, "one of the choices")
        out[key] = value
    return out


def submit(union: Tenant, subject: Subject, report: ReportRequest, raw: Any) -> ReportAnswer:
    if not is_open(report):
        raise conflict("report", "the report is closed: answers are no longer accepted")
    values = validate_values(report, raw)
    # The row lock keeps two officers submitting at once from both taking the same version number.
    db.session.execute(select(ReportRequest.id).where(ReportRequest.id == report.id).with_for_update())
    last = db.session.execute(select(func.max(ReportAnswer.version)).where(
        ReportAnswer.report_id == report.id, ReportAnswer.union_id == union.id)).scalar_one()
    answer = ReportAnswer(report_id=report.id, union_id=union.id, version=(last or 0) + 1,
                          values=json.dumps(values, ensure_ascii=False), submitted_by=subject.user_id)
    db.session.add(answer)
    db.session.flush()
    federation = db.session.get(Tenant, report.tenant_id)
    record("report.answered", actor=subject.key, tenant=union.slug,
           other_tenant=federation.slug if federation else None,
           data={"report_id": report.id, "version": answer.version})
    db.session.commit()
    return answer


# --- reminders -----------------------------------------------------------------------------------------------------

def reminder_recipients(report: ReportRequest) -> list[int]:
    """The union admins, active and allowed by the firewall now to answer for their union, of every addressed union
    that has not answered yet. Read when the reminder job runs (F7)."""
    from federation.auth.service import subject_of
    from federation.firewall import firewall
    from tenants.models import RoleGrant

    if not is_open(report):
        return []
    targets = addressed(report)
    current = _current(report.id, [t.union_id for t in targets])
    waiting = {t.union_id: t.slug for t in targets if t.union_id not in current}
    if not waiting:
        return []
    users = db.session.execute(select(User).join(RoleGrant, RoleGrant.user_id == User.id).where(
        RoleGrant.tenant_id.in_(waiting), RoleGrant.role == "union_admin", User.status == "active",
        User.tenant_id == RoleGrant.tenant_id).distinct()).scalars()
    snap = firewall.current()
    return sorted(u.id for u in users
                  if snap.allowed(subject_of(u), waiting[u.tenant_id], "reports", "answer"))


def progress(report: ReportRequest, subject: Subject) -> tuple[int, int]:
    """(unions that answered, unions addressed) as `subject` may see them, without reading any answer's values."""
    ids = [t.union_id for t in addressed(report, subject)]
    if not ids:
        return 0, 0
    answered = db.session.execute(select(func.count(func.distinct(ReportAnswer.union_id))).where(
        ReportAnswer.report_id == report.id, ReportAnswer.union_id.in_(ids))).scalar_one()
    return answered, len(ids)


def unanswered_count(report: ReportRequest, subject: Subject) -> int:
    answered, addressed_ = progress(report, subject)
    return addressed_ - answered
