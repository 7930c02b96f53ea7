"""Defining form types, filing applications and moving them through their approval steps.

Who may decide a step is asked of the firewall twice: may the caller approve applications in this union at all,
and does one of the caller's roles carry (directly or by inheritance) the role the type names for that step.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from typing import Any

from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage

from federation.errors import conflict, invalid
from federation.extensions import db, utcnow
from federation.firewall import Denied, Subject, firewall
from federation.space.applications.models import (
    OPEN,
    Application,
    ApplicationAttachment,
    ApplicationStep,
    ApplicationType,
)
from federation.space.documents import service as documents
from federation.space.documents import storage as st
from tenants.models import Tenant, User

TEXT_MAX = 2000
MAX_ATTACHMENTS = 5
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


# --- who decides --------------------------------------------------------------------------------------------------

def approving_roles() -> list[str]:
    """Roles the policy lets approve applications in a union: the only ones a type may name for a step."""
    templates = firewall.templates
    return sorted(role for role in templates.roles
                  if templates.effective.get((role, "applications", "approve")))


def holds_role(subject: Subject, role: str) -> bool:
    return any(role in firewall.templates.closure(held) for held in firewall.roles_of(subject))


def may_decide_step(subject: Subject, tenant: Tenant, role: str | None) -> bool:
    return role is not None and firewall.allowed(subject, tenant.slug, "applications", "approve") \
        and holds_role(subject, role)


def step_role(app: Application) -> str | None:
    """The role whose turn it is, or None once nothing is left to decide."""
    if app.status == "pending":
        return app.type.approver_role
    if app.status == "first_approved":
        return app.type.second_approver_role
    return None


# --- form types ---------------------------------------------------------------------------------------------------

def create_type(tenant: Tenant, actor: User, body: dict[str, Any]) -> ApplicationType:
    specs = body["form_fields"]
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec["key"] in seen:
            raise invalid(f"fields.{i}.key", f"{spec['key']} appears twice")
        seen.add(spec["key"])
        if spec["kind"] == "choice" and not spec.get("choices"):
            raise invalid(f"fields.{i}.choices", "a choice field needs at least one choice")
        if spec["kind"] != "choice" and spec.get("choices") is not None:
            raise invalid(f"fields.{i}.choices", "only a choice field has choices")
        if spec.get("choices") is not None and len(set(spec["choices"])) != len(spec["choices"]):
            raise invalid(f"fields.{i}.choices", "choices must differ")
    roles = approving_roles()
    for field in ("approver_role", "second_approver_role"):
        role = body.get(field)
        if role is not None and role not in roles:
            raise invalid(field, f"must be one of {', '.join(roles)}")
    kept = [{k: v for k, v in spec.items() if v is not None} for spec in specs]
    row = ApplicationType(tenant_id=tenant.id, name=body["name"].strip(), description=body["description"],
                          fields=json.dumps(kept, ensure_ascii=False), approver_role=body["approver_role"],
                          second_approver_role=body.get("second_approver_role"), created_by=actor.id)
    if not row.name:
        raise invalid("name", "must not be empty")
    db.session.add(row)
    db.session.commit()
    return row


def types_of(tenant: Tenant) -> list[ApplicationType]:
    return list(db.session.execute(select(ApplicationType).where(ApplicationType.tenant_id == tenant.id)
                                   .order_by(ApplicationType.id)).scalars())


def type_dict(row: ApplicationType) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description,
            "form_fields": json.loads(row.fields),
            "approver_role": row.approver_role, "second_approver_role": row.second_approver_role,
            "active": row.active, "created_at": row.created_at}


# --- filing -------------------------------------------------------------------------------------------------------

def clean_values(specs: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """The values as stored, or a 422 naming the first field at fault (`values.<key>`)."""
    known = {spec["key"] for spec in specs}
    for key in values:
        if key not in known:
            raise invalid(f"values.{key}", "this form has no such field")
    cleaned: dict[str, Any] = {}
    for spec in specs:
        key, kind, value = spec["key"], spec["kind"], values.get(spec["key"])
        name = f"values.{key}"
        if value is None or (isinstance(value, str) and not value.strip()):
            if spec.get("required"):
                raise invalid(name, f"{spec['label']} is required")
            continue
        if kind == "number":
            # bool is an int in Python; a checkbox sent by mistake is not an amount.
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value \
                    or abs(value) > 10**12:
                raise invalid(name, "must be a number")
        elif kind == "date":
            if not isinstance(value, str) or not DATE.match(value):
                raise invalid(name, "must be a date YYYY-MM-DD")
            try:
                date.fromisoformat(value)
            except ValueError:
                raise invalid(name, "must be a date YYYY-MM-DD") from None
        elif kind == "choice":
            if value not in spec.get("choices", ()):
                raise invalid(name, f"must be one of {', '.join(spec['choices'])}")
        else:
            if not isinstance(value, str) or len(value) > TEXT_MAX:
                raise invalid(name, f"must be text of at most {TEXT_MAX} characters")
            if "\x00" in value:
                raise invalid(name, "must not contain NUL characters")
            value = value.strip()
        cleaned[key] = value
    return cleaned


def _step(app: Application, actor: User, before: str | None, after: str, comment: str) -> None:
    app.status = after
    app.updated_at = utcnow()
    db.session.add(ApplicationStep(application_id=app.id, actor_id=actor.id, from_status=before, to_status=after,
                                   comment=comment, at=app.updated_at))


def submit(tenant: Tenant, applicant: User, type_id: int, values: dict[str, Any]) -> Application:
    kind = db.session.get(ApplicationType, type_id)
    if kind is None or kind.tenant_id != tenant.id or not kind.active:
        raise invalid("type_id", f"no application form {type_id} in {tenant.slug}")
    cleaned = clean_values(json.loads(kind.fields), values)
    app = Application(tenant_id=tenant.id, type_id=kind.id, applicant_id=applicant.id,
                      values=json.dumps(cleaned, ensure_ascii=False), status="pending")
    app.type, app.applicant = kind, applicant
    db.session.add(app)
    db.session.flush()
    _step(app, applicant, None, "pending", "")
    db.session.commit()
    return app


# --- deciding -----------------------------------------------------------------------------------------------------

def access_application(tenant: Tenant, subject: Subject, app_id: int) -> Application:
    """The application if the caller filed it or may decide one of its steps; otherwise 404, so members cannot
    learn which ids their colleagues' applications have (F8)."""
    app = db.session.get(Application, app_id)
    if app is None or app.tenant_id != tenant.id:
        raise Denied(404)
    if app.applicant_id == subject.user_id:
        return app
    roles = (app.type.approver_role, app.type.second_approver_role)
    if any(may_decide_step(subject, tenant, role) for role in roles):
        return app
    raise Denied(404)


def decide(tenant: Tenant, subject: Subject, actor: User, app: Application, *, approve: bool,
           comment: str) -> Application:
    role = step_role(app)
    if role is None:
        raise conflict("status", f"this application is already {app.status}")
    # The firewall, not the application, says who decides: an applicant who is also an officer still cannot
    # approve their own claim.
    if not may_decide_step(subject, tenant, role) or app.applicant_id == actor.id:
        raise Denied(403)
    if app.status == "first_approved":
        first = db.session.execute(select(ApplicationStep.actor_id).where(
            ApplicationStep.application_id == app.id, ApplicationStep.to_status == "first_approved")
            .order_by(ApplicationStep.id.desc())).scalars().first()
        if first == actor.id:
            raise conflict("status", "the second approval must come from someone other than the first")
    before = app.status
    if not approve:
        after = "rejected"
    elif before == "pending" and app.type.second_approver_role:
        after = "first_approved"
    else:
        after = "approved"
    _step(app, actor, before, after, comment.strip())
    from federation.space.applications.notify import after_decision

    after_decision(app)  # queued for after the commit: the applicant hears of it on their phone
    db.session.commit()
    return app


def withdraw(app: Application, actor: User, comment: str) -> Application:
    if app.applicant_id != actor.id:
        raise Denied(403)
    if app.status not in OPEN:
        raise conflict("status", f"this application is already {app.status}")
    _step(app, actor, app.status, "withdrawn", comment.strip())
    db.session.commit()
    return app


# --- attachments --------------------------------------------------------------------------------------------------

def add_attachment(app: Application, actor: User, upload: FileStorage | None) -> ApplicationAttachment:
    if app.applicant_id != actor.id:
        raise Denied(403)
    # Only before anyone has decided: an approver must not find the evidence changed under a decision already made.
    if app.status != "pending":
        raise conflict("status", f"this application is already {app.status}")
    data, kind, filename = documents.read_upload(upload)
    # Locks the application row (PostgreSQL) so two uploads at once cannot both see room for a fifth file, and
    # re-reads the status in case it was decided while the upload was being read.
    # (A plain row lock: the model's joined eager loads would put FOR UPDATE on an outer join, which PostgreSQL
    # refuses.)
    status = db.session.execute(select(Application.status).where(Application.id == app.id)
                                .with_for_update()).scalar_one()
    if status != "pending":
        raise conflict("status", f"this application is already {status}")
    count = db.session.execute(select(func.count()).select_from(ApplicationAttachment).where(
        ApplicationAttachment.application_id == app.id)).scalar_one()
    if count >= MAX_ATTACHMENTS:
        raise conflict("file", f"an application holds at most {MAX_ATTACHMENTS} files")
    with st.written(data) as key:
        row = ApplicationAttachment(tenant_id=app.tenant_id, application_id=app.id, storage_key=key,
                                    filename=filename, content_type=kind, size=len(data), uploaded_by=actor.id)
        db.session.add(row)
        db.session.commit()
    return row


def attachments(app: Application) -> list[ApplicationAttachment]:
    return list(db.session.execute(select(ApplicationAttachment).where(
        ApplicationAttachment.application_id == app.id).order_by(ApplicationAttachment.id)).scalars())


def attachment_of(app: Application, attachment_id: int) -> ApplicationAttachment:
    row = db.session.get(ApplicationAttachment, attachment_id)
    if row is None or row.application_id != app.id or row.tenant_id != app.tenant_id:
        raise Denied(404)
    return row


# --- reading ------------------------------------------------------------------------------------------------------

def listing(tenant: Tenant, subject: Subject, *, view: str, status: str | None,
            type_id: int | None) -> list[Application]:
    stmt = select(Application).where(Application.tenant_id == tenant.id)
    if status:
        stmt = stmt.where(Application.status == status)
    if type_id:
        stmt = stmt.where(Application.type_id == type_id)
    if view == "mine":
        stmt = stmt.where(Application.applicant_id == subject.user_id)
        return list(db.session.execute(stmt.order_by(Application.id.desc())).scalars())
    firewall.require(subject, tenant.slug, "applications", "approve")
    types = [t for t in types_of(tenant)
             if holds_role(subject, t.approver_role)
             or (t.second_approver_role and holds_role(subject, t.second_approver_role))]
    stmt = stmt.where(Application.type_id.in_([t.id for t in types]))
    rows = list(db.session.execute(stmt.order_by(Application.id.desc())).scalars())
    if view == "to_approve":
        rows = [a for a in rows if a.applicant_id != subject.user_id
                and (role := step_role(a)) is not None and holds_role(subject, role)]
    return rows


def history(app: Application) -> list[ApplicationStep]:
    return list(db.session.execute(select(ApplicationStep).where(ApplicationStep.application_id == app.id)
                                   .order_by(ApplicationStep.at, ApplicationStep.id)).scalars())


def app_dict(app: Application) -> dict[str, Any]:
    return {"id": app.id, "type_id": app.type_id, "type_name": app.type.name, "applicant": app.applicant,
            "values": json.loads(app.values), "status": app.status, "submitted_at": app.submitted_at,
            "updated_at": app.updated_at, "next_approver_role": step_role(app), "history": history(app),
            "attachments": attachments(app)}


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A leading =, +, - or @ makes a spreadsheet run the cell as a formula: a member's text must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def export_csv(tenant: Tenant, subject: Subject, *, type_id: int | None, status: str | None) -> bytes:
    rows = listing(tenant, subject, view="approvable", status=status, type_id=type_id)
    kind = db.session.get(ApplicationType, type_id) if type_id else None
    if type_id and (kind is None or kind.tenant_id != tenant.id):
        raise invalid("type_id", f"no application form {type_id} in {tenant.slug}")
    specs = json.loads(kind.fields) if kind else []
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    head = ["id", "form", "login_id", "display_name", "name_kana", "status", "submitted_at", "updated_at"]
    writer.writerow(head + ([s["label"] for s in specs] if kind else ["values"]))
    for app in sorted(rows, key=lambda a: a.id):
        values = json.loads(app.values)
        extra = [values.get(s["key"]) for s in specs] if kind else [json.dumps(values, ensure_ascii=False)]
        writer.writerow([_cell(v) for v in [app.id, app.type.name, app.applicant.login_id,
                                            app.applicant.display_name, app.applicant.name_kana, app.status,
                                            app.submitted_at.isoformat(), app.updated_at.isoformat(), *extra]])
    # The BOM is what makes Excel on a Japanese Windows open UTF-8 instead of guessing Shift_JIS.
    return "\ufeff".encode() + out.getvalue().encode("utf-8")
