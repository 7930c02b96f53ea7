"""Documents: upload, versions, list and download for the audience chosen, delete."""
from __future__ import annotations

from flask import g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant, get_owned
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

blp = Blueprint("documents", __name__, url_prefix="/api/v1", description="A union's documents (議案書 etc.)")
# Ids in paths stop at the 32-bit column range: a larger number is no row (404), not a driver overflow (500).


@blp.route("/tenants/<slug>/documents")
class Documents(MethodView):
    @blp.arguments(DocumentListQuery, location="query")
    @blp.response(200, DocumentList)
    def get(self, q, slug):
        """The union's documents at their latest version (members: those addressed to their unit)"""
        tenant, subject = access_tenant(slug, "documents", "read", kind="union")
        return {"items": service.listing(tenant, subject, g.user, folder=q["folder"], tag=q["tag"])}

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
        _, doc = service.visible(slug, document_id, g.user)
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
        _, doc = service.visible(slug, document_id, g.user)
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
        _, doc = service.visible(slug, document_id, g.user)
        version = service.version_of(doc, q["version"])
        data = st.storage().get(version.storage_key)
        return service.download_response(data, version.filename, version.content_type)
