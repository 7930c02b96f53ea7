"""A reminder push to the members who have not answered a survey yet.

Who has answered comes from the participant rows, the same for anonymous surveys: the reminder needs no answer.
"""
from __future__ import annotations

from sqlalchemy import select

from federation.errors import conflict
from federation.extensions import db, utcnow
from federation.jobs import enqueue_now, job
from federation.push.messages import message_payload, send_to_users
from federation.space.surveys import service
from federation.space.surveys.models import Survey, SurveyParticipant
from tenants.models import Tenant, User

TTL = 6 * 3600


def not_answered(survey: Survey) -> list[int]:
    answered = select(SurveyParticipant.user_id).where(SurveyParticipant.survey_id == survey.id)
    # Active members only, read now: a member suspended since the reminder was asked for gets nothing (F7).
    return list(db.session.execute(select(User.id).where(
        User.tenant_id == survey.tenant_id, User.status == "active", User.id.not_in(answered))).scalars())


def request_reminder(survey: Survey) -> int:
    if not service.is_open(survey):
        raise conflict("closes_at" if survey.opens_at <= utcnow() else "opens_at",
                       "reminders go only while the survey is open")
    members = len(not_answered(survey))
    db.session.rollback()
    enqueue_now(push_survey_reminder, survey.id)
    return members


@job
def push_survey_reminder(survey_id: int) -> None:
    survey = db.session.get(Survey, survey_id)
    if survey is None or not service.is_open(survey):
        return
    tenant = db.session.get(Tenant, survey.tenant_id)
    users = not_answered(survey)
    payload = message_payload("survey_reminder", survey.title, "アンケートへのご回答をお願いします",
                              f"/surveys/{survey.id}", tenant.name if tenant else "")
    send_to_users(users, payload, topic=f"s{survey.id}", ttl=TTL, job_key=f"s{survey.id}")
