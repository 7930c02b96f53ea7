"""Surveys: officers create them and read results; members answer once while they are open."""
from __future__ import annotations

from flask import Response, g
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant, get_owned
from federation.space.surveys import reminders, service
from federation.space.surveys.models import Survey
from federation.space.surveys.schemas import (
    AnswerAck,
    AnswerIn,
    ReminderOut,
    ResultsOut,
    SurveyIn,
    SurveyList,
    SurveyOut,
)

blp = Blueprint("surveys", __name__, url_prefix="/api/v1", description="A union's surveys")
# Ids in paths stop at the 32-bit column range: a larger number is no row (404), not a driver overflow (500).


def _out(survey: Survey, *, with_questions: bool = True, answered: bool | None = None) -> dict:
    out = {c: getattr(survey, c) for c in ("id", "title", "description", "anonymous", "opens_at", "closes_at",
                                           "created_at")}
    out["is_open"] = service.is_open(survey)
    out["answered"] = service.has_answered(survey, g.user) if answered is None else answered
    if with_questions:
        out["questions"] = service.questions(survey)
    return out


@blp.route("/tenants/<slug>/surveys")
class Surveys(MethodView):
    @blp.response(200, SurveyList)
    def get(self, slug):
        """The union's surveys, newest first, each with whether you have answered"""
        tenant, _ = access_tenant(slug, "surveys", "read", kind="union")
        rows = service.listing(tenant)
        mine = service.answered_among(rows, g.user)
        return {"items": [_out(s, with_questions=False, answered=s.id in mine) for s in rows]}

    @blp.arguments(SurveyIn)
    @blp.response(201, SurveyOut)
    def post(self, body, slug):
        """Create a survey with its questions (single, multiple, text), dates and anonymity"""
        tenant, _ = access_tenant(slug, "surveys", "manage", kind="union")
        return _out(service.create_survey(tenant, g.user, body))


@blp.route("/tenants/<slug>/surveys/<int(max=2147483647):survey_id>")
class OneSurvey(MethodView):
    @blp.response(200, SurveyOut)
    def get(self, slug, survey_id):
        """One survey with its questions"""
        tenant, _ = access_tenant(slug, "surveys", "read", kind="union")
        return _out(get_owned(Survey, survey_id, tenant))

    @blp.response(204)
    def delete(self, slug, survey_id):
        """Delete a survey with its answers (officers)"""
        tenant, _ = access_tenant(slug, "surveys", "manage", kind="union")
        service.delete_survey(get_owned(Survey, survey_id, tenant))


@blp.route("/tenants/<slug>/surveys/<int(max=2147483647):survey_id>/close")
class CloseSurvey(MethodView):
    @blp.response(200, SurveyOut)
    def post(self, slug, survey_id):
        """Close a survey now, before its closing date (officers; closing a closed survey changes nothing)"""
        tenant, _ = access_tenant(slug, "surveys", "manage", kind="union")
        return _out(service.close_survey(get_owned(Survey, survey_id, tenant)))


@blp.route("/tenants/<slug>/surveys/<int(max=2147483647):survey_id>/answers")
class Answers(MethodView):
    @blp.arguments(AnswerIn)
    @blp.response(201, AnswerAck)
    def post(self, body, slug, survey_id):
        """Answer a survey, once, while it is open"""
        tenant, _ = access_tenant(slug, "surveys", "write", kind="union")
        survey = get_owned(Survey, survey_id, tenant)
        service.answer(survey, g.user, body["answers"])
        return {"survey_id": survey.id, "answered": True}


@blp.route("/tenants/<slug>/surveys/<int(max=2147483647):survey_id>/results")
class Results(MethodView):
    @blp.response(200, ResultsOut)
    def get(self, slug, survey_id):
        """Officers: counts per option, free-text answers (unnamed when anonymous), response rate per branch"""
        tenant, _ = access_tenant(slug, "surveys", "manage", kind="union")
        return service.results(get_owned(Survey, survey_id, tenant))


@blp.route("/tenants/<slug>/surveys/<int(max=2147483647):survey_id>/results.csv")
class ResultsCsv(MethodView):
    @blp.response(200, content_type="text/csv")
    def get(self, slug, survey_id):
        """Officers: the results as CSV (UTF-8 with BOM, for Excel)"""
        tenant, _ = access_tenant(slug, "surveys", "manage", kind="union")
        survey = get_owned(Survey, survey_id, tenant)
        return Response(service.results_csv(survey), mimetype="text/csv", headers={
            "Content-Disposition": f'attachment; filename="survey-{survey.id}-results.csv"',
            "Cache-Control": "private, no-store"})


@blp.route("/tenants/<slug>/surveys/<int(max=2147483647):survey_id>/reminders")
class Reminders(MethodView):
    @blp.response(202, ReminderOut)
    def post(self, slug, survey_id):
        """Officers: push a reminder to every member who has not answered yet (sent in the background)"""
        tenant, _ = access_tenant(slug, "surveys", "manage", kind="union")
        survey = get_owned(Survey, survey_id, tenant)
        return {"survey_id": survey.id, "members": reminders.request_reminder(survey)}
