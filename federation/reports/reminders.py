"""The pushes of a report request: one telling the addressed unions' officers that it was sent, and the reminder to
the officers of unions that have not answered.

A job that reads the request, its addressed unions and their answers again when it runs: a union that answered
since gets nothing, nor does an officer whose role was revoked or who was suspended (F7), and the firewall is
asked for each recipient (`reports`, `answer` in their own union)."""
from __future__ import annotations

from federation.errors import conflict
from federation.extensions import db
from federation.firewall import Subject
from federation.jobs import enqueue_now, job
from federation.push.messages import message_payload, send_to_users
from federation.reports import service
from federation.reports.models import ReportRequest
from tenants.models import Tenant

TTL = 12 * 3600


def request_reminder(report: ReportRequest, subject: Subject) -> int:
    if not service.is_open(report):
        raise conflict("report", "reminders go only while the report is open")
    unions = service.unanswered_count(report, subject)
    db.session.rollback()
    enqueue_now(push_report_reminder, report.id)
    return unions


@job
def push_report_reminder(report_id: int) -> None:
    _push(report_id, "report_reminder", "上部団体への報告の提出をお願いします", "reminder")


@job
def push_report_request(report_id: int) -> None:
    """Sent with the request: the same recipients as a reminder (at that moment no union has answered)."""
    _push(report_id, "report_request", "上部団体から報告の依頼が届きました", "request")


def _push(report_id: int, kind: str, body: str, key: str) -> None:
    report = db.session.get(ReportRequest, report_id)
    if report is None:
        return
    federation = db.session.get(Tenant, report.tenant_id)
    users = service.reminder_recipients(report)
    if federation is None or not users:
        return
    payload = message_payload(kind, report.title, body, f"/reports/{report.id}", federation.name)
    send_to_users(users, payload, topic=f"r{report.id}", ttl=TTL, job_key=f"r{report.id}-{key}")
