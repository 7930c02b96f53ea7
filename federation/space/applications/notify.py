"""A push to the applicant when an approver decides their application: approved, passed to the second approver,
or rejected. Read again when the job runs: a withdrawn or deleted application, or an applicant no longer active
(F7), gets nothing; the push names the form and the outcome, never the comment (it shows on the page only)."""
from __future__ import annotations

from federation.extensions import db
from federation.jobs import enqueue_after_commit, job
from federation.push.messages import message_payload, send_to_users
from federation.space.applications.models import Application
from tenants.models import Tenant, User

TTL = 24 * 3600
OUTCOME = {"approved": "承認されました", "first_approved": "一次承認されました（最終承認待ち）",
           "rejected": "却下されました。理由を確認してください"}


def after_decision(app: Application) -> None:
    enqueue_after_commit(push_decision, app.id, app.status, job_id=f"app-{app.id}-{app.status}")


@job
def push_decision(app_id: int, status: str) -> None:
    app = db.session.get(Application, app_id)
    if app is None or app.status != status or status not in OUTCOME:
        return  # decided again, withdrawn or deleted since: this push would say something no longer true
    applicant = db.session.get(User, app.applicant_id)
    if applicant is None or applicant.status != "active" or applicant.tenant_id != app.tenant_id:
        return
    tenant = db.session.get(Tenant, app.tenant_id)
    payload = message_payload("application_decision", app.type.name, OUTCOME[status],
                              f"/t/{tenant.slug}/applications/{app.id}", tenant.name)
    send_to_users([applicant.id], payload, topic=f"a{app.id}", ttl=TTL, job_key=f"a{app.id}-{status}")
