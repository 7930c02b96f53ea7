"""Pushes of a survey: once when it opens, and a reminder an officer asks for, both to the members who have not
answered it yet.

Who has answered comes from the participant rows, the same for anonymous surveys: neither push needs an answer.
Both are jobs that read the survey and its members again when they run: a survey closed or deleted since gets no
push, and only members still active whom the firewall still lets answer in that union are sent one (F7).
"""
from __future__ import annotations

from sqlalchemy import select, update

from federation.errors import conflict
from federation.extensions import db, utcnow
from federation.jobs import enqueue_after_commit, enqueue_now, job
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


def _may_answer(tenant: Tenant, user_ids: list[int]) -> list[int]:
    from federation.auth.service import subject_of
    from federation.firewall import firewall

    snap = firewall.current()
    users = db.session.execute(select(User).where(User.id.in_(user_ids))).scalars() if user_ids else []
    return [u.id for u in users if snap.allowed(subject_of(u), tenant.slug, "surveys", "write")]


def request_reminder(survey: Survey) -> int:
    if not service.is_open(survey):
        raise conflict("closes_at" if survey.opens_at <= utcnow() else "opens_at",
                       "reminders go only while the survey is open")
    members = len(not_answered(survey))
    db.session.rollback()
    enqueue_now(push_survey_reminder, survey.id)
    return members


# What each push says, and the key that keeps a retried job from sending it twice.
LINES = {"survey_reminder": ("アンケートへのご回答をお願いします", ""),
         "survey_opened": ("新しいアンケートが届きました。ご回答をお願いします", "-opened")}


def _push(survey_id: int, kind: str) -> None:
    survey = db.session.get(Survey, survey_id)
    if survey is None or not service.is_open(survey):
        return
    tenant = db.session.get(Tenant, survey.tenant_id)
    if tenant is None:
        return
    users = _may_answer(tenant, not_answered(survey))
    line, key = LINES[kind]
    payload = message_payload(kind, survey.title, line, f"/surveys/{survey.id}", tenant.name)
    send_to_users(users, payload, topic=f"s{survey.id}", ttl=TTL, job_key=f"s{survey.id}{key}")


@job
def push_survey_reminder(survey_id: int) -> None:
    _push(survey_id, "survey_reminder")


# --- the push when a survey opens ----------------------------------------------------------------------------------

def _claim(where) -> list[int]:  # type: ignore[no-untyped-def]
    """Mark surveys announced in one conditional UPDATE: of two schedulers (or a scheduler and the request that
    created the survey) only one matches a row, so a survey is announced once."""
    now = utcnow()
    return list(db.session.execute(
        update(Survey).where(Survey.announced_at.is_(None), Survey.opens_at <= now, Survey.closes_at > now, where)
        .values(announced_at=now).returning(Survey.id)).scalars())


def announce_if_open(survey: Survey) -> None:
    """Called as a survey is created: one that is open at once is announced with this commit; one that opens
    later is announced by the scheduler when its time comes."""
    for survey_id in _claim(Survey.id == survey.id):
        enqueue_after_commit(push_survey_opened, survey_id, job_id=f"survey-{survey_id}-opened")


def announce_due() -> list[int]:
    """The scheduler's part: every survey whose opening time has come and that has not been announced yet. One
    that closed while the scheduler was down is never announced: a push for a survey nobody can answer helps no one."""
    ids = _claim(Survey.announced_at.is_(None))
    for survey_id in ids:
        enqueue_after_commit(push_survey_opened, survey_id, job_id=f"survey-{survey_id}-opened")
    db.session.commit()
    return ids


@job
def push_survey_opened(survey_id: int) -> None:
    _push(survey_id, "survey_opened")
