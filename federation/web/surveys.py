"""Pages for a union's surveys: members answer the open ones once; officers create them, read the results and the
response rate per branch, send a reminder and delete. Access is the API's own (`federation.space.surveys.views`):
reading is `surveys read`, answering `surveys write`, everything an officer does `surveys manage`."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flask import g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from federation.access import access_tenant, get_owned
from federation.auth.service import require_caller
from federation.errors import APIError, invalid
from federation.extensions import db, utcnow
from federation.firewall import Denied, Subject, firewall
from federation.space.surveys import reminders, service
from federation.space.surveys.models import KINDS, Survey, SurveyQuestion
from federation.space.surveys.schemas import SurveyIn
from federation.web import bp, formatting
from federation.web.formatting import first_message
from tenants.models import Tenant

# A fixed number of question slots keeps the form plain HTML (no page script needed to add one).
SLOTS = 5
KIND_LABELS = {
    "single": _l("Single choice"),
    "multiple": _l("Multiple choice"),
    "text": _l("Free text"),
}
FIELD_LABELS = {
    "title": _l("Title"),
    "description": _l("Description"),
    "anonymous": _l("Named or anonymous"),
    "opens_at": _l("Opens"),
    "closes_at": _l("Closes"),
    "questions": _l("Questions"),
    "survey": _l("Survey"),
}
QUESTION_FIELD_LABELS = {
    "kind": _l("Kind"),
    "text": _l("Question"),
    "options": _l("Options"),
    "required": _l("Required"),
}


def _may(subject: Subject, slug: str, act: str) -> bool:
    return firewall.allowed(subject, slug, "surveys", act)



# --- the list ------------------------------------------------------------------------------------------------------

@bp.route("/t/<slug>/surveys")
def surveys(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "surveys", "read", kind="union")
    officer = _may(subject, slug, "manage")
    rows = service.listing(tenant)
    if not officer:
        # Members are asked only about what they can still answer; results are the officers'.
        rows = [s for s in rows if service.is_open(s)]
    rates = service.response_totals(tenant, rows) if officer else {}
    mine = service.answered_among(rows, g.user)
    return render_template("web/surveys.html", tenant=tenant, surveys=rows, officer=officer, rates=rates,
                           is_open={s.id: service.is_open(s) for s in rows}, now=utcnow(),
                           answered={s.id: s.id in mine for s in rows},
                           done=request.args.get("done"))


# --- creating one --------------------------------------------------------------------------------------------------

def _survey_body(form: MultiDict[str, str]) -> tuple[dict[str, Any], list[int], dict[str, str]]:
    """The form as the API's survey body, the slot number of each question in it, and the dates that could not be
    read at all (those stop the form before the schema sees it)."""
    problems: dict[str, str] = {}
    body: dict[str, Any] = {"title": form.get("title", "").strip(), "description": form.get("description", ""),
                            "anonymous": form.get("anonymous") == "anonymous"}
    for name in ("opens_at", "closes_at"):
        try:
            when = formatting.parse_local(form.get(name))
        except ValueError:
            when = None
        if when is None:
            problems[name] = "a date and time"
        else:
            body[name] = when.isoformat()
    questions: list[dict[str, Any]] = []
    slots: list[int] = []
    for slot in range(1, SLOTS + 1):
        text = form.get(f"q{slot}_text", "").strip()
        options = [line.strip() for line in form.get(f"q{slot}_options", "").splitlines() if line.strip()]
        if not text and not options:
            continue  # an empty slot is simply not used
        questions.append({"kind": form.get(f"q{slot}_kind", ""), "text": text, "options": options,
                          "required": bool(form.get(f"q{slot}_required"))})
        slots.append(slot)
    body["questions"] = questions
    return body, slots, problems


def _create_errors(messages: Any, slots: list[int]) -> list[tuple[str, str]]:
    """(label, message) per field at fault, a question named by the slot it was typed into."""
    out: list[tuple[str, str]] = []
    if not isinstance(messages, dict):
        return [("", first_message(messages))]
    for key, value in messages.items():
        if key == "questions" and isinstance(value, dict):
            for index, inner in value.items():
                slot = slots[index] if isinstance(index, int) and index < len(slots) else index
                if isinstance(inner, dict):
                    for sub, message in inner.items():
                        out.append((_("Question %(n)s: %(field)s", n=slot,
                                      field=str(QUESTION_FIELD_LABELS.get(sub, sub))), first_message(message)))
                else:
                    out.append((_("Question %(n)s", n=slot), first_message(inner)))
        else:
            out.append((str(FIELD_LABELS.get(str(key), key)), first_message(value)))
    return out


def _new_page(tenant: Tenant, form: MultiDict[str, str] | None, *, errors: list[tuple[str, str]] | None = None,
              status: int = 200):  # type: ignore[no-untyped-def]
    if form is None:
        now = utcnow().replace(second=0, microsecond=0)
        defaults = {"opens_at": formatting.iso_local(now), "closes_at": formatting.iso_local(now + timedelta(days=7)),
                    "anonymous": "named"}
        defaults.update({f"q{slot}_required": "1" for slot in range(1, SLOTS + 1)})
        values: Any = defaults
    else:
        values = form
    return render_template("web/surveys_new.html", tenant=tenant, form=values, errors=errors or [],
                           slots=range(1, SLOTS + 1), kinds=KINDS, kind_labels=KIND_LABELS), status


@bp.route("/t/<slug>/surveys/new", methods=["GET", "POST"])
def survey_new(slug: str):  # type: ignore[no-untyped-def]
    tenant, _subject = access_tenant(slug, "surveys", "manage", kind="union")
    if request.method == "GET":
        return _new_page(tenant, None)
    form = request.form
    raw, slots, problems = _survey_body(form)
    if problems:
        return _new_page(tenant, form, errors=_create_errors(problems, slots), status=422)
    try:
        survey = service.create_survey(tenant, g.user, SurveyIn().load(raw))
    except ValidationError as exc:
        db.session.rollback()
        return _new_page(tenant, form, errors=_create_errors(exc.messages, slots), status=422)
    return redirect(url_for("web.survey", slug=slug, survey_id=survey.id, done="created"))


# --- one survey: the answer form, and the results for officers ------------------------------------------------------

def _survey_page(tenant: Tenant, subject: Subject, survey: Survey, *, errors: list[tuple[str, str]] | None = None,
                 form: MultiDict[str, str] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    officer = _may(subject, tenant.slug, "manage")
    qs = service.questions(survey)
    options = {q.id: json.loads(q.options) for q in qs}
    chosen: dict[int, set[str]] = {q.id: set(form.getlist(f"q{q.id}")) if form else set() for q in qs}
    return render_template(
        "web/surveys_detail.html", tenant=tenant, survey=survey, questions=qs, options=options, chosen=chosen,
        form=form or {}, errors=errors or [], officer=officer, may_answer=_may(subject, tenant.slug, "write"),
        answered=service.has_answered(survey, g.user), is_open=service.is_open(survey),
        not_yet=utcnow() < survey.opens_at, results=service.results(survey) if officer else None,
        kind_labels=KIND_LABELS, done=request.args.get("done"), reminded=request.args.get("count")), status


@bp.route("/t/<slug>/surveys/<int:survey_id>")
def survey(slug: str, survey_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "surveys", "read", kind="union")
    return _survey_page(tenant, subject, get_owned(Survey, survey_id, tenant))


def _answers_from_form(form: MultiDict[str, str], qs: list[SurveyQuestion]) -> dict[str, Any]:
    """The form as the API's answers: option numbers for choices, the text as typed; the service checks the rest."""

    def index(q: SurveyQuestion, value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise invalid(f"answers.{q.id}", "an option number") from None

    raw: dict[str, Any] = {}
    for q in qs:
        name = f"q{q.id}"
        if q.kind == "single":
            value = form.get(name, "")
            raw[str(q.id)] = index(q, value) if value != "" else None
        elif q.kind == "multiple":
            raw[str(q.id)] = [index(q, v) for v in form.getlist(name)]
        else:
            raw[str(q.id)] = form.get(name, "")
    return raw


def _answer_errors(exc: APIError, qs: list[SurveyQuestion]) -> list[tuple[str, str]]:
    if exc.status == 409:
        # Not about any one answer: the page explains it in words rather than naming a field.
        return [("", first_message(exc.fields or exc.message))]
    numbers = {f"answers.{q.id}": n for n, q in enumerate(qs, start=1)}
    out = []
    for key, value in (exc.fields or {"": exc.message}).items():
        if key in numbers:
            out.append((_("Question %(n)s", n=numbers[key]), first_message(value)))
        else:
            out.append((str(FIELD_LABELS.get(key.split(".", 1)[0], "")), first_message(value)))
    return out


@bp.route("/t/<slug>/surveys/<int:survey_id>/answers", methods=["POST"])
def survey_answer(slug: str, survey_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "surveys", "write", kind="union")
    survey_row = get_owned(Survey, survey_id, tenant)
    qs = service.questions(survey_row)
    try:
        service.answer(survey_row, g.user, _answers_from_form(request.form, qs))
    except APIError as exc:
        db.session.rollback()
        # 422 for an answer that does not fit, 409 for a second answer or a survey that is not open.
        return _survey_page(tenant, subject, survey_row, errors=_answer_errors(exc, qs), form=request.form,
                            status=exc.status)
    return redirect(url_for("web.survey", slug=slug, survey_id=survey_id, done="answered"))


@bp.route("/t/<slug>/surveys/<int:survey_id>/reminders", methods=["POST"])
def survey_remind(slug: str, survey_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "surveys", "manage", kind="union")
    survey_row = get_owned(Survey, survey_id, tenant)
    try:
        count = reminders.request_reminder(survey_row)
    except APIError as exc:
        db.session.rollback()
        return _survey_page(tenant, subject, survey_row, status=exc.status,
                            errors=[(_("Reminders go only while the survey is open."),
                                     first_message(exc.fields or exc.message))])
    return redirect(url_for("web.survey", slug=slug, survey_id=survey_id, done="reminded", count=count))


@bp.route("/t/<slug>/surveys/<int:survey_id>/close", methods=["POST"])
def survey_close(slug: str, survey_id: int):  # type: ignore[no-untyped-def]
    tenant, _subject = access_tenant(slug, "surveys", "manage", kind="union")
    service.close_survey(get_owned(Survey, survey_id, tenant))
    return redirect(url_for("web.survey", slug=slug, survey_id=survey_id, done="closed"))


@bp.route("/t/<slug>/surveys/<int:survey_id>/delete", methods=["GET", "POST"])
def survey_delete(slug: str, survey_id: int):  # type: ignore[no-untyped-def]
    """A page of its own asks first: deleting takes every answer with it."""
    tenant, _subject = access_tenant(slug, "surveys", "manage", kind="union")
    survey_row = get_owned(Survey, survey_id, tenant)
    if request.method == "GET":
        _members, answered, _units = service.response_rates(survey_row)
        return render_template("web/surveys_delete.html", tenant=tenant, survey=survey_row, answered=answered)
    service.delete_survey(survey_row)
    return redirect(url_for("web.surveys", slug=slug, done="deleted"))


@bp.route("/surveys/<int:survey_id>")
def survey_from_push(survey_id: int):  # type: ignore[no-untyped-def]
    """Where a survey reminder push opens (its payload names no union): the member's own union's survey page,
    which does every check itself."""
    subject = require_caller()
    if subject.kind != "union":
        raise Denied(404)
    return redirect(url_for("web.survey", slug=subject.tenant, survey_id=survey_id))
