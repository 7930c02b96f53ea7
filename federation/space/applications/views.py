"""Application forms, filing, attachments, approval and the officers' CSV export."""
from __future__ import annotations

from flask import Response, g, request
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant
from federation.space.applications import service
from federation.space.applications.schemas import (
    ApplicationIn,
    ApplicationList,
    ApplicationOut,
    ApplicationQuery,
    ApplicationTypeIn,
    ApplicationTypeList,
    ApplicationTypeOut,
    AttachmentOut,
    DecisionIn,
    ExportQuery,
    RejectIn,
)
from federation.space.documents import service as documents
from federation.space.documents import storage as st

blp = Blueprint("applications", __name__, url_prefix="/api/v1", description="Applications (申請) and their approval")


@blp.route("/tenants/<slug>/application-types")
class ApplicationTypes(MethodView):
    @blp.response(200, ApplicationTypeList)
    def get(self, slug):
        """The union's application forms"""
        # Anyone who may file may see the forms; filing is the member's `applications write`.
        tenant, _ = access_tenant(slug, "applications", "write", kind="union")
        return {"items": [service.type_dict(t) for t in service.types_of(tenant)]}

    @blp.arguments(ApplicationTypeIn)
    @blp.response(201, ApplicationTypeOut)
    def post(self, body, slug):
        """Define an application form: its fields and who approves each step"""
        tenant, _ = access_tenant(slug, "applications", "manage", kind="union")
        return service.type_dict(service.create_type(tenant, g.user, body))


@blp.route("/tenants/<slug>/applications")
class Applications(MethodView):
    @blp.arguments(ApplicationQuery, location="query")
    @blp.response(200, ApplicationList)
    def get(self, q, slug):
        """Your own applications (view=mine), or those you may decide (view=to_approve, view=approvable)"""
        tenant, subject = access_tenant(slug, "applications", "write", kind="union")
        rows = service.listing(tenant, subject, view=q["view"], status=q["status"], type_id=q["type_id"])
        return {"items": [service.app_dict(a) for a in rows]}

    @blp.arguments(ApplicationIn)
    @blp.response(201, ApplicationOut)
    def post(self, body, slug):
        """File an application with a form's values"""
        tenant, _ = access_tenant(slug, "applications", "write", kind="union")
        return service.app_dict(service.submit(tenant, g.user, body["type_id"], body["values"]))


@blp.route("/tenants/<slug>/applications/export.csv")
class Export(MethodView):
    @blp.arguments(ExportQuery, location="query")
    @blp.response(200, content_type="text/csv")
    def get(self, q, slug):
        """The applications you may decide, as CSV (UTF-8 with BOM)"""
        tenant, subject = access_tenant(slug, "applications", "read", kind="union")
        data = service.export_csv(tenant, subject, type_id=q["type_id"], status=q["status"])
        return Response(data, mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="applications-{tenant.slug}.csv"'})


@blp.route("/tenants/<slug>/applications/<int:app_id>")
class OneApplication(MethodView):
    @blp.response(200, ApplicationOut)
    def get(self, slug, app_id):
        """One application with its status history"""
        tenant, subject = access_tenant(slug, "applications", "write", kind="union")
        return service.app_dict(service.access_application(tenant, subject, app_id))


@blp.route("/tenants/<slug>/applications/<int:app_id>/approve")
class Approve(MethodView):
    @blp.arguments(DecisionIn)
    @blp.response(200, ApplicationOut)
    def post(self, body, slug, app_id):
        """Approve the step that is yours to decide"""
        tenant, subject = access_tenant(slug, "applications", "approve", kind="union")
        app = service.access_application(tenant, subject, app_id)
        return service.app_dict(service.decide(tenant, subject, g.user, app, approve=True, comment=body["comment"]))


@blp.route("/tenants/<slug>/applications/<int:app_id>/reject")
class Reject(MethodView):
    @blp.arguments(RejectIn)
    @blp.response(200, ApplicationOut)
    def post(self, body, slug, app_id):
        """Reject, with the reason the member will read"""
        tenant, subject = access_tenant(slug, "applications", "approve", kind="union")
        app = service.access_application(tenant, subject, app_id)
        return service.app_dict(service.decide(tenant, subject, g.user, app, approve=False,
                                               comment=body["comment"]))


@blp.route("/tenants/<slug>/applications/<int:app_id>/withdraw")
class Withdraw(MethodView):
    @blp.arguments(DecisionIn)
    @blp.response(200, ApplicationOut)
    def post(self, body, slug, app_id):
        """Withdraw your own application while it is still open"""
        tenant, subject = access_tenant(slug, "applications", "write", kind="union")
        app = service.access_application(tenant, subject, app_id)
        return service.app_dict(service.withdraw(app, g.user, body["comment"]))


@blp.route("/tenants/<slug>/applications/<int(max=2147483647):app_id>/attachments")
class Attachments(MethodView):
    @blp.response(201, AttachmentOut)
    def post(self, slug, app_id):
        """Attach a file to your own pending application (multipart: file): PDF, PNG, JPEG or WebP, at most 5"""
        tenant, subject = access_tenant(slug, "applications", "write", kind="union")
        app = service.access_application(tenant, subject, app_id)
        return service.add_attachment(app, g.user, request.files.get("file"))


@blp.route("/tenants/<slug>/applications/<int(max=2147483647):app_id>/attachments/"
           "<int(max=2147483647):attachment_id>")
class OneAttachment(MethodView):
    def get(self, slug, app_id, attachment_id):
        """Download an attached file (the applicant and those who may decide the application)"""
        # The same rule as reading the application, checked on every download: a 診断書 is for those eyes only.
        tenant, subject = access_tenant(slug, "applications", "write", kind="union")
        app = service.access_application(tenant, subject, app_id)
        row = service.attachment_of(app, attachment_id)
        return documents.download_response(st.storage().get(row.storage_key), row.filename, row.content_type,
                                           fallback="attachment")
