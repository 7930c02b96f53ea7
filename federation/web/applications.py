"""Pages for applications (申請): members file a form and follow it, approvers decide the step that is theirs, and
the union admin defines the forms and exports them as CSV.

Every page reaches the union through `access_tenant` with the same object and action as the matching API view in
`federation.space.applications.views`, and an application through `service.access_application`, so a page answers
exactly what the API answers (404 outside the union and for a colleague's application, 403 for a missing right).
"""
from __future__ import annotations

import io
import json
from typing import Any

from flask import Response, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from werkzeug.datastructures import FileStorage

from federation.access import access_tenant
from federation.dbutil import MAX_ROW_ID
from federation.errors import APIError
from federation.extensions import db
from federation.firewall import Subject, firewall
from federation.space.applications import service
from federation.space.applications.models import FIELD_KINDS, OPEN, STATUSES, Application, ApplicationType
from federation.space.applications.schemas import ApplicationTypeIn
from federation.space.documents import service as documents
from federation.space.documents import storage as st
from federation.web import bp
from tenants.models import Tenant

# The number of field rows the form-type page offers: enough for a 慶弔費 or 通勤費 form, and a plain form
# without a script to add rows.
FIELD_SLOTS = 8
COMMENT_MAX = 2000
VIEWS = ("mine", "to_approve", "approvable")

APPLICATION_STATUS_LABELS = {
    "pending": _l("Waiting for a decision"),
    "first_approved": _l("First approval given"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "withdrawn": _l("Withdrawn"),
}
FIELD_KIND_LABELS = {
    "text": _l("Text"),
    "number": _l("Number"),
    "date": _l("Date"),
    "choice": _l("Choice"),
}


def _labels() -> dict[str, Any]:
    return {"app_status_labels": APPLICATION_STATUS_LABELS, "field_kind_labels": FIELD_KIND_LABELS}


def _value_message(spec: dict[str, Any], message: str) -> str:
    """The service's English reason for a value, as a sentence the member reads in their language."""
    if "required" in message:
        return _("%(label)s is required.", label=spec["label"])
    if spec["kind"] == "number":
        return _("Enter a number for %(label)s.", label=spec["label"])
    if spec["kind"] == "date":
        return _("Enter a date for %(label)s.", label=spec["label"])
    if spec["kind"] == "choice":
        return _("Choose one of the options for %(label)s.", label=spec["label"])
    return _("%(label)s can be at most %(count)s characters.", label=spec["label"], count=service.TEXT_MAX)


def _file_message(exc: APIError) -> str:
    if exc.status == 413:
        return _("The file is too large.")
    if "empty" in exc.message:
        return _("The file is empty.")
    return _("Attach a PDF or an image (PNG, JPEG or WebP). The file is checked by its content.")


# --- the list ------------------------------------------------------------------------------------------------------

@bp.route("/t/<slug>/applications")
def applications(slug: str):  # type: ignore[no-untyped-def]
    # Filing is the member's `applications write`; the list the API gives for view=mine is behind the same right.
    tenant, subject = access_tenant(slug, "applications", "write", kind="union")
    may_approve = firewall.allowed(subject, tenant.slug, "applications", "approve")
    # An approver opens on what waits for them; a member on their own applications.
    view = request.args.get("view") or ("to_approve" if may_approve else "mine")
    status = request.args.get("status") or None
    errors: dict[str, str] = {}
    if view not in VIEWS:
        errors["view"] = _("Choose one of the tabs.")
        view = "mine"
    if status is not None and status not in STATUSES:
        errors["status"] = _("Choose a status from the list.")
        status = None
    # The approver views go through the service's own firewall check: a member without `approve` gets the
    # API's 403 here too.
    rows = service.listing(tenant, subject, view=view, status=status, type_id=None)
    waiting = (len(rows) if view == "to_approve" and status is None else
               len(service.listing(tenant, subject, view="to_approve", status=None, type_id=None))) \
        if may_approve else 0
    return render_template("web/applications.html", tenant=tenant, rows=rows, view=view, status=status, waiting=waiting,
                           statuses=STATUSES, may_approve=may_approve, errors=errors, step_role=service.step_role,
                           may_manage=firewall.allowed(subject, tenant.slug, "applications", "manage"),
                           **_labels()), 422 if errors else 200


# --- filing --------------------------------------------------------------------------------------------------------

def _active_types(tenant: Tenant) -> list[ApplicationType]:
    return [t for t in service.types_of(tenant) if t.active]


def _form_values(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the form sent, typed as the API's JSON would carry it: a number field that is not a number is passed on
    as text so that the service names that field."""
    values: dict[str, Any] = {}
    for spec in specs:
        raw = request.form.get(f"v_{spec['key']}", "")
        if not raw.strip():
            values[spec["key"]] = None
        elif spec["kind"] == "number":
            text = raw.strip().replace(",", "")
            try:
                values[spec["key"]] = int(text)
            except ValueError:
                try:
                    number = float(text)
                    values[spec["key"]] = number if number == number and abs(number) != float("inf") else raw
                except ValueError:
                    values[spec["key"]] = raw
        else:
            values[spec["key"]] = raw
    return values


@bp.route("/t/<slug>/applications/new", methods=["GET", "POST"])
def application_new(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "applications", "write", kind="union")
    types = _active_types(tenant)
    chosen_id = request.values.get("type_id") or None
    kind = None
    errors: dict[str, str] = {}
    if chosen_id is not None:
        kind = next((t for t in types if str(t.id) == chosen_id), None)
        if kind is None:
            errors["type_id"] = _("Choose a form from the list.")
    specs: list[dict[str, Any]] = json.loads(kind.fields) if kind else []
    form = {spec["key"]: request.form.get(f"v_{spec['key']}", "") for spec in specs}
    if request.method == "POST" and kind is not None:
        values = _form_values(specs)
        # The service stops at the first field at fault; asking it one field at a time shows every problem at once
        # with the very rules the API applies.
        for spec in specs:
            try:
                service.clean_values([spec], {spec["key"]: values[spec["key"]]})
            except APIError as exc:
                errors[f"v_{spec['key']}"] = _value_message(spec, exc.message)
        upload = request.files.get("file")
        data: tuple[bytes, str, str] | None = None
        if upload is not None and upload.filename:
            try:
                data = documents.read_upload(upload)
            except APIError as exc:
                errors["file"] = _file_message(exc)
        if not errors:
            # Checked in full above, so the application and its file are stored together or not at all.
            app = service.submit(tenant, g.user, kind.id, values)
            if data is not None:
                content, _kind, filename = data
                service.add_attachment(app, g.user, FileStorage(io.BytesIO(content), filename=filename))
            return redirect(url_for("web.application", slug=slug, app_id=app.id, done="filed"))
    status = 422 if errors else 200
    return render_template("web/applications_new.html", tenant=tenant, types=types, kind=kind, specs=specs,
                           form=form, errors=errors, **_labels()), status


# --- one application -----------------------------------------------------------------------------------------------

def _detail(tenant: Tenant, subject: Subject, app: Application, *, errors: dict[str, str] | None = None,
            comment: str = "", status: int = 200):  # type: ignore[no-untyped-def]
    role = service.step_role(app)
    # The applicant never decides their own claim, even when their role would name them (the service refuses too).
    may_decide = service.may_decide_step(subject, tenant, role) and app.applicant_id != g.user.id
    may_withdraw = app.applicant_id == g.user.id and app.status in OPEN
    specs = json.loads(app.type.fields)
    return render_template("web/applications_detail.html", tenant=tenant, app=app, specs=specs,
                           values=json.loads(app.values), history=service.history(app),
                           attachments=service.attachments(app), role=role, may_decide=may_decide,
                           may_withdraw=may_withdraw, errors=errors or {}, comment=comment,
                           done=request.args.get("done"), **_labels()), status


@bp.route("/t/<slug>/applications/<int:app_id>")
def application(slug: str, app_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "applications", "write", kind="union")
    return _detail(tenant, subject, service.access_application(tenant, subject, app_id))


@bp.route("/t/<slug>/applications/<int:app_id>/<any(approve, reject, withdraw):op>", methods=["POST"])
def application_decide(slug: str, app_id: int, op: str):  # type: ignore[no-untyped-def]
    # Deciding needs `approve` as in the API; withdrawing is the applicant's own `write`.
    tenant, subject = access_tenant(slug, "applications", "write" if op == "withdraw" else "approve", kind="union")
    app = service.access_application(tenant, subject, app_id)
    comment = request.form.get("comment", "")
    errors: dict[str, str] = {}
    if len(comment) > COMMENT_MAX or "\x00" in comment:
        errors["comment"] = _("The comment can be at most %(count)s characters.", count=COMMENT_MAX)
    elif op == "reject" and not comment.strip():
        # The member reads the reason: the API refuses a rejection without one, and so does the page.
        errors["comment"] = _("Write the reason for the rejection.")
    if errors:
        return _detail(tenant, subject, app, errors=errors, comment=comment, status=422)
    try:
        if op == "withdraw":
            service.withdraw(app, g.user, comment)
        else:
            service.decide(tenant, subject, g.user, app, approve=op == "approve", comment=comment)
    except APIError as exc:
        if exc.status != 409:
            raise
        db.session.rollback()
        errors["status"] = _("This application has already moved on: look at its history.")
        app = service.access_application(tenant, subject, app_id)
        return _detail(tenant, subject, app, errors=errors, comment=comment, status=409)
    return redirect(url_for("web.application", slug=slug, app_id=app_id, done=op))


@bp.route("/t/<slug>/applications/<int:app_id>/attachments/<int:attachment_id>")
def application_attachment(slug: str, app_id: int, attachment_id: int) -> Response:
    # The same rule as reading the application, on every download: a 診断書 is for the applicant and the approvers.
    tenant, subject = access_tenant(slug, "applications", "write", kind="union")
    app = service.access_application(tenant, subject, app_id)
    row = service.attachment_of(app, attachment_id)
    return documents.download_response(st.storage().get(row.storage_key), row.filename, row.content_type,
                                       fallback="attachment")


# --- form types and the export -------------------------------------------------------------------------------------

def _split_choices(raw: str) -> list[str] | None:
    parts = [p.strip() for chunk in raw.splitlines() for p in chunk.replace("、", ",").split(",")]
    parts = [p for p in parts if p]
    return parts or None


def _type_body() -> tuple[dict[str, Any], dict[int, int], dict[str, str]]:
    """The form as the API's JSON body, which slot each field came from, and what is missing outright."""
    form = request.form
    specs: list[dict[str, Any]] = []
    slot_of: dict[int, int] = {}
    for slot in range(FIELD_SLOTS):
        label = form.get(f"f{slot}_label", "").strip()
        choices = _split_choices(form.get(f"f{slot}_choices", ""))
        if not label and not choices:
            continue
        slot_of[len(specs)] = slot
        spec: dict[str, Any] = {"key": f"f{slot + 1}", "label": label, "kind": form.get(f"f{slot}_kind", "text"),
                                "required": form.get(f"f{slot}_required") == "on"}
        if choices is not None:
            spec["choices"] = choices
        specs.append(spec)
    body: dict[str, Any] = {"name": form.get("name", "").strip(), "description": form.get("description", ""),
                            "fields": specs, "approver_role": form.get("approver_role", "")}
    body["second_approver_role"] = form.get("second_approver_role") or None
    errors: dict[str, str] = {}
    if not specs:
        errors["fields"] = _("Add at least one field.")
    return body, slot_of, errors


def _type_error(field: str, slot_of: dict[int, int]) -> tuple[str, str]:
    """A field path of the API (`fields.2.choices`, `approver_role`) as the form's own field and its message."""
    parts = field.split(".")
    if parts[0] == "fields" and len(parts) >= 2 and parts[1].isdigit():
        slot = slot_of.get(int(parts[1]), 0)
        what = parts[2] if len(parts) > 2 else "label"
        message = {
            "label": _("Give this field a label of at most 100 characters."),
            "kind": _("Choose the kind of this field."),
            "choices": _("A choice field needs its options, all different, and only a choice field has them."),
        }.get(what, _("Check this field."))
        return f"f{slot}_{what if what in ('choices', 'kind') else 'label'}", message
    return field, {
        "name": _("Give the form a name of at most 100 characters."),
        "description": _("The description can be at most 2000 characters."),
        "approver_role": _("Choose who approves."),
        "second_approver_role": _("Choose who approves second, or nobody."),
        "fields": _("Add at least one field, at most 30."),
    }.get(field, _("Check this entry."))


def _flatten(messages: Any, prefix: str = "") -> list[str]:
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return [prefix]


@bp.route("/t/<slug>/applications/types", methods=["GET", "POST"])
def application_types(slug: str):  # type: ignore[no-untyped-def]
    # Defining forms is the union admin's `applications manage`, as for POST application-types in the API.
    tenant, subject = access_tenant(slug, "applications", "manage", kind="union")
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        body, slot_of, errors = _type_body()
        if not errors:
            try:
                loaded = ApplicationTypeIn().load(body)
                row = service.create_type(tenant, g.user, loaded)
            except ValidationError as exc:
                for field in _flatten(exc.messages):
                    key, message = _type_error(field, slot_of)
                    errors.setdefault(key, message)
            except APIError as exc:
                db.session.rollback()
                for field in exc.fields:
                    key, message = _type_error(field, slot_of)
                    errors.setdefault(key, message)
            else:
                return redirect(url_for("web.application_types", slug=slug, done=row.id))
        status = 422
    return render_template("web/applications_types.html", tenant=tenant, types=service.types_of(tenant),
                           specs_of=lambda t: json.loads(t.fields), roles=service.approving_roles(),
                           kinds=FIELD_KINDS, slots=range(FIELD_SLOTS), form=request.form, errors=errors,
                           may_export=firewall.allowed(subject, tenant.slug, "applications", "read"),
                           done=request.args.get("done"), **_labels()), status


@bp.route("/t/<slug>/applications/export.csv")
def applications_export(slug: str) -> Response:
    # The API's export, behind the API's right (`applications read`), as a file the browser saves.
    tenant, subject = access_tenant(slug, "applications", "read", kind="union")
    raw = request.args.get("type_id") or None
    try:
        type_id = int(raw) if raw is not None else None
    except ValueError:
        raise APIError(422, "type_id: not a number", fields={"type_id": ["not a number"]}) from None
    if type_id is not None and not 1 <= type_id <= MAX_ROW_ID:
        raise APIError(422, "type_id: out of range", fields={"type_id": ["out of range"]})
    status = request.args.get("status") or None
    if status is not None and status not in STATUSES:
        raise APIError(422, "status: unknown", fields={"status": ["unknown"]})
    data = service.export_csv(tenant, subject, type_id=type_id, status=status)
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="applications-{tenant.slug}.csv"',
        "Cache-Control": "private, no-store"})
