"""The survey pages: officers create a survey from a plain form and read results, rates per branch and the CSV, send
a reminder and delete (after a confirmation page); members answer once and are told so, and anonymous surveys say
that the answer is not linked to their name; the federation, the auditor and other unions get 404, a member 403 on
officer pages; bad input is shown with 422 and changes nothing."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import World
from flask import Flask
from web_support import Browser, latin_words, visible_text

LIST = "/t/union-a/surveys"
API = "/api/v1/tenants/union-a/surveys"
TITLE = "2026年 職場環境アンケート"


def _when(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def api_survey(world: World, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": TITLE, "anonymous": False, "opens_at": _when(-1), "closes_at": _when(7),
        "questions": [
            {"kind": "single", "text": "残業は増えましたか", "options": ["増えた", "変わらない", "減った"]},
            {"kind": "multiple", "text": "要求したいこと", "options": ["賃上げ", "休暇", "在宅勤務"]},
            {"kind": "text", "text": "ご意見", "required": False},
        ],
    }
    body.update(over)
    r = world.as_("union-a", "aeditor").post(API, json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def survey_count(world: World) -> int:
    return len(world.as_("union-a", "aeditor").get(API).get_json()["items"])


def results(world: World, survey_id: int) -> dict[str, Any]:
    return world.as_("union-a", "aeditor").get(f"{API}/{survey_id}/results").get_json()


def local(days: float) -> str:
    """A datetime-local value in Japan time, as a browser sends it."""
    return (datetime.now(UTC) + timedelta(days=days, hours=9)).strftime("%Y-%m-%dT%H:%M")


def form(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "秋の賃金アンケート", "description": "ご協力をお願いします", "opens_at": local(-0.1),
        "closes_at": local(5), "anonymous": "named",
        "q1_kind": "single", "q1_text": "満足していますか", "q1_options": "はい\r\nいいえ\r\n", "q1_required": "1",
        "q2_kind": "multiple", "q2_text": "重視すること", "q2_options": "基本給\n一時金\n手当", "q2_required": "1",
        "q3_kind": "text", "q3_text": "自由にどうぞ", "q3_options": "",
        "q4_kind": "single", "q4_text": "", "q4_options": "",
    }
    data.update(over)
    return data


def test_officer_creates_a_survey_from_the_form(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    assert "設問5" in editor.text(f"{LIST}/new")
    r = editor.post(f"{LIST}/new", form(anonymous="anonymous"))
    assert r.status_code == 302, visible_text(r.get_data(as_text=True))[:2000]
    survey_id = int(re.search(r"/surveys/(\d+)", r.headers["Location"]).group(1))  # type: ignore[union-attr]
    made = world.as_("union-a", "aeditor").get(f"{API}/{survey_id}").get_json()
    assert made["title"] == "秋の賃金アンケート" and made["anonymous"] is True and made["is_open"] is True
    assert [(q["kind"], q["text"], q["options"], q["required"]) for q in made["questions"]] == [
        ("single", "満足していますか", ["はい", "いいえ"], True),
        ("multiple", "重視すること", ["基本給", "一時金", "手当"], True),
        ("text", "自由にどうぞ", [], False),
    ]
    page = editor.text(r.headers["Location"])
    assert "アンケートを作成しました" in page and "回答率" in page and "0 / 5" in visible_text(page)


@pytest.mark.parametrize("over,label", [
    ({"title": ""}, "件名"),
    ({"closes_at": local(-1)}, "締切日時"),
    ({"opens_at": "昨日"}, "開始日時"),
    ({"q2_options": "基本給"}, "設問2：選択肢"),
    ({"q3_options": "あ\nい"}, "設問3：選択肢"),
    ({"q1_kind": "essay"}, "設問1：種類"),
    ({"q1_text": "", "q1_options": "", "q2_text": "", "q2_options": "", "q3_text": ""}, "設問"),
])
def test_bad_survey_form_shows_the_field_with_422_and_creates_nothing(world: World, app: Flask,
                                                                      over: dict[str, str], label: str) -> None:
    editor = Browser(app, "union-a", "aeditor")
    r = editor.post(f"{LIST}/new", form(**over))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    alert = visible_text(page[page.index('role="alert"'):page.index("</div>", page.index('role="alert"'))])
    assert label in alert
    assert "ご協力をお願いします" in page, "what was typed is kept"
    assert survey_count(world) == 0


def test_member_sees_open_surveys_answers_once_and_is_told_so(world: World, app: Flask) -> None:
    s = api_survey(world)
    later = api_survey(world, title="来月のアンケート", opens_at=_when(3), closes_at=_when(9))
    member = Browser(app, "union-a", "a1")
    listing = visible_text(member.text(LIST))
    assert TITLE in listing and "未回答" in listing and "締切" in listing
    assert "来月のアンケート" not in listing, "members are shown the surveys they can answer now"
    page = member.text(f"{LIST}/{s['id']}")
    assert 'type="radio"' in page and 'type="checkbox"' in page and "<textarea" in page
    assert "記名式" in page and "集計結果" not in page and "/delete" not in page
    q = [x["id"] for x in s["questions"]]
    r = member.post(f"{LIST}/{s['id']}/answers",
                    {f"q{q[0]}": "1", f"q{q[1]}": ["0", "2"], f"q{q[2]}": "休憩室がほしい"})
    assert r.status_code == 302 and "done=answered" in r.headers["Location"]
    page = member.text(r.headers["Location"])
    assert "回答を受け付けました" in page and "回答済み" in page
    assert "/answers" not in page and f'name="q{q[0]}"' not in page, "the form is not shown again"
    assert "回答済み" in visible_text(member.text(LIST))
    again = member.post(f"{LIST}/{s['id']}/answers", {f"q{q[0]}": "0", f"q{q[1]}": ["1"]})
    assert again.status_code == 409 and "すでに回答済み" in again.get_data(as_text=True)
    res = results(world, s["id"])
    assert res["answered"] == 1
    assert [o["count"] for o in res["questions"][0]["options"]] == [0, 1, 0]
    assert [o["count"] for o in res["questions"][1]["options"]] == [1, 0, 1]
    assert member.text(f"{LIST}/{later['id']}").count("から回答できます") == 1


def test_anonymous_survey_says_the_answer_is_not_linked_and_results_show_no_name(world: World, app: Flask) -> None:
    s = api_survey(world, anonymous=True)
    member = Browser(app, "union-a", "a2")
    page = member.text(f"{LIST}/{s['id']}")
    assert "回答はあなたの名前と結びつけられません" in page
    q = [x["id"] for x in s["questions"]]
    assert member.post(f"{LIST}/{s['id']}/answers",
                       {f"q{q[0]}": "0", f"q{q[1]}": "1", f"q{q[2]}": "匿名の意見"}).status_code == 302
    officer_browser = Browser(app, "union-a", "aeditor")
    officer = officer_browser.text(f"{LIST}/{s['id']}")
    # One answer is one member's answer: nothing of it is shown, and the page says when it will be.
    assert "匿名の意見" not in officer
    assert "回答者が5人以上になるまで集計結果を表示しません" in officer
    assert "回答した組合員が5人未満の支部は" in officer and "非表示" in officer
    for who in ("a1", "a3", "aadmin", "aeditor"):
        world.as_("union-a", who).post(f"{API}/{s['id']}/answers", json={"answers": {str(q[0]): 1, str(q[1]): [0]}})
    officer = officer_browser.text(f"{LIST}/{s['id']}")
    assert "匿名の意見" in officer
    assert "A青木 健" not in officer and ">a2<" not in officer


def test_officer_sees_results_rates_per_branch_and_the_csv(world: World, app: Flask) -> None:
    s = api_survey(world)
    q = [str(x["id"]) for x in s["questions"]]
    world.as_("union-a", "a1").post(f"{API}/{s['id']}/answers", json={"answers": {q[0]: 0, q[1]: [0, 1],
                                                                                   q[2]: "休憩室がほしい"}})
    world.as_("union-a", "a2").post(f"{API}/{s['id']}/answers", json={"answers": {q[0]: 0, q[1]: [1]}})
    editor = Browser(app, "union-a", "aeditor")
    listing = visible_text(editor.text(LIST))
    assert TITLE in listing and "5人中2人（40%）" in listing and "アンケートを作成" in listing
    html = editor.text(f"{LIST}/{s['id']}")
    page = visible_text(html)
    assert "2 / 5 (40%)" in page
    # Per branch: head office 1 of 3 (a1 of aadmin, aeditor, a1), factory 1 of 2.
    assert "a本社支部 3 1 33%" in page and "a工場支部 2 1 50%" in page
    assert "増えた 2 100%" in page and "休暇 2 100%" in page and "賃上げ 1 50%" in page
    assert "休憩室がほしい" in page and "A渡辺 恵" in page, "a named survey shows who wrote what"
    csv_link = re.search(r'href="([^"]+results\.csv)"', html)
    assert csv_link is not None
    r = editor.get(csv_link.group(1))
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "休憩室がほしい" in r.data.decode("utf-8-sig")
    assert Browser(app, "union-a", "a1").get(csv_link.group(1)).status_code == 403


def test_the_list_counts_each_survey_as_its_results_do(world: World, app: Flask) -> None:
    """The officers' list counts every survey at once; its figures are the results page's, survey by survey, and
    a member who answered and was then suspended leaves both the members and the answered (as on the results)."""
    named, anonymous, untouched = (api_survey(world, title=t, anonymous=anon)
                                   for t, anon in (("記名アンケート", False), ("匿名アンケート", True),
                                                   ("未回答アンケート", False)))

    def answer(login_id: str, survey: dict[str, Any]) -> None:
        q = [x["id"] for x in survey["questions"]]
        r = world.as_("union-a", login_id).post(f"{API}/{survey['id']}/answers",
                                                json={"answers": {str(q[0]): 1, str(q[1]): [2]}})
        assert r.status_code == 201, r.get_json()

    for login_id in ("a1", "a2"):
        answer(login_id, named)
    answer("a1", anonymous)
    r = world.as_("union-a", "aadmin").patch("/api/v1/tenants/union-a/members/a2", json={"status": "suspended"})
    assert r.status_code == 200, r.get_json()

    listing = visible_text(Browser(app, "union-a", "aeditor").text(LIST))
    for survey in (named, anonymous, untouched):
        got = results(world, survey["id"])
        shown = f"{got['members']}人中{got['answered']}人（{round(got['rate'] * 100)}%）"
        assert re.search(re.escape(survey["title"]) + r".*?" + re.escape(shown), listing), (survey["title"], shown)
    assert (results(world, named["id"])["answered"], results(world, named["id"])["members"]) == (1, 4)
    # A member's own list marks what they answered, survey by survey; the API says the same.
    items = {i["title"]: i["answered"] for i in world.as_("union-a", "a1").get(API).get_json()["items"]}
    assert items == {"記名アンケート": True, "匿名アンケート": True, "未回答アンケート": False}
    mine = Browser(app, "union-a", "a1").text(LIST)
    assert mine.count("回答済み") == 2, visible_text(mine)


def test_bad_answer_is_shown_with_422_and_stores_nothing(world: World, app: Flask) -> None:
    s = api_survey(world)
    q = [x["id"] for x in s["questions"]]
    member = Browser(app, "union-a", "a1")
    for data, label in (({f"q{q[1]}": "0"}, "設問1"), ({f"q{q[0]}": "9", f"q{q[1]}": "0"}, "設問1"),
                        ({f"q{q[0]}": "x", f"q{q[1]}": "0"}, "設問1"), ({f"q{q[0]}": "0", f"q{q[1]}": ["0", "0"]},
                                                                      "設問2")):
        r = member.post(f"{LIST}/{s['id']}/answers", data)
        assert r.status_code == 422, data
        page = r.get_data(as_text=True)
        assert label in visible_text(page[page.index('role="alert"'):]), data
        assert f'name="q{q[0]}"' in page, "the form is shown again"
    assert results(world, s["id"])["answered"] == 0


def test_closed_survey_takes_no_answer_and_no_reminder(world: World, app: Flask) -> None:
    s = api_survey(world, opens_at=_when(-9), closes_at=_when(-1))
    q = [x["id"] for x in s["questions"]]
    member = Browser(app, "union-a", "a1")
    page = member.text(f"{LIST}/{s['id']}")
    assert "締め切られました" in page and f'name="q{q[0]}"' not in page
    r = member.post(f"{LIST}/{s['id']}/answers", {f"q{q[0]}": "0", f"q{q[1]}": "0"})
    assert r.status_code == 409 and "受付期間外" in r.get_data(as_text=True)
    editor = Browser(app, "union-a", "aeditor")
    assert "/reminders" not in editor.text(f"{LIST}/{s['id']}")
    r = editor.post(f"{LIST}/{s['id']}/reminders")
    assert r.status_code == 409 and "催促は受付期間中にだけ送れます" in r.get_data(as_text=True)
    assert results(world, s["id"])["answered"] == 0


def test_reminder_goes_to_those_who_have_not_answered(world: World, app: Flask) -> None:
    from federation import jobs

    s = api_survey(world)
    q = [str(x["id"]) for x in s["questions"]]
    world.as_("union-a", "a1").post(f"{API}/{s['id']}/answers", json={"answers": {q[0]: 0, q[1]: [0]}})
    editor = Browser(app, "union-a", "aeditor")
    r = editor.post(f"{LIST}/{s['id']}/reminders")
    assert r.status_code == 302 and "count=4" in r.headers["Location"]
    assert "未回答の組合員4人" in editor.text(r.headers["Location"])
    jobs.drain()


def test_officer_closes_the_survey_early_from_its_page(world: World, app: Flask) -> None:
    s = api_survey(world)
    q = [x["id"] for x in s["questions"]]
    editor = Browser(app, "union-a", "aeditor")
    assert f"{LIST}/{s['id']}/close" in editor.text(f"{LIST}/{s['id']}")
    r = editor.post(f"{LIST}/{s['id']}/close")
    assert r.status_code == 302 and "done=closed" in r.headers["Location"]
    page = editor.text(r.headers["Location"])
    assert "締め切りました" in page and f"{LIST}/{s['id']}/close" not in page
    member = Browser(app, "union-a", "a1")
    assert member.post(f"{LIST}/{s['id']}/answers", {f"q{q[0]}": "0", f"q{q[1]}": "0"}).status_code == 409
    assert results(world, s["id"])["answered"] == 0


def test_delete_asks_first_then_removes_the_survey(world: World, app: Flask) -> None:
    s = api_survey(world)
    editor = Browser(app, "union-a", "aeditor")
    confirm = editor.text(f"{LIST}/{s['id']}/delete")
    assert "削除しますか" in confirm and TITLE in confirm
    assert survey_count(world) == 1
    r = editor.post(f"{LIST}/{s['id']}/delete")
    assert r.status_code == 302 and "done=deleted" in r.headers["Location"]
    assert survey_count(world) == 0
    assert editor.get(f"{LIST}/{s['id']}").status_code == 404


OUTSIDERS = [("fed", "staff"), ("fed", "fadmin"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


def test_firewall_matrix_for_the_survey_pages(world: World, app: Flask) -> None:
    s = api_survey(world)
    q = [x["id"] for x in s["questions"]]
    one = f"{LIST}/{s['id']}"
    answer = {f"q{q[0]}": "0", f"q{q[1]}": "0"}
    for tenant, login in OUTSIDERS:
        b = Browser(app, tenant, login)
        for path in (LIST, f"{LIST}/new", one, f"{one}/delete"):
            assert b.get(path).status_code == 404, (tenant, login, path)
        for path, data in ((f"{LIST}/new", form()), (f"{one}/answers", answer), (f"{one}/reminders", {}),
                           (f"{one}/delete", {}), (f"{one}/close", {})):
            assert b.post(path, data).status_code == 404, (tenant, login, path)
    member = Browser(app, "union-a", "a1")
    assert member.get(LIST).status_code == 200 and member.get(one).status_code == 200
    assert member.get(f"{LIST}/new").status_code == 403
    assert member.get(f"{one}/delete").status_code == 403
    for path, data in ((f"{LIST}/new", form()), (f"{one}/reminders", {}), (f"{one}/delete", {}),
                       (f"{one}/close", {})):
        assert member.post(path, data).status_code == 403, path
    assert survey_count(world) == 1 and results(world, s["id"])["answered"] == 0
    # A survey id of union-a under union-b's own path is no survey there, even for union-b's officers.
    badmin = Browser(app, "union-b", "badmin")
    assert badmin.get(f"/t/union-b/surveys/{s['id']}").status_code == 404
    assert badmin.post(f"/t/union-b/surveys/{s['id']}/delete").status_code == 404
    assert TITLE not in badmin.text("/t/union-b/surveys")


def test_forms_without_the_pages_token_are_refused(world: World, app: Flask) -> None:
    s = api_survey(world)
    q = [x["id"] for x in s["questions"]]
    member = Browser(app, "union-a", "a1")
    r = member.post(f"{LIST}/{s['id']}/answers", {f"q{q[0]}": "0", f"q{q[1]}": "0"}, token=False)
    assert r.status_code == 403
    editor = Browser(app, "union-a", "aeditor")
    assert editor.post(f"{LIST}/new", form(), token=False).status_code == 403
    assert editor.post(f"{LIST}/{s['id']}/delete", {"csrf_token": "forged"}, token=False).status_code == 403
    assert survey_count(world) == 1 and results(world, s["id"])["answered"] == 0


def test_reminder_push_link_opens_the_members_own_union_page(world: World, app: Flask) -> None:
    s = api_survey(world)
    r = Browser(app, "union-a", "a1").get(f"/surveys/{s['id']}")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"{LIST}/{s['id']}")
    neighbour = Browser(app, "union-b", "b1")
    r = neighbour.get(f"/surveys/{s['id']}")
    assert r.headers["Location"].endswith(f"/t/union-b/surveys/{s['id']}")
    assert neighbour.get(r.headers["Location"]).status_code == 404
    assert Browser(app, "fed", "staff").get(f"/surveys/{s['id']}").status_code == 404


def test_menu_shows_surveys_to_union_people_only(world: World, app: Flask) -> None:
    assert f'href="{LIST}"' in Browser(app, "union-a", "a1").text("/settings")
    for tenant, login in (("fed", "staff"), ("platform", "aud")):
        assert "/surveys" not in Browser(app, tenant, login).text("/settings")


def test_survey_pages_show_no_untranslated_english_in_japanese_mode(world: World, app: Flask) -> None:
    named = api_survey(world)
    anonymous = api_survey(world, title="無記名アンケート", anonymous=True)
    later = api_survey(world, title="来月", opens_at=_when(3), closes_at=_when(9))
    closed = api_survey(world, title="終了", opens_at=_when(-9), closes_at=_when(-1))
    q = [str(x["id"]) for x in named["questions"]]
    world.as_("union-a", "a1").post(f"{API}/{named['id']}/answers", json={"answers": {q[0]: 0, q[1]: [0],
                                                                                       q[2]: "意見"}})
    editor, member = Browser(app, "union-a", "aeditor"), Browser(app, "union-a", "a2")
    for b in (editor, member):
        b.client.set_cookie("musubi_lang", "ja")
    aq = [x["id"] for x in anonymous["questions"]]
    pages = {
        "list": editor.get(LIST), "new": editor.get(f"{LIST}/new"), "bad_new": editor.post(f"{LIST}/new", form(
            title="", q2_options="一つ", q1_kind="essay", opens_at="x")),
        "created": editor.get(f"{LIST}/{named['id']}?done=created"),
        "reminded": editor.get(f"{LIST}/{named['id']}?done=reminded&count=3"),
        "closed_early": editor.get(f"{LIST}/{named['id']}?done=closed"),
        "anonymous_results": editor.get(f"{LIST}/{anonymous['id']}"), "closed_results": editor.get(
            f"{LIST}/{closed['id']}"), "reminder_refused": editor.post(f"{LIST}/{closed['id']}/reminders"),
        "delete": editor.get(f"{LIST}/{named['id']}/delete"), "deleted": editor.get(f"{LIST}?done=deleted"),
        "member_list": member.get(LIST), "member_form": member.get(f"{LIST}/{anonymous['id']}"),
        "member_bad": member.post(f"{LIST}/{anonymous['id']}/answers", {f"q{aq[0]}": "x"}),
        "member_later": member.get(f"{LIST}/{later['id']}"), "member_closed": member.get(f"{LIST}/{closed['id']}"),
        "member_denied": member.get(f"{LIST}/new"),
    }
    member.post(f"{LIST}/{anonymous['id']}/answers", {f"q{aq[0]}": "0", f"q{aq[1]}": "0"})
    pages["member_answered"] = member.get(f"{LIST}/{anonymous['id']}?done=answered")
    pages["member_again"] = member.post(f"{LIST}/{anonymous['id']}/answers", {f"q{aq[0]}": "0", f"q{aq[1]}": "0"})
    leftovers = {}
    for name, r in pages.items():
        assert r.status_code in (200, 403, 409, 422), (name, r.status_code)
        words = latin_words(visible_text(r.get_data(as_text=True))) - {"musubi", "CSV"}
        if words:
            leftovers[name] = sorted(words)
    assert leftovers == {}, json.dumps(leftovers, ensure_ascii=False)


def test_the_inbox_lists_open_surveys_waiting_for_the_members_answer(world: World, app: Flask) -> None:
    s = api_survey(world)
    api_survey(world, title="来月のアンケート", opens_at=_when(3), closes_at=_when(9))
    api_survey(world, title="終わったアンケート", opens_at=_when(-9), closes_at=_when(-1))
    member = Browser(app, "union-a", "a1")
    inbox = member.text("/inbox")
    todo = re.search(r'<section class="card todo".*?</section>', inbox, re.S)
    assert todo and TITLE in todo.group(0) and "未回答のアンケート" in todo.group(0)
    assert "来月のアンケート" not in inbox and "終わったアンケート" not in inbox
    assert f'href="{LIST}/{s["id"]}"' in todo.group(0)
    q = [x["id"] for x in s["questions"]]
    member.post(f"{LIST}/{s['id']}/answers", {f"q{q[0]}": "1", f"q{q[1]}": ["0"]})
    assert 'class="card todo"' not in member.text("/inbox")  # answered: nothing waits any more
    # Another member of the union still has it; union B's members and the federation never see union A's survey.
    assert TITLE in Browser(app, "union-a", "a2").text("/inbox")
    for who in (("union-b", "b1"), ("fed", "staff")):
        page = Browser(app, *who).get("/inbox").get_data(as_text=True)
        assert TITLE not in page and 'class="card todo"' not in page
