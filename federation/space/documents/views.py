"""Documents: upload, versions, list and download for the audience chosen, delete."""
from __future__ import annotations

import json

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from federation.access import access_tenant, get_owned
from federation.extensions import db
from federation.firewall import Denied, Subject, firewall
from federation.space.documents import service
from federation.space.documents import storage as st
from federation.space.documents.models import Document
from federation.space.documents.schemas import (
    DocumentForm,
    DocumentList,
    DocumentListQuery,
    DocumentOut,
    DownloadQuery,
    VersionList,
)
from tenants.models import Tenant

blp = Blueprint("documents", __name__, url_prefix="/api/v1", description="A union's documents (議案書 etc.)")
# Ids in paths stop at the 32-bit column range: a larger number is no row (404), not a driver overflow (500).


def _is_officer(subject: Subject, slug: str) -> bool:
    return firewall.allowed(subject, slug, "documents", "write")


def _visible(slug: str, document_id: int) -> tuple[Tenant, Document]:
    """A document the caller may read: officers see every one, members only those addressed to their unit.

    Outside the audience answers 404, not 403: a member must not learn that a document for another branch exists
    (F8)."""
    tenant, subject = access_tenant(slug, "documents", "read", kind="union")
    doc = get_owned(Document, document_id, tenant)
    if not _is_officer(subject, slug) and not service.audience_covers(doc, g.user):
        raise Denied(404)
    return tenant, doc


@blp.route("/tenants/<slug>/documents")
class Documents(MethodView):
    @blp.arguments(DocumentListQuery, location="query")
    @blp.response(200, DocumentList)
    def get(self, q, slug):
        """The union's documents at their latest version (members: those addressed to their unit)"""
        tenant, subject = access_tenant(slug, "documents", "read", kind="union")
        stmt = select(Document).where(Document.tenant_id == tenant.id)
        if q["folder"]:
            stmt = stmt.where(Document.folder == q["folder"])
        docs = list(db.session.execute(stmt.order_by(Document.updated_at.desc(), Document.id.desc())).scalars())
        if q["tag"]:
            docs = [d for d in docs if q["tag"] in json.loads(d.tags)]
        if not _is_officer(subject, slug):
            docs = [d for d in docs if service.audience_covers(d, g.user)]
        return {"items": docs}

    @blp.arguments(DocumentForm, location="form")
    @blp.response(201, DocumentOut)
    def post(self, form, slug):
        """Upload a document (multipart: file, title, folder, tags, audience): PDF, PNG, JPEG or WebP"""
        tenant, subject = access_tenant(slug, "documents", "write", kind="union")
        doc = service.create_document(tenant, g.user, subject, form, request.files.get("file"))
        return doc


@blp.route("/tenants/<slug>/documents/<int(max=2147483647):document_id>")
class OneDocument(MethodView):
    @blp.response(200, DocumentOut)
    def get(self, slug, document_id):
        """One document at its latest version"""
        _, doc = _visible(slug, document_id)
        return doc

    @blp.response(204)
    def delete(self, slug, document_id):
        """Delete a document with every version and file (officers)"""
        tenant, _ = access_tenant(slug, "documents", "write", kind="union")
        service.delete_document(get_owned(Document, document_id, tenant))


@blp.route("/tenants/<slug>/documents/<int(max=2147483647):document_id>/versions")
class Versions(MethodView):
    @blp.response(200, VersionList)
    def get(self, slug, document_id):
        """Every version of a document, newest first"""
        _, doc = _visible(slug, document_id)
        return {"items": service.versions(doc)}

    @blp.response(201, DocumentOut)
    def post(self, slug, document_id):
        """Upload a new version (multipart: file); earlier versions stay downloadable"""
        tenant, _ = access_tenant(slug, "documents", "write", kind="union")
        doc = get_owned(Document, document_id, tenant)
        return (service.add_version(doc, g.user, request.files.get("file")))


@blp.route("/tenants/<slug>/documents/<int(max=2147483647):document_id>/download")
class Download(MethodView):
    @blp.arguments(DownloadQuery, location="query")
    def get(self, q, slug, document_id):
        """The file of the latest version, or of ?version=n"""
        # Checked on every download, never cached or signed once: a member who loses access loses it at once (F7).
        _, doc = _visible(slug, document_id)
        version = service.version_of(doc, q["version"])
        data = st.storage().get(version.storage_key)
        return service.download_response(data, version.filename, version.content_type)
