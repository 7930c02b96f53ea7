"""The report pages: federation staff ask for a report from a plain form (typed fields, due time, the audience tree),
read each union's answer, the totals per council and block with a chart, who has not answered, the CSV, and remind
or close; each union's officers answer on their own page and correct until it closes, with every version listed.
Union B never sees union A's figures, union C (not affiliated) sees nothing, members get 403, a wrong value is shown
with 422 naming the field and nothing is stored."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import World
from flask import Flask
from sqlalchemy import func, select
from web_support import Browser, visible_text

from federation import jobs

FED_API = "/api/v1/federations/fed/reports"


def _local(days: float) -> str:
    """A datetime-local value in Japan time, as a browser sends it."""
    jst = datetime.now(UTC) + timedelta(days=days, hours=9)
    return jst.strftime("%Y-%m-%dT%H:%M")


FORM = {"title": "2027春闘 回答集計", "due_at": _local(7), "audience_all": "1",
        "f1_label": "賃上げ額", "f1_type": "integer", "f1_unit": "円", "f1_required": "1",
        "f2_label": "妥結状況", "f2_type": "choice", "f2_choices": "妥結\n継続交渉", "f2_required": "1",
        "f3_label": "備考", "f3_type": "text"}


def _answers(app: Flask) -> int:
    from federation.extensions import db
    from federation.reports.models import ReportAnswer

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(ReportAnswer)).scalar_one()


def _send(app: Flask) -> tuple[Browser, int]:
    staff = Browser(app, "fed", "staff")
    r = staff.post("/t/fed/reports/new", FORM)
    assert r.status_code == 302, visible_text(r.get_data(as_text=True))[:800]
    report_id = int(r.headers["Location"].split("/reports/")[1].split("?")[0])
    return staff, report_id


def test_staff_send_a_request_and_read_answers_totals_and_csv(world: World, app: Flask) -> None:
    staff, report_id = _send(app)
    sent = world.as_("fed", "staff").get(f"{FED_API}/{report_id}").get_json()
    assert [(f["key"], f["label"], f["type"], f["required"]) for f in sent["fields"]] == [
        ("q1", "賃上げ額", "integer", True), ("q2", "妥結状況", "choice", True), ("q3", "備考", "text", False)]
    assert sent["fields"][0]["unit"] == "円" and sent["fields"][1]["choices"] == ["妥結", "継続交渉"]
    assert sent["audience"] == {"all": True}

    a = Browser(app, "union-a", "aadmin")
    listing = visible_text(a.text("/t/union-a/reports"))
    assert "2027春闘 回答集計" in listing and "未回答" in listing
    page = f"/t/union-a/reports/{report_id}"
    r = a.post(page, {"v_q1": "12,000", "v_q2": "妥結", "v_q3": "満額回答"})
    assert r.status_code == 302, visible_text(r.get_data(as_text=True))[:800]
    r = a.post(page, {"v_q1": "12500", "v_q2": "妥結"})
    assert r.status_code == 302
    mine = visible_text(a.text(page))
    assert "第2版" in mine and "第1版" in mine and "12,500" in mine and "12,000" in mine
    b = Browser(app, "union-b", "badmin")
    assert b.post(f"/t/union-b/reports/{report_id}", {"v_q1": "8000", "v_q2": "継続交渉"}).status_code == 302

    # Union B's page shows only union B's figures.
    theirs = visible_text(b.text(f"/t/union-b/reports/{report_id}"))
    assert "8,000" in theirs and "12,500" not in theirs and "12,000" not in theirs

    answers = visible_text(staff.text(f"/t/fed/reports/{report_id}"))
    assert "12,500 円" in answers and "8,000 円" in answers
    assert "20,500 円 / 10,250 円" in answers  # the council's total and average
    assert "修正済み（第2版）" in answers
    assert "すべての組合が回答しました" in answers
    html = staff.text(f"/t/fed/reports/{report_id}")
    assert "<svg" in html and 'role="img"' in html

    csv = staff.get(f"/t/fed/reports/{report_id}/answers.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    lines = csv.get_data(as_text=True).lstrip("\ufeff").splitlines()
    assert lines[0].endswith("q1,q2,q3") and len(lines) == 3
    assert any(line.startswith("union-a,") and ",2,12500,妥結," in line for line in lines)

    assert staff.post(f"/t/fed/reports/{report_id}/close").status_code == 302
    closed = a.post(page, {"v_q1": "1", "v_q2": "妥結"})
    assert closed.status_code == 409 and _answers(app) == 3
    assert "締め切られ" in visible_text(a.text(page))


def test_a_wrong_value_is_named_and_nothing_is_stored(world: World, app: Flask) -> None:
    _, report_id = _send(app)
    a = Browser(app, "union-a", "aadmin")
    page = f"/t/union-a/reports/{report_id}"
    cases = [({"v_q1": "一万円", "v_q2": "妥結"}, "賃上げ額"), ({"v_q1": "10", "v_q2": "不明"}, "妥結状況"),
             ({"v_q2": "妥結"}, "賃上げ額")]
    for values, named in cases:
        r = a.post(page, values)
        assert r.status_code == 422, values
        html = r.get_data(as_text=True)
        box = html[html.index('id="form-errors"'):]
        box = visible_text(box[:box.index("</div>")])
        assert "実行できませんでした" in box and named in box, (values, box)
    assert _answers(app) == 0
    # What was typed stays in the form.
    r = a.post(page, {"v_q1": "一万円", "v_q2": "妥結"})
    assert 'value="一万円"' in r.get_data(as_text=True)


def test_a_bad_request_form_is_shown_again_and_sends_nothing(world: World, app: Flask) -> None:
    staff = Browser(app, "fed", "staff")
    for change in ({"due_at": ""}, {"due_at": _local(-1)}, {"f2_choices": ""}, {"f1_type": "money"},
                   {"audience_all": ""}):
        r = staff.post("/t/fed/reports/new", {**FORM, **change})
        assert r.status_code == 422, (change, r.status_code)
        assert "2027春闘 回答集計" in r.get_data(as_text=True)  # what was typed is kept
    assert world.as_("fed", "staff").get(FED_API).get_json()["items"] == []


def test_who_may_open_the_report_pages(world: World, app: Flask) -> None:
    _, report_id = _send(app)
    member = Browser(app, "union-a", "a1")
    assert member.get("/t/union-a/reports").status_code == 403
    assert member.get(f"/t/union-a/reports/{report_id}").status_code == 403
    assert member.post(f"/t/union-a/reports/{report_id}", {"v_q1": "1", "v_q2": "妥結"}).status_code == 403
    # A union that is not affiliated, and another federation's staff, see nothing of it.
    c = Browser(app, "union-c", "cadmin")
    assert c.get(f"/t/union-c/reports/{report_id}").status_code == 404
    assert "2027春闘" not in c.text("/t/union-c/reports")
    other = Browser(app, "fed2", "staff")
    assert other.get(f"/t/fed/reports/{report_id}").status_code == 404
    assert other.get(f"/t/fed2/reports/{report_id}").status_code == 404
    # A union admin cannot open the federation's answers, nor another union's page.
    a = Browser(app, "union-a", "aadmin")
    assert a.get(f"/t/fed/reports/{report_id}").status_code in (403, 404)
    assert a.get(f"/t/fed/reports/{report_id}/answers.csv").status_code in (403, 404)
    assert a.get(f"/t/union-b/reports/{report_id}").status_code in (403, 404)
    assert a.post(f"/t/union-b/reports/{report_id}", {"v_q1": "1", "v_q2": "妥結"}).status_code in (403, 404)
    assert _answers(app) == 0
    # The council officer sees the list of their own requests only: the staff's request is not among them.
    tokyo = Browser(app, "fed", "tokyo")
    assert "2027春闘" not in tokyo.text("/t/fed/reports")
    assert tokyo.get(f"/t/fed/reports/{report_id}").status_code == 404


def test_the_reminder_button_and_the_push_link(world: World, app: Flask) -> None:
    staff, report_id = _send(app)
    a = Browser(app, "union-a", "aadmin")
    assert a.post(f"/t/union-a/reports/{report_id}", {"v_q1": "1", "v_q2": "妥結"}).status_code == 302
    page = staff.text(f"/t/fed/reports/{report_id}")
    assert "未回答の 1 組合に催促する" in visible_text(page)
    r = staff.post(f"/t/fed/reports/{report_id}/remind")
    assert r.status_code == 302 and "done=reminded" in r.headers["Location"]
    jobs.drain()
    # The push opens /reports/<id>, which sends each officer to their own union's page.
    link = a.get(f"/reports/{report_id}")
    assert link.status_code == 302 and link.headers["Location"].endswith(f"/t/union-a/reports/{report_id}")


HOSTILE = ["9" * 5000, str(2**63), "-" + str(2**63 + 1), "1e400", "nan", "\x00", "\ufffe", "=1+1"]


def test_hostile_values_in_the_report_forms_are_never_server_errors(world: World, app: Flask) -> None:
    staff, report_id = _send(app)
    a = Browser(app, "union-a", "aadmin")
    for value in HOSTILE:
        sent = staff.post("/t/fed/reports/new", {**FORM, "due_at": value, "audience_unit": value,
                                                 "audience_union": value, "f1_type": value, "f4_label": value,
                                                 "f4_type": "choice", "f4_choices": value})
        assert sent.status_code in (302, 422), (value, sent.status_code)
        answered = a.post(f"/t/union-a/reports/{report_id}", {"v_q1": value, "v_q2": value, "v_q3": value})
        assert answered.status_code == 422, (value, answered.status_code)
        assert 400 <= a.get(f"/t/union-a/reports/{value}").status_code < 500
    assert _answers(app) == 0
