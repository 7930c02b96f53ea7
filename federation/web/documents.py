"""Pages for a union's documents: members list and download the ones addressed to their unit; officers upload,
add versions and delete. Access is the API's own (`federation.space.documents.views`), so a page answers 403 or 404
exactly where the API does, and every download is checked by the firewall again."""
from __future__ import annotations

import json
from typing import Any

from flask import g, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from federation.access import access_tenant, get_owned
from federation.errors import APIError, invalid
from federation.extensions import db
from federation.firewall import Subject
from federation.space.documents import service
from federation.space.documents import storage as st
from federation.space.documents.models import Document
from federation.space.documents.schemas import DocumentForm, DownloadQuery
from federation.web import bp
from tenants.models import OrgUnit, Tenant
from tenants.reads import units_by_id, units_of_kinds

# The words for the fields a document form can get wrong; the API's messages are English and shown only in English.
FIELD_LABELS = {
    "title": _l("Title"),
    "folder": _l("Folder"),
    "tags": _l("Tags"),
    "audience": _l("Audience"),
    "file": _l("File"),
    "version": _l("Version"),
}
KIND_LABELS = {
    "application/pdf": "PDF",
    "image/png": _l("Image"),
    "image/jpeg": _l("Image"),
    "image/webp": _l("Image"),
}

# What the person can fix on the form (the API answers 413 for a file too large, 422 for the rest).
UPLOAD_PROBLEMS = (413, 422)


@bp.app_template_filter("filesize")
def filesize(size: int | None) -> str:
    """Bytes as a person reads them: 1 decimal under 10, none above (KB and MB are how offices write sizes)."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size} B"
    value, unit = (size / 1024, "KB") if size < 1024 * 1024 else (size / (1024 * 1024), "MB")
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def _field_errors(error: ValidationError | APIError) -> list[tuple[str, str]]:
    """(label, message) per field at fault: the label always, the message for English pages."""
    messages: Any = error.messages if isinstance(error, ValidationError) else error.fields
    out: list[tuple[str, str]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            head = str(key).split(".", 1)[0].split("[", 1)[0]
            while isinstance(value, list | tuple) and value:
                value = value[0]
            out.append((str(FIELD_LABELS.get(head, head)), str(value)))
    if not out:
        out.append(("", error.message if isinstance(error, APIError) else str(messages)))
    return out


def _audience_json(form: MultiDict[str, str]) -> str:
    """The audience the form chose, as the JSON the service validates ({"all": true} or {"units": [...]})."""
    if form.get("audience", "all") == "all":
        return json.dumps({"all": True})
    units = []
    for raw in form.getlist("audience_unit"):
        try:
            units.append(int(raw))
        except ValueError:
            raise invalid("audience", "unit ids are numbers") from None
    return json.dumps({"units": units})


def _choosable_units(tenant: Tenant) -> list[OrgUnit]:
    """Branches with their workplaces under them, in tree order: what a document can be addressed to."""
    return units_of_kinds(tenant, ("branch", "workplace"))


def _list_page(tenant: Tenant, subject: Subject, *, errors: list[tuple[str, str]] | None = None,
               form: MultiDict[str, str] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    folder = (request.args.get("folder") or "").strip()[:100] or None
    tag = (request.args.get("tag") or "").strip()[:50] or None
    # The folder and tag pickers are built from the whole visible list, so they never name a folder only another
    # branch's documents use.
    everything = service.listing(tenant, subject, g.user)
    docs = service.listing(tenant, subject, g.user, folder=folder, tag=tag) if folder or tag else everything
    folders = sorted({d.folder for d in everything if d.folder})
    tags = sorted({t for d in everything for t in json.loads(d.tags)})
    officer = service.is_officer(subject, tenant.slug)
    chosen = {int(u) for u in (form.getlist("audience_unit") if form else []) if u.isdigit()}
    return render_template(
        "web/documents.html", tenant=tenant, docs=docs, latest={d.id: service.latest_of(d) for d in docs},
        tag_lists={d.id: json.loads(d.tags) for d in docs}, folders=folders, tags=tags, folder=folder, tag=tag,
        officer=officer, units=_choosable_units(tenant) if officer else [], errors=errors or [], form=form or {},
        chosen=chosen, kinds=KIND_LABELS, max_mb=st.max_bytes() // (1024 * 1024),
        done=request.args.get("done")), status


@bp.route("/t/<slug>/documents", methods=["GET", "POST"])
def documents(slug: str):  # type: ignore[no-untyped-def]
    if request.method == "GET":
        tenant, subject = access_tenant(slug, "documents", "read", kind="union")
        return _list_page(tenant, subject)
    tenant, subject = access_tenant(slug, "documents", "write", kind="union")
    form = request.form
    upload = request.files.get("file")
    try:
        fields = DocumentForm().load({
            "title": form.get("title", "").strip(),
            **({"folder": form["folder"].strip()} if form.get("folder", "").strip() else {}),
            **({"tags": form["tags"]} if form.get("tags", "").strip() else {}),
            "audience": _audience_json(form),
        })
        if upload is None or not upload.filename:
            # A form sent with no file chosen still carries an empty part: the same 422 as no part at all.
            upload = None
        doc = service.create_document(tenant, g.user, subject, fields, upload)
    except (ValidationError, APIError) as exc:
        db.session.rollback()
        if isinstance(exc, APIError) and exc.status not in UPLOAD_PROBLEMS:
            raise  # the store being down is no problem with the form: the error page says to try again
        # A file too large is shown on the form like any other problem with it (the API answers 413).
        return _list_page(tenant, subject, errors=_field_errors(exc), form=form, status=422)
    return redirect(url_for("web.document", slug=slug, document_id=doc.id, done="uploaded"))


def _detail_page(tenant: Tenant, doc: Document, subject: Subject, *, errors: list[tuple[str, str]] | None = None,
                 status: int = 200):  # type: ignore[no-untyped-def]
    officer = service.is_officer(subject, tenant.slug)
    audience = json.loads(doc.audience)
    units = units_by_id(tenant)
    return render_template(
        "web/documents_detail.html", tenant=tenant, doc=doc, latest=service.latest_of(doc),
        tags=json.loads(doc.tags), officer=officer, versions=service.versions(doc) if officer else [],
        audience_units=[units[u].name for u in audience.get("units", []) if u in units],
        everyone=bool(audience.get("all")), errors=errors or [], kinds=KIND_LABELS,
        max_mb=st.max_bytes() // (1024 * 1024), done=request.args.get("done")), status


@bp.route("/t/<slug>/documents/<int:document_id>")
def document(slug: str, document_id: int):  # type: ignore[no-untyped-def]
    # The API's own check, imported rather than copied so the pages cannot drift from it: a member outside the
    # audience gets 404, as if the document did not exist (F8).
    tenant, doc = service.visible(slug, document_id, g.user)
    return _detail_page(tenant, doc, g.subject)


@bp.route("/t/<slug>/documents/<int:document_id>/versions", methods=["POST"])
def document_new_version(slug: str, document_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "documents", "write", kind="union")
    doc = get_owned(Document, document_id, tenant)
    upload = request.files.get("file")
    try:
        service.add_version(doc, g.user, upload if upload is not None and upload.filename else None)
    except APIError as exc:
        db.session.rollback()
        if exc.status not in UPLOAD_PROBLEMS:
            raise
        return _detail_page(tenant, doc, subject, errors=_field_errors(exc), status=422)
    return redirect(url_for("web.document", slug=slug, document_id=doc.id, done="version"))


@bp.route("/t/<slug>/documents/<int:document_id>/download")
def document_download(slug: str, document_id: int):  # type: ignore[no-untyped-def]
    # Checked on every download, exactly as the API checks it: a member who loses access loses it at once (F7).
    _tenant, doc = service.visible(slug, document_id, g.user)
    try:
        query = DownloadQuery().load(request.args.to_dict())
    except ValidationError as exc:
        raise APIError(422, "version: a version number", fields=dict(exc.messages)) from None
    version = service.version_of(doc, query["version"])
    return service.download_response(st.storage().get(version.storage_key), version.filename, version.content_type)


@bp.route("/t/<slug>/documents/<int:document_id>/delete", methods=["GET", "POST"])
def document_delete(slug: str, document_id: int):  # type: ignore[no-untyped-def]
    """A page of its own asks first, so deleting never rests on the page script alone."""
    tenant, _subject = access_tenant(slug, "documents", "write", kind="union")
    doc = get_owned(Document, document_id, tenant)
    if request.method == "GET":
        return render_template("web/documents_delete.html", tenant=tenant, doc=doc,
                               versions=len(service.versions(doc)))
    service.delete_document(doc)
    return redirect(url_for("web.documents", slug=slug, done="deleted"))
