"""Uploading, versioning, listing and deleting documents. The caller has passed the firewall already."""
from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any
from urllib.parse import quote

from flask import Response
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from federation.access import access_tenant, get_owned
from federation.errors import APIError, invalid
from federation.extensions import db
from federation.firewall import Denied, Subject, firewall
from federation.notices import audience as aud
from federation.space.documents import storage as st
from federation.space.documents.models import Document, DocumentVersion
from tenants.models import OrgUnit, Tenant, User


def sniff(data: bytes) -> str | None:
    """The content type the bytes really are, or None. The name and the client's claimed type are never trusted:
    a browser asked to show a "PDF" that is really HTML would run it in our origin."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


# The names a file of each detected type may carry; the first is the one a download gets when the name has none.
EXTENSIONS = {"application/pdf": (".pdf",), "image/png": (".png",), "image/jpeg": (".jpg", ".jpeg"),
              "image/webp": (".webp",)}


def _split_extension(name: str) -> tuple[str, str]:
    """(stem, ".ext" lowercased) or (name, "") when the name has no extension."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or len(ext) > 10 or not ext.isalnum():
        return name, ""
    return stem, "." + ext.lower()


def check_extension(filename: str, kind: str, field: str = "file") -> None:
    """A name ending in another type's extension (`診断書.pdf.cmd` holding a PDF) is refused: whoever downloads it
    would open it by its name, not by what we detected."""
    ext = _split_extension(filename)[1]
    if ext and ext not in EXTENSIONS[kind]:
        allowed = " or ".join(EXTENSIONS[kind])
        raise invalid(field, f"the name ends in {ext} but the content is {kind}: name it {allowed}")


def safe_download_name(filename: str, content_type: str, fallback: str = "document") -> str:
    """The stored display name with the extension of the detected type, whatever it was uploaded as."""
    stem, ext = _split_extension(filename)
    allowed = EXTENSIONS.get(content_type, ())
    if ext in allowed:
        return filename
    if not ext:
        stem = filename
    inner_stem, inner_ext = _split_extension(stem)
    if inner_ext in allowed:
        return stem  # 診断書.pdf.cmd -> 診断書.pdf
    return (stem or fallback) + (allowed[0] if allowed else ".bin")


def clean_filename(raw: str | None) -> str:
    """The name to hand back on download: the last path component, no control characters, at most 255 chars."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in unicodedata.normalize("NFC", name) if unicodedata.category(c)[0] != "C").strip()
    return (name or "document")[:255]


def read_upload(upload: FileStorage | None) -> tuple[bytes, str, str]:
    if upload is None:
        raise invalid("file", "attach the document as multipart field `file`")
    limit = st.max_bytes()
    try:
        data = upload.stream.read(limit + 1)
    finally:
        # A large upload is spooled to a temporary file: released now rather than whenever it is collected.
        upload.close()
    if len(data) > limit:
        raise APIError(413, f"file: larger than {limit // (1024 * 1024)} MB", fields={"file": ["too large"]})
    if not data:
        raise invalid("file", "is empty")
    kind = sniff(data)
    if kind is None:
        raise invalid("file", "not a PDF, PNG, JPEG or WebP file (checked by its content)")
    filename = clean_filename(upload.filename)
    check_extension(filename, kind)
    return data, kind, filename


def download_response(data: bytes, filename: str, content_type: str, fallback: str = "document") -> Response:
    """The stored bytes as a download, never shown inline: the ASCII name is for old clients, the RFC 5987 one keeps
    Japanese names intact."""
    if content_type not in EXTENSIONS:
        content_type = "application/octet-stream"
    filename = safe_download_name(filename, content_type, fallback)
    stem, ext = _split_extension(filename)
    ascii_stem = stem.encode("ascii", "ignore").decode().replace('"', "").replace("\\", "").strip()
    ascii_name = (ascii_stem or fallback) + ext
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"
    return Response(data, mimetype=content_type, headers={
        "Content-Disposition": disposition,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
    })


def parse_tags(raw: str | None) -> list[str]:
    if not raw:
        return []
    tags = sorted({t.strip() for t in raw.split(",") if t.strip()})
    if len(tags) > 20 or any(len(t) > 50 for t in tags):
        raise invalid("tags", "at most 20 comma-separated tags of up to 50 characters")
    return tags


def parse_audience(raw: str | None, tenant: Tenant, subject: Subject) -> dict[str, Any]:
    if raw is None:
        return {"all": True}
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid("audience", 'JSON: {"all": true} or {"units": [...]}') from None
    return aud.validate(value, tenant, subject)


def _version_row(document: Document, version: int, user: User, data: bytes, kind: str, filename: str,
           key: str) -> DocumentVersion:
    row = DocumentVersion(document_id=document.id, tenant_id=document.tenant_id, version=version, storage_key=key,
                          filename=filename, content_type=kind, size=len(data),
                          sha256=hashlib.sha256(data).hexdigest(), uploaded_by=user.id)
    db.session.add(row)
    return row


def create_document(tenant: Tenant, user: User, subject: Subject, form: dict[str, Any],
                    upload: FileStorage | None) -> Document:
    audience = parse_audience(form.get("audience"), tenant, subject)
    tags = parse_tags(form.get("tags"))
    data, kind, filename = read_upload(upload)
    doc = Document(tenant_id=tenant.id, title=form["title"], folder=form.get("folder") or None,
                   tags=json.dumps(tags, ensure_ascii=False), audience=json.dumps(audience), latest_version=1,
                   created_by=user.id)
    db.session.add(doc)
    db.session.flush()
    with st.written(data) as key:
        _version_row(doc, 1, user, data, kind, filename, key)
        db.session.commit()
    return doc


def add_version(doc: Document, user: User, upload: FileStorage | None) -> Document:
    data, kind, filename = read_upload(upload)
    # Locks the document row (PostgreSQL) so two uploads at once cannot both claim the same next number; the
    # unique constraint stops it anyway where locking is not available.
    db.session.refresh(doc, with_for_update=True)
    doc.latest_version += 1
    with st.written(data) as key:
        _version_row(doc, doc.latest_version, user, data, kind, filename, key)
        db.session.commit()
    return doc


def versions(doc: Document) -> list[DocumentVersion]:
    return list(db.session.execute(select(DocumentVersion).where(DocumentVersion.document_id == doc.id)
                                   .order_by(DocumentVersion.version.desc())).scalars())


def version_of(doc: Document, number: int | None) -> DocumentVersion:
    row = db.session.execute(select(DocumentVersion).where(
        DocumentVersion.document_id == doc.id,
        DocumentVersion.version == (number or doc.latest_version))).scalar_one_or_none()
    if row is None:
        raise APIError(404, "version: no such version", fields={"version": ["no such version"]})
    return row


def latest_of(doc: Document) -> DocumentVersion | None:
    return db.session.execute(select(DocumentVersion).where(
        DocumentVersion.document_id == doc.id, DocumentVersion.version == doc.latest_version)).scalar_one_or_none()


def delete_document(doc: Document) -> None:
    keys = [v.storage_key for v in versions(doc)]
    db.session.delete(doc)
    db.session.commit()
    # Files go only after the rows are gone: a failure here leaves an orphan file, never a row without its file.
    store = st.storage()
    for key in keys:
        try:
            store.delete(key)
        except st.StorageUnavailable:
            # The document is already gone for every reader; the store has logged the orphan's key. A 503 here
            # would tell the officer the delete failed when it did not.
            continue


def audience_covers(doc: Document, user: User) -> bool:
    """Whether a member's unit lies inside the document's audience (a unit includes everything under it)."""
    audience = json.loads(doc.audience)
    if audience.get("all"):
        return True
    if user.unit is None:
        return False
    paths = db.session.execute(select(OrgUnit.path).where(
        OrgUnit.tenant_id == doc.tenant_id, OrgUnit.id.in_(audience.get("units", [])))).scalars()
    return any(user.unit.path.startswith(p) for p in paths)


def is_officer(subject: Subject, slug: str) -> bool:
    """Officers (documents write) see and manage every document; members only those addressed to them."""
    return firewall.allowed(subject, slug, "documents", "write")


def listing(tenant: Tenant, subject: Subject, user: User, *, folder: str | None = None,
            tag: str | None = None) -> list[Document]:
    """The union's documents at their latest version, newest first, as this person may see them: the one list the
    API and the pages show."""
    stmt = select(Document).where(Document.tenant_id == tenant.id)
    if folder:
        stmt = stmt.where(Document.folder == folder)
    docs = list(db.session.execute(stmt.order_by(Document.updated_at.desc(), Document.id.desc())).scalars())
    if tag:
        docs = [d for d in docs if tag in json.loads(d.tags)]
    if not is_officer(subject, tenant.slug):
        docs = [d for d in docs if audience_covers(d, user)]
    return docs


def visible(slug: str, document_id: int, user: User) -> tuple[Tenant, Document]:
    """A document the caller may read, for the API and the pages alike.

    Outside the audience answers 404, not 403: a member must not learn that a document for another branch exists
    (F8)."""
    tenant, subject = access_tenant(slug, "documents", "read", kind="union")
    doc = get_owned(Document, document_id, tenant)
    if not is_officer(subject, slug) and not audience_covers(doc, user):
        raise Denied(404)
    return tenant, doc
