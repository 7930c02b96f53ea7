"""Upward reports: the federation asks, each addressed union's officers answer (SPEC "Upward reports")."""
from __future__ import annotations

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant
from federation.reports import reminders, service
from federation.reports.models import ReportRequest
from federation.reports.schemas import (
    ReportAnswerIn,
    ReportAnswerOut,
    ReportAnswersOut,
    ReportIn,
    ReportList,
    ReportOut,
    ReportReminderOut,
    UnionReportList,
    UnionReportOut,
)

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Upward reports (上部団体への報告)")
ID = "int(max=2147483647)"


def _out(report: ReportRequest) -> dict:
    out = {c: getattr(report, c) for c in ("id", "title", "due_at", "closed_at", "created_at", "audience")}
    out["fields"] = service.fields_of(report)
    out["is_open"] = service.is_open(report)
    return out


@blp.route("/federations/<fed>/reports")
class Reports(MethodView):
    @blp.response(200, ReportList)
    def get(self, fed):
        """The federation's report requests (a council officer: the ones they wrote), newest first"""
        tenant, subject = access_tenant(fed, "reports", "read", kind="federation")
        return {"items": [_out(r) for r in service.listing(tenant, subject)]}

    @blp.arguments(ReportIn)
    @blp.response(201, ReportOut)
    def post(self, body, fed):
        """Send a report request: typed fields, a due time, and an audience as for notices"""
        tenant, subject = access_tenant(fed, "reports", "write", kind="federation")
        return _out(service.create(tenant, subject, body))


@blp.route(f"/federations/<fed>/reports/<{ID}:report_id>")
class OneReport(MethodView):
    @blp.response(200, ReportOut)
    def get(self, fed, report_id):
        """One report request"""
        tenant, subject = access_tenant(fed, "reports", "read", kind="federation")
        return _out(service.officer_report(tenant, subject, report_id))


@blp.route(f"/federations/<fed>/reports/<{ID}:report_id>/close")
class CloseReport(MethodView):
    @blp.response(200, ReportOut)
    def post(self, fed, report_id):
        """Close the request before its due time: no answer or correction after this"""
        tenant, subject = access_tenant(fed, "reports", "write", kind="federation")
        return _out(service.close(service.officer_report(tenant, subject, report_id), subject))


@blp.route(f"/federations/<fed>/reports/<{ID}:report_id>/answers")
class Answers(MethodView):
    @blp.response(200, ReportAnswersOut)
    def get(self, fed, report_id):
        """Each addressed union's current answer, totals and averages per council and block, who has not answered"""
        tenant, subject = access_tenant(fed, "reports", "read", kind="federation")
        return service.answers(service.officer_report(tenant, subject, report_id), subject)


@blp.route(f"/federations/<fed>/reports/<{ID}:report_id>/answers.csv")
class AnswersCsv(MethodView):
    @blp.response(200, content_type="text/csv")
    def get(self, fed, report_id):
        """The current answers as CSV (UTF-8 with BOM, for Excel)"""
        tenant, subject = access_tenant(fed, "reports", "read", kind="federation")
        report = service.officer_report(tenant, subject, report_id)
        return Response(service.answers_csv(report, subject), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="report-{report.id}-answers.csv"',
            "Cache-Control": "private, no-store"})


@blp.route(f"/federations/<fed>/reports/<{ID}:report_id>/reminders")
class Reminders(MethodView):
    @blp.response(202, ReportReminderOut)
    def post(self, fed, report_id):
        """Push a reminder to the officers of every addressed union that has not answered (sent in the background)"""
        tenant, subject = access_tenant(fed, "reports", "write", kind="federation")
        report = service.officer_report(tenant, subject, report_id)
        return {"report_id": report.id, "unions": reminders.request_reminder(report, subject)}


@blp.route("/unions/<union>/reports")
class UnionReports(MethodView):
    @blp.response(200, UnionReportList)
    def get(self, union):
        """The report requests addressed to the union, with its current answer (its officers only)"""
        tenant, _ = access_tenant(union, "reports", "read", kind="union")
        return {"items": [service.union_view(tenant, r, a, all_versions=False)
                          for r, a in service.union_listing(tenant)]}


@blp.route(f"/unions/<union>/reports/<{ID}:report_id>")
class UnionReport(MethodView):
    @blp.response(200, UnionReportOut)
    def get(self, union, report_id):
        """One request addressed to the union, with every version of its answer, newest first"""
        tenant, _ = access_tenant(union, "reports", "read", kind="union")
        return service.union_view(tenant, service.union_report(tenant, report_id), None, all_versions=True)


@blp.route(f"/unions/<union>/reports/<{ID}:report_id>/answer")
class UnionAnswer(MethodView):
    @blp.arguments(ReportAnswerIn)
    @blp.response(200, ReportAnswerOut)
    def put(self, body, union, report_id):
        """Submit or correct the union's answer until the request closes; every version is kept"""
        tenant, subject = access_tenant(union, "reports", "answer", kind="union")
        report = service.union_report(tenant, report_id)
        return service.answer_out(service.submit(tenant, subject, report, body["values"]))
