"""Creating surveys, answering once, and the officers' results. The caller has passed the firewall already."""
from __future__ import annotations

import csv
import io
import json
import secrets
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from federation.errors import conflict, invalid
from federation.extensions import db, utcnow
from federation.privacy import SMALL_GROUP
from federation.space.surveys.models import Survey, SurveyParticipant, SurveyQuestion, SurveyResponse
from tenants.models import OrgUnit, Tenant, User


def create_survey(tenant: Tenant, author: User, body: dict[str, Any]) -> Survey:
    survey = Survey(tenant_id=tenant.id, title=body["title"], description=body["description"],
                    anonymous=body["anonymous"], opens_at=body["opens_at"], closes_at=body["closes_at"],
                    created_by=author.id)
    db.session.add(survey)
    db.session.flush()
    for position, q in enumerate(body["questions"], start=1):
        db.session.add(SurveyQuestion(survey_id=survey.id, position=position, kind=q["kind"], text=q["text"],
                                      options=json.dumps(q["options"], ensure_ascii=False), required=q["required"]))
    from federation.space.surveys.reminders import announce_if_open

    announce_if_open(survey)
    db.session.commit()
    return survey


def listing(tenant: Tenant) -> list[Survey]:
    """The union's surveys, newest first: the one list the API and the pages show."""
    return list(db.session.execute(select(Survey).where(Survey.tenant_id == tenant.id)
                                   .order_by(Survey.created_at.desc(), Survey.id.desc())).scalars())


def questions(survey: Survey) -> list[SurveyQuestion]:
    return list(db.session.execute(select(SurveyQuestion).where(SurveyQuestion.survey_id == survey.id)
                                   .order_by(SurveyQuestion.position)).scalars())


def has_answered(survey: Survey, user: User) -> bool:
    return db.session.get(SurveyParticipant, (survey.id, user.id)) is not None


def answered_among(surveys: list[Survey], user: User) -> set[int]:
    """Which of these surveys the user has answered, in one query (the list page asks it of every row)."""
    ids = [s.id for s in surveys]
    if not ids:
        return set()
    return set(db.session.execute(select(SurveyParticipant.survey_id).where(
        SurveyParticipant.user_id == user.id, SurveyParticipant.survey_id.in_(ids))).scalars())


def waiting_for(tenant: Tenant, user: User) -> list[Survey]:
    """The open surveys of the member's union they have not answered yet, closing soonest first: what the inbox
    lists under 要対応."""
    now = utcnow()
    answered = select(SurveyParticipant.survey_id).where(SurveyParticipant.user_id == user.id)
    return list(db.session.execute(
        select(Survey).where(Survey.tenant_id == tenant.id, Survey.opens_at <= now, Survey.closes_at > now,
                             Survey.id.not_in(answered))
        .order_by(Survey.closes_at, Survey.id)).scalars())


def is_open(survey: Survey) -> bool:
    return survey.opens_at <= utcnow() < survey.closes_at


def _check_answer(q: SurveyQuestion, value: Any) -> Any:
    field = f"answers.{q.id}"
    options = json.loads(q.options)
    if value is None or value == [] or value == "":
        if q.required:
            raise invalid(field, "this question needs an answer")
        return None
    if q.kind == "single":
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < len(options):
            raise invalid(field, f"one option index from 0 to {len(options) - 1}")
        return value
    if q.kind == "multiple":
        if (not isinstance(value, list) or len(set(value)) != len(value)
                or any(not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < len(options) for v in value)):
            raise invalid(field, f"a list of distinct option indexes from 0 to {len(options) - 1}")
        return sorted(value)
    if not isinstance(value, str) or len(value) > 5000 or "\x00" in value:
        raise invalid(field, "text of at most 5,000 characters")
    return value


def answer(survey: Survey, user: User, raw: dict[str, Any]) -> None:
    now = utcnow()
    if now < survey.opens_at:
        raise conflict("opens_at", "the survey is not open yet")
    if now >= survey.closes_at:
        raise conflict("closes_at", "the survey is closed")
    if has_answered(survey, user):
        raise conflict("survey", "you have already answered this survey")
    qs = {str(q.id): q for q in questions(survey)}
    for key in raw:
        if key not in qs:
            raise invalid(f"answers.{key}", "no such question in this survey")
    answers = {key: _check_answer(q, raw.get(key)) for key, q in qs.items()}
    # Two rows that share nothing but the survey: see the note in models.py for why they must not be linkable.
    db.session.add(SurveyParticipant(survey_id=survey.id, user_id=user.id))
    db.session.add(SurveyResponse(id=secrets.token_hex(16), survey_id=survey.id,
                                  user_id=None if survey.anonymous else user.id,
                                  answers=json.dumps({k: v for k, v in answers.items() if v is not None},
                                                     ensure_ascii=False)))
    try:
        db.session.commit()
    except IntegrityError:
        # Two answers raced: the participant row's primary key let only one through.
        db.session.rollback()
        raise conflict("survey", "you have already answered this survey") from None


def close_survey(survey: Survey) -> Survey:
    """Stop taking answers now (a survey can close early, never reopen: members were told when it ends). Closing a
    survey that has already closed changes nothing."""
    now = utcnow()
    if survey.closes_at > now:
        survey.closes_at = max(now, survey.opens_at)
        db.session.commit()
    return survey


def delete_survey(survey: Survey) -> None:
    db.session.delete(survey)
    db.session.commit()


# An anonymous survey shows no figure made of fewer respondents than this: with a unit of one or two members, a
# per-unit response count says who answered, and a handful of answers says what they answered.
MIN_RESPONDENTS = SMALL_GROUP  # the one small-group rule (federation/privacy.py)


def _rate(answered: int, members: int) -> float:
    return round(answered / members, 4) if members else 0.0


def response_totals(tenant: Tenant, surveys: list[Survey]) -> dict[int, tuple[int, int]]:
    """Each survey's (members, answered) for the officers' list, in two queries however many surveys there are.
    Counted as response_rates counts: active members of the union, and those of them who answered."""
    ids = [s.id for s in surveys]
    if not ids:
        return {}
    members = db.session.execute(select(func.count()).select_from(User).where(
        User.tenant_id == tenant.id, User.status == "active")).scalar_one()
    answered = dict(db.session.execute(
        select(SurveyParticipant.survey_id, func.count())
        .join(User, User.id == SurveyParticipant.user_id)
        .where(SurveyParticipant.survey_id.in_(ids), User.tenant_id == tenant.id, User.status == "active")
        .group_by(SurveyParticipant.survey_id)).all())
    return {i: (members, answered.get(i, 0)) for i in ids}


def response_rates(survey: Survey) -> tuple[int, int, list[dict[str, Any]]]:
    """Members, answered, and the same per branch. Counted from the participant rows only, for named and
    anonymous surveys alike, so the per-unit figures never need the answers themselves."""
    members = list(db.session.execute(
        select(User.id, OrgUnit.path).outerjoin(OrgUnit, OrgUnit.id == User.unit_id)
        .where(User.tenant_id == survey.tenant_id, User.status == "active")))
    answered_ids = set(db.session.execute(select(SurveyParticipant.user_id)
                                          .where(SurveyParticipant.survey_id == survey.id)).scalars())
    branches = list(db.session.execute(select(OrgUnit).where(
        OrgUnit.tenant_id == survey.tenant_id, OrgUnit.kind == "branch").order_by(OrgUnit.name, OrgUnit.id))
        .scalars())
    units = []
    placed: set[int] = set()
    for branch in branches:
        inside = [uid for uid, path in members if path and path.startswith(branch.path)]
        placed.update(inside)
        done = sum(1 for uid in inside if uid in answered_ids)
        units.append({"unit_id": branch.id, "unit": branch.name, "members": len(inside), "answered": done,
                      "rate": _rate(done, len(inside))})
    rest = [uid for uid, _ in members if uid not in placed]
    if rest:
        done = sum(1 for uid in rest if uid in answered_ids)
        units.append({"unit_id": None, "unit": "", "members": len(rest), "answered": done,
                      "rate": _rate(done, len(rest))})
    total_done = sum(1 for uid, _ in members if uid in answered_ids)
    if survey.anonymous:
        _withhold_small_units(units)
    return len(members), total_done, units


def _withhold_small_units(units: list[dict[str, Any]]) -> None:
    """Blank the answered count and rate of every unit with fewer than MIN_RESPONDENTS respondents. The total stays,
    so the withheld units together must also reach the threshold, or the total minus the units shown gives them
    away: the smallest shown units are withheld too until they do (or nothing per unit is left)."""
    small = [u for u in units if u["answered"] < MIN_RESPONDENTS]
    if not small:
        for u in units:
            u["withheld"] = False
        return
    shown = sorted((u for u in units if u["answered"] >= MIN_RESPONDENTS), key=lambda u: u["answered"])
    hidden = list(small)
    # One withheld unit is given away by subtraction whatever its size; so is a sum under the threshold.
    while shown and (len(hidden) < 2 or sum(u["answered"] for u in hidden) < MIN_RESPONDENTS):
        hidden.append(shown.pop(0))
    ids = {id(u) for u in hidden}
    for u in units:
        u["withheld"] = id(u) in ids
        if u["withheld"]:
            u["answered"] = None
            u["rate"] = None


def results(survey: Survey) -> dict[str, Any]:
    qs = questions(survey)
    responses = list(db.session.execute(select(SurveyResponse.answers, SurveyResponse.user_id)
                                        .where(SurveyResponse.survey_id == survey.id)))
    names: dict[int, User] = {}
    if not survey.anonymous:
        ids = {uid for _, uid in responses if uid is not None}
        names = {u.id: u for u in db.session.execute(select(User).where(User.id.in_(ids))).scalars()}
    out_questions = []
    for q in qs:
        options = json.loads(q.options)
        counts = [0] * len(options)
        texts: list[dict[str, Any]] = []
        answered = 0
        for raw, uid in responses:
            value = json.loads(raw).get(str(q.id))
            if value is None:
                continue
            answered += 1
            if q.kind == "single":
                counts[value] += 1
            elif q.kind == "multiple":
                for v in value:
                    counts[v] += 1
            else:
                who = names.get(uid) if uid is not None else None
                texts.append({"text": value, "login_id": who.login_id if who else None,
                              "display_name": who.display_name if who else None,
                              "_key": who.kana_key if who else ""})
        # Sorted by content (anonymous) or by reading (named): never in storage order, which could hint at who
        # answered when.
        texts.sort(key=lambda t: (t.pop("_key"), t["text"]))
        out_questions.append({"id": q.id, "kind": q.kind, "text": q.text, "answered": answered,
                              "options": [{"option": o, "count": c} for o, c in zip(options, counts, strict=True)],
                              "texts": texts})
    members, done, units = response_rates(survey)
    # Too few answers to an anonymous survey: the counts and the texts could be matched to the few who answered
    # (three members, one "no", and everyone knows whose). Only how many answered is shown until there are enough.
    withheld = survey.anonymous and len(responses) < MIN_RESPONDENTS
    if withheld:
        for q in out_questions:
            q["options"] = [{"option": o["option"], "count": None} for o in q["options"]]
            q["texts"] = []
    for q in out_questions:
        q["withheld"] = withheld
    return {"survey_id": survey.id, "anonymous": survey.anonymous, "members": members, "answered": done,
            "rate": _rate(done, members), "min_respondents": MIN_RESPONDENTS if survey.anonymous else None,
            "withheld": withheld, "units": units, "questions": out_questions}


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to Excel: prefixed so an answer cannot run anything on an officer's PC.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _blank(value: Any) -> Any:
    return "" if value is None else value


def results_csv(survey: Survey) -> bytes:
    data = results(survey)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["section", "question_no", "question", "unit", "option_or_answer", "count", "members", "rate",
                "login_id", "display_name"])
    w.writerow(["response_rate", "", "", "", "", data["answered"], data["members"], data["rate"], "", ""])
    for u in data["units"]:
        # A withheld figure is an empty cell, never a zero that would read as "nobody answered".
        w.writerow(["unit_rate", "", "", _cell(u["unit"]), "", _blank(u["answered"]), u["members"],
                    _blank(u["rate"]), "", ""])
    for no, q in enumerate(data["questions"], start=1):
        for o in q["options"]:
            w.writerow(["option", no, _cell(q["text"]), "", _cell(o["option"]), _blank(o["count"]), "", "", "", ""])
        for t in q["texts"]:
            w.writerow(["text", no, _cell(q["text"]), "", _cell(t["text"]), "", "", "",
                        _cell(t["login_id"] or ""), _cell(t["display_name"] or "")])
    # With a BOM, because Excel on Windows reads a CSV without one as Shift_JIS and garbles every Japanese cell.
    return buf.getvalue().encode("utf-8-sig")

