"""The web pages through the Flask test client: who may open what (the same answers as the API, F8), CSRF on every
form, and the journeys a member, an officer, federation staff and an auditor make."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from conftest import World
from web_support import Browser, all_text, visible_text

UNION_A_PAGES = ("/t/union-a/notices", "/t/union-a/notices/new", "/t/union-a/members", "/t/union-a/units",
                 "/t/union-a/roles", "/t/union-a/cascade", "/t/union-a/relay")


def publish(world: World, tenant: str, who: str, audience: dict, *, title: str = "秋季セミナーのご案内",
            category: str = "seminar", event: bool = True) -> int:
    from federation import jobs

    api = world.as_(tenant, who)
    body = {"title": title, "body": "**研修**のお知らせです。\n\n- 持ち物: 筆記用具", "category": category,
            "audience": audience}
    if event:
        starts = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)  # 18:30 in Japan
        body["event"] = {"starts_at": starts.isoformat(), "ends_at": (starts + timedelta(hours=2)).isoformat(),
                         "place": "連合会館 201会議室"}
    r = api.post(f"/api/v1/tenants/{tenant}/notices", json=body)
    assert r.status_code == 201, r.get_json()
    notice_id = r.get_json()["id"]
    assert api.post(f"/api/v1/tenants/{tenant}/notices/{notice_id}/publish").status_code == 202
    jobs.drain()
    return notice_id


# --- who may open what ----------------------------------------------------------------------------------------------

EXPECTED = {
    # union-a's own officers and members, by the firewall's rules
    ("union-a", "aadmin"): dict.fromkeys(UNION_A_PAGES, 200),
    ("union-a", "aeditor"): {**dict.fromkeys(UNION_A_PAGES, 200), "/t/union-a/roles": 403,
                             "/t/union-a/relay": 403},
    ("union-a", "a1"): {**dict.fromkeys(UNION_A_PAGES, 403), "/t/union-a/units": 200},
    # another union's people and the federation never learn that union-a's pages exist (F1, F5, F8)
    ("union-b", "b1"): dict.fromkeys(UNION_A_PAGES, 404),
    ("union-b", "badmin"): dict.fromkeys(UNION_A_PAGES, 404),
    ("fed", "staff"): dict.fromkeys(UNION_A_PAGES, 404),
    ("fed", "fadmin"): dict.fromkeys(UNION_A_PAGES, 404),
    # the auditor reads roles and the affiliation of every tenant, never content
    ("platform", "aud"): {**dict.fromkeys(UNION_A_PAGES, 404), "/t/union-a/roles": 200,
                          "/t/union-a/cascade": 200},
}


@pytest.mark.parametrize("who", list(EXPECTED), ids=lambda w: f"{w[0]}/{w[1]}")
def test_union_pages_answer_each_role_as_the_firewall_says(world, app, who):
    browser = Browser(app, *who)
    for path, status in EXPECTED[who].items():
        r = browser.get(path)
        assert r.status_code == status, (who, path, r.status_code)
        if status in (403, 404) and who[0] != "union-a":
            body = visible_text(r.get_data(as_text=True))
            # A denial tells an outsider nothing about the union: not its name, not its members (F8).
            assert "A通信労組" not in body and "A渡辺" not in body


@pytest.mark.parametrize("path", ("/inbox", "/settings", "/t/fed/notices", "/audit", "/t/union-a/members",
                                  "/notices/1"))
def test_anonymous_visitors_are_sent_to_sign_in(world, app, path):
    r = app.test_client().get(path)
    assert r.status_code == 302
    assert r.headers["Location"].startswith("/signin")


@pytest.mark.parametrize(("who", "path", "status"), [
    (("fed", "staff"), "/t/fed/notices", 200),
    (("fed", "tokyo"), "/t/fed/notices/new", 200),
    (("fed", "fadmin"), "/t/fed/units", 200),
    (("union-a", "aadmin"), "/t/fed/notices", 404),
    (("union-a", "a1"), "/t/fed/notices/new", 404),
    (("platform", "aud"), "/audit", 200),
    (("platform", "aud"), "/audit/exposure", 200),
    (("platform", "aud"), "/audit/log", 200),
    (("platform", "ops"), "/audit", 403),
    (("fed", "staff"), "/audit/who-can", 404),
    (("union-a", "a1"), "/audit/log", 404),
])
def test_federation_and_audit_pages_by_role(world, app, who, path, status):
    assert Browser(app, *who).get(path).status_code == status


def test_sign_in_lands_each_kind_of_user_on_their_home(world, app):
    assert Browser(app).sign_in("union-a", "a1").headers["Location"] == "/inbox"
    assert Browser(app).sign_in("fed", "staff").headers["Location"] == "/t/fed/notices"
    auditor = Browser(app)
    r = auditor.sign_in("platform", "aud")
    assert auditor.get(r.headers["Location"], follow_redirects=True).request.path == "/audit"


def test_sign_in_form_without_its_token_is_refused(world, app):
    client = app.test_client()
    client.get("/signin")
    r = client.post("/signin", data={"tenant": "union-a", "login_id": "a1", "password": "Test-pass-2026!"})
    assert r.status_code == 403
    assert client.get_cookie("musubi_session") is None


def test_sign_in_token_from_another_browser_is_refused(world, app):
    other = Browser(app)
    token = re.search(r'name="csrf_token" value="([^"]+)"', other.get("/signin").get_data(as_text=True)).group(1)
    victim = app.test_client()
    victim.get("/signin")
    r = victim.post("/signin", data={"tenant": "union-a", "login_id": "a1", "password": "Test-pass-2026!",
                                     "csrf_token": token})
    assert r.status_code == 403


def test_wrong_password_says_so_in_japanese_without_saying_which_part(world, app):
    r = Browser(app).sign_in("union-a", "a1", "wrong-pass-1")
    assert r.status_code == 401
    assert "組合コード、社員番号、パスワードのいずれかが違います" in r.get_data(as_text=True)


def test_sign_in_never_redirects_off_site(world, app):
    r = Browser(app).sign_in("union-a", "a1", next="https://evil.example/")
    assert r.headers["Location"] == "/inbox"
    r = Browser(app).sign_in("union-a", "a1", next="//evil.example/x")
    assert r.headers["Location"] == "/inbox"


def test_sign_out_needs_the_token_and_ends_the_session(world, app):
    member = Browser(app, "union-a", "a1")
    assert member.post("/signout", token=False).status_code == 403
    assert member.get("/inbox").status_code == 200
    assert member.post("/signout").status_code == 302
    assert member.get("/inbox").status_code == 302


def test_pages_carry_a_strict_content_security_policy_and_no_store(world, app):
    r = Browser(app, "union-a", "a1").get("/inbox")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["Cache-Control"] == "no-store"


# --- members: inbox, notice, stamps -------------------------------------------------------------------------------

def test_opted_in_member_sees_the_federation_notice_with_japanese_dates(world, app):
    notice_id = publish(world, "fed", "staff", {"units": [world.ids["council"]]})
    member = Browser(app, "union-a", "a1")
    inbox = member.text("/inbox")
    assert "秋季セミナーのご案内" in inbox
    assert "未読" in inbox and "セミナー" in inbox
    assert "2026年12月5日(土) 18:30〜20:30" in inbox
    page = member.text(f"/notices/{notice_id}")
    assert "<strong>研修</strong>" in page and "連合会館 201会議室" in page
    assert "未読 1件" not in member.text("/inbox")  # opening it read it


def test_opted_out_member_cannot_open_it_and_their_admin_gets_it_for_relay(world, app):
    notice_id = publish(world, "fed", "staff", {"units": [world.ids["council"]]})
    b1 = Browser(app, "union-b", "b1")
    assert "秋季セミナーのご案内" not in b1.text("/inbox")
    assert b1.get(f"/notices/{notice_id}").status_code == 404
    badmin = Browser(app, "union-b", "badmin")
    assert "役員向け・転送待ち" in badmin.text("/inbox")
    assert "組合員に転送できます" in badmin.text(f"/notices/{notice_id}")
    relay_page = badmin.text("/t/union-b/relay")
    assert "秋季セミナーのご案内" in relay_page and "組合員に転送" in relay_page
    assert badmin.post("/t/union-b/relay", {"notice_id": notice_id, "audience": "all"}, token=False).status_code == 403
    assert b1.get(f"/notices/{notice_id}").status_code == 404
    r = badmin.post("/t/union-b/relay", {"notice_id": notice_id, "audience": "all"})
    assert r.status_code == 302
    assert b1.get(f"/notices/{notice_id}").status_code == 200
    assert "組合員に配信済み" in badmin.text("/t/union-b/relay")


def test_the_federation_cannot_relay_into_an_opted_out_union(world, app):
    """`notices relay` in a union's domain is also the federation's right to reach its officers; relaying on to the
    members is the union's own act, through the API as through the page (F2, F3)."""
    notice_id = publish(world, "fed", "staff", {"units": [world.ids["council"]]})
    r = world.as_("fed", "staff").post("/api/v1/unions/union-b/relays",
                                       json={"notice_id": notice_id, "audience": {"all": True}})
    assert r.status_code == 404
    staff = Browser(app, "fed", "staff")
    assert staff.get("/t/union-b/relay").status_code == 404
    assert staff.post("/t/union-b/relay", {"notice_id": notice_id, "audience": "all"}).status_code == 404
    assert world.as_("union-b", "b1").get(f"/api/v1/tenants/fed/notices/{notice_id}").status_code == 404
    assert Browser(app, "union-b", "b1").get(f"/notices/{notice_id}").status_code == 404


def test_union_c_member_never_sees_it(world, app):
    notice_id = publish(world, "fed", "staff", {"all": True})
    c1 = Browser(app, "union-c", "c1")
    assert c1.get(f"/notices/{notice_id}").status_code == 404
    assert "秋季セミナーのご案内" not in c1.text("/inbox")


def test_the_sharing_note_comes_before_the_attend_stamp_of_a_federation_seminar(world, app):
    notice_id = publish(world, "fed", "staff", {"units": [world.ids["council"]]})
    page = Browser(app, "union-a", "a1").text(f"/notices/{notice_id}")
    note = page.index("「出席」を押す前に")
    attend = page.index('value="attend"')
    assert note < attend
    assert "情報通信労連にあなたの氏名・よみがな・組合名（A通信労組）が伝わります" in page
    assert 'aria-describedby="share-note"' in page[attend - 300:attend + 300]


def test_a_unions_own_seminar_shows_no_sharing_note(world, app):
    notice_id = publish(world, "union-a", "aeditor", {"all": True})
    page = Browser(app, "union-a", "a1").text(f"/notices/{notice_id}")
    assert 'value="attend"' in page and "「出席」を押す前に" not in page


def test_stamps_need_the_token_and_share_only_attend_with_the_organizer(world, app):
    notice_id = publish(world, "fed", "staff", {"units": [world.ids["council"]]})
    member = Browser(app, "union-a", "a1")
    assert member.post(f"/notices/{notice_id}/reaction", {"stamp": "attend"}, token=False).status_code == 403
    staff = world.as_("fed", "staff")
    assert staff.get(f"/api/v1/tenants/fed/notices/{notice_id}/receipts").get_json()["items"] == []
    r = member.post(f"/notices/{notice_id}/reaction", {"stamp": "attend"})
    assert r.status_code == 302 and "stamped=attend" in r.headers["Location"]
    page = member.text(r.headers["Location"])
    assert "「出席」を送りました" in page
    assert 'value="attend" class="stamp stamp-attend" aria-pressed="true"' in page
    shared = staff.get(f"/api/v1/tenants/fed/notices/{notice_id}/receipts").get_json()["items"]
    assert [s["display_name"] for s in shared] == ["A渡辺 恵"]
    stats = Browser(app, "fed", "staff").text(f"/t/fed/notices/{notice_id}/stats")
    assert "氏名を伝えた出席者" in stats and "A渡辺 恵" in stats
    member.post(f"/notices/{notice_id}/reaction", {"stamp": "absent"})
    assert staff.get(f"/api/v1/tenants/fed/notices/{notice_id}/receipts").get_json()["items"] == []


def test_a_member_cannot_stamp_another_unions_notice(world, app):
    notice_id = publish(world, "union-b", "badmin", {"all": True}, title="B組合の集会")
    a1 = Browser(app, "union-a", "a1")
    assert a1.post(f"/notices/{notice_id}/reaction", {"stamp": "read"}).status_code == 404


# --- federation staff: compose, target, publish, watch ----------------------------------------------------------------

def compose_form(**over):  # type: ignore[no-untyped-def]
    form = {"title": "県協 幹事会の招集", "category": "meeting", "body": "## 議題\n\n1. 春闘方針",
            "when": "now", "action": "save", "confirmed": "1"}
    form.update(over)
    return {k: v for k, v in form.items() if v is not None}


def _notices(world):  # type: ignore[no-untyped-def]
    return world.as_("fed", "staff").get("/api/v1/tenants/fed/notices").get_json()["items"]


def test_publish_now_asks_once_more_with_the_title_and_the_count(world, app):
    from federation import jobs

    staff = Browser(app, "fed", "staff")
    form = compose_form(audience_unit=str(world.ids["council"]), confirmed=None, has_event="1",
                        event_starts="2026-12-05T18:30", event_place="連合会館")
    r = staff.post("/t/fed/notices/new", form)
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "この通知を配信しますか" in page
    assert "県協 幹事会の招集" in page and "5人 (1組合) に直接届きます" in page and "1組合は役員のみ" in page
    assert _notices(world) == []  # nothing written before the second yes
    # Back: the form as it was typed, still nothing written.
    carried = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    assert carried["event_place"] == "連合会館" and carried["audience_unit"] == str(world.ids["council"])
    back = staff.post("/t/fed/notices/new", {**form, "action": "back"})
    assert back.status_code == 200 and 'value="連合会館"' in back.get_data(as_text=True)
    assert _notices(world) == []
    # Yes: published once.
    r = staff.post("/t/fed/notices/new", {**form, "confirmed": "1"})
    assert r.status_code == 302
    jobs.drain()
    assert [n["status"] for n in _notices(world)] == ["published"]


def test_publishing_a_draft_from_the_list_asks_first(world, app):
    from federation import jobs

    staff = Browser(app, "fed", "staff")
    assert staff.post("/t/fed/notices/new", compose_form(audience_all="1", when="draft")).status_code == 302
    (draft,) = _notices(world)
    r = staff.post(f"/t/fed/notices/{draft['id']}/publish", {})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "この通知を配信しますか" in page and "県協 幹事会の招集" in page
    assert [n["status"] for n in _notices(world)] == ["draft"]
    r = staff.post(f"/t/fed/notices/{draft['id']}/publish", {"confirmed": "1"})
    assert r.status_code == 302
    jobs.drain()  # the cascade it queued runs here, not after the test's database is gone
    assert [n["status"] for n in _notices(world)] == ["published"]
    # Already out: the same refusal as the API's, with or without the confirmation.
    assert staff.post(f"/t/fed/notices/{draft['id']}/publish", {}).status_code == 409


def test_the_audience_tree_folds_away_what_is_not_chosen(world, app):
    staff = Browser(app, "fed", "staff")
    page = staff.text("/t/fed/notices/new")
    assert page.count("<details data-branch") >= 2 and "<details data-branch open" not in page
    r = staff.post("/t/fed/notices/new", compose_form(audience_union="union-a", confirmed=None))
    assert "この通知を配信しますか" in r.get_data(as_text=True)
    back = staff.post("/t/fed/notices/new", compose_form(audience_union="union-a", action="back")).get_data(
        as_text=True)
    # The branches that hold the chosen union open; the others stay folded.
    assert "<details data-branch open" in back and "<details data-branch>" in back


def test_federation_editor_targets_a_council_and_publishes(world, app):
    from federation import jobs

    staff = Browser(app, "fed", "staff")
    page = staff.text("/t/fed/notices/new")
    assert "東京県協" in page and "A通信労組" in page and "B通信労組" in page
    assert "直接" in page and "役員のみ" in page
    r = staff.post("/t/fed/notices/new", compose_form(audience_unit=str(world.ids["council"]), has_event="1",
                                                       event_starts="2026-12-05T18:30", event_ends="2026-12-05T20:00",
                                                       event_place="連合会館"))
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    assert "/stats" in r.headers["Location"]
    jobs.drain()
    notice_id = int(re.search(r"/notices/(\d+)/stats", r.headers["Location"]).group(1))
    notice = world.as_("fed", "staff").get(f"/api/v1/tenants/fed/notices/{notice_id}").get_json()
    assert notice["status"] == "published"
    assert notice["audience"] == {"units": [world.ids["council"]]}
    assert notice["event"]["starts_at"].startswith("2026-12-05T09:30")  # 18:30 in Japan is 09:30 UTC
    stats = staff.text(r.headers["Location"])
    assert "<svg" in stats and "A通信労組" in stats and "B通信労組" in stats
    assert "組合員全員" in stats and "役員のみ" in stats


def test_compose_without_the_token_writes_nothing(world, app):
    staff = Browser(app, "fed", "staff")
    r = staff.post("/t/fed/notices/new", compose_form(audience_all="1"), token=False)
    assert r.status_code == 403
    assert world.as_("fed", "staff").get("/api/v1/tenants/fed/notices").get_json()["items"] == []


def test_compose_with_nobody_chosen_says_which_entry(world, app):
    r = Browser(app, "fed", "staff").post("/t/fed/notices/new", compose_form())
    assert r.status_code == 422
    body = r.get_data(as_text=True)
    assert "次の項目を確認してください" in body and "届ける相手" in body
    assert 'value="県協 幹事会の招集"' in body  # what was typed is kept


def test_compose_can_schedule_and_save_drafts(world, app):
    staff = Browser(app, "fed", "staff")
    later = (datetime.now(UTC) + timedelta(days=3)).astimezone().strftime("%Y-%m-%dT%H:%M")
    r = staff.post("/t/fed/notices/new", compose_form(audience_all="1", when="schedule", publish_at=later))
    assert r.status_code == 302
    r = staff.post("/t/fed/notices/new", compose_form(audience_all="1", when="draft", title="下書きの件"))
    assert r.status_code == 302
    items = world.as_("fed", "staff").get("/api/v1/tenants/fed/notices").get_json()["items"]
    assert sorted(i["status"] for i in items) == ["draft", "scheduled"]
    listing = staff.text("/t/fed/notices")
    assert "予約" in listing and "下書き" in listing and "配信予定" in listing


def test_a_council_officer_sees_only_their_council_in_the_tree(world, app):
    page = Browser(app, "fed", "tokyo").text("/t/fed/notices/new")
    assert "東京県協" in page and "大阪県協" not in page
    assert 'name="audience_all"' not in page


def test_markdown_preview_is_rendered_and_sanitized_on_the_server(world, app):
    staff = Browser(app, "fed", "staff")
    r = staff.post("/t/fed/notices/markdown", {"body": "**太字** <script>alert(1)</script> [x](javascript:alert(1))"})
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "<strong>太字</strong>" in html
    assert "<script" not in html and 'href="javascript' not in html
    assert staff.post("/t/fed/notices/markdown", {"body": "x"}, token=False).status_code == 403
    r = staff.post("/t/fed/notices/new", compose_form(action="preview", body="- 一つ目"))
    assert r.status_code == 200 and "<li>一つ目</li>" in r.get_data(as_text=True)


def test_the_live_count_api_answers_the_compose_pages_cookie_and_token(world, app):
    staff = Browser(app, "fed", "staff")
    url = "/api/v1/tenants/fed/notices/preview"
    body = {"audience": {"units": [world.ids["council"]]}}
    assert staff.client.post(url, json=body).status_code == 403
    # The form token is the pages'; the API wants the sign-in session's own, which the page script reads.
    assert staff.client.post(url, json=body, headers={"X-CSRF-Token": staff.token}).status_code == 403
    r = staff.client.post(url, json=body, headers={"X-CSRF-Token": staff.api_token})
    assert r.get_json() == {"members": 5, "unions": 1, "relay_unions": 1, "officers": 1}


def test_stats_are_counts_only_and_closed_to_unions(world, app):
    notice_id = publish(world, "fed", "staff", {"units": [world.ids["council"]]})
    stats = Browser(app, "fed", "staff").text(f"/t/fed/notices/{notice_id}/stats")
    assert "渡辺" not in stats  # nobody attended: no member of a union is named (F4)
    assert Browser(app, "union-a", "aadmin").get(f"/t/fed/notices/{notice_id}/stats").status_code == 404
    assert Browser(app, "fed", "staff").get(f"/t/union-a/notices/{notice_id}/receipts").status_code == 404


def test_retract_from_the_list_takes_it_out_of_inboxes(world, app):
    notice_id = publish(world, "fed", "staff", {"all": True})
    member = Browser(app, "union-a", "a1")
    assert member.get(f"/notices/{notice_id}").status_code == 200
    staff = Browser(app, "fed", "staff")
    assert staff.post(f"/t/fed/notices/{notice_id}/retract", token=False).status_code == 403
    assert staff.post(f"/t/fed/notices/{notice_id}/retract").status_code == 302
    assert member.get(f"/notices/{notice_id}").status_code == 404


# --- union officers -------------------------------------------------------------------------------------------------

def test_members_are_listed_in_50_on_order_and_searchable(world, app):
    admin = Browser(app, "union-a", "aadmin")
    page = admin.text("/t/union-a/members")
    page = page[page.index("<table"):]
    order = [page.index(n) for n in ("A青木 健", "A加藤 翔", "A教宣 部長", "A執行 委員長", "A渡辺 恵")]
    assert order == sorted(order)
    assert "あ" in page and "か" in page and "わ" in page  # row headings
    found = admin.text("/t/union-a/members?q=わたなべ")
    assert "A渡辺 恵" in found and "A青木 健" not in found
    assert "B渡辺" not in admin.text("/t/union-a/members?q=渡辺")


def test_receipts_list_own_members_in_kana_order(world, app):
    notice_id = publish(world, "union-a", "aeditor", {"all": True}, title="職場集会", category="meeting")
    Browser(app, "union-a", "a3").post(f"/notices/{notice_id}/reaction", {"stamp": "attend"})
    page = Browser(app, "union-a", "aeditor").text(f"/t/union-a/notices/{notice_id}/receipts")
    page = page[page.index("<table"):]
    order = [page.index(n) for n in ("A青木 健", "A加藤 翔", "A渡辺 恵")]
    assert order == sorted(order)
    attend_only = Browser(app, "union-a", "aeditor").text(f"/t/union-a/notices/{notice_id}/receipts?reaction=attend")
    assert "A加藤 翔" in attend_only and "A青木 健" not in attend_only
    assert Browser(app, "union-b", "badmin").get(f"/t/union-b/notices/{notice_id}/receipts").status_code == 404


def test_union_admin_composes_for_a_branch(world, app):
    from federation import jobs

    admin = Browser(app, "union-a", "aadmin")
    page = admin.text("/t/union-a/notices/new")
    assert "a本社支部" in page and "組合員全員" in page
    r = admin.post("/t/union-a/notices/new", compose_form(audience_unit=str(world.ids["union-a:branch2"]),
                                                           category="general"))
    assert r.status_code == 302
    jobs.drain()
    titles_a2 = Browser(app, "union-a", "a2").text("/inbox")
    titles_a1 = Browser(app, "union-a", "a1").text("/inbox")
    assert "県協 幹事会の招集" in titles_a2 and "県協 幹事会の招集" not in titles_a1


def test_cascade_page_explains_and_only_the_union_admin_changes_it(world, app):
    admin = Browser(app, "union-a", "aadmin")
    page = admin.text("/t/union-a/cascade")
    assert "産別には決して見えないもの" in page and "組合員名簿" in page
    assert "直接受け取る：組合員全員に届く" in page
    editor = Browser(app, "union-a", "aeditor")
    assert 'name="cascade"' not in editor.text("/t/union-a/cascade")
    assert editor.post("/t/union-a/cascade", {"op": "cascade", "cascade": "opted_out"}).status_code == 403
    assert Browser(app, "fed", "fadmin").post("/t/union-a/cascade",
                                              {"op": "cascade", "cascade": "opted_out"}).status_code == 404
    assert admin.post("/t/union-a/cascade", {"op": "cascade", "cascade": "opted_out"}, token=False).status_code == 403
    assert admin.post("/t/union-a/cascade", {"op": "cascade", "cascade": "opted_out"}).status_code == 302
    aff = world.as_("union-a", "aadmin").get("/api/v1/unions/union-a/affiliation").get_json()
    assert aff["cascade"] == "opted_out"


def test_an_unaffiliated_union_is_told_plainly(world, app):
    page = Browser(app, "union-c", "cadmin").text("/t/union-c/cascade")
    assert "どの産別にも加盟していません" in page


def test_roles_are_granted_and_revoked_through_forms(world, app):
    admin = Browser(app, "union-a", "aadmin")
    assert admin.post("/t/union-a/roles", {"op": "grant", "login_id": "a1", "role": "union_editor"},
                      token=False).status_code == 403
    assert admin.post("/t/union-a/roles", {"op": "grant", "login_id": "a1", "role": "union_editor"}).status_code == 302
    a1 = Browser(app, "union-a", "a1")
    assert a1.get("/t/union-a/members").status_code == 200
    assert admin.post("/t/union-a/roles", {"op": "revoke", "login_id": "a1", "role": "union_editor"}).status_code == 302
    assert a1.get("/t/union-a/members").status_code == 403
    r = admin.post("/t/union-a/roles", {"op": "grant", "login_id": "nobody", "role": "union_editor"})
    assert r.status_code == 422


def test_units_are_added_through_the_form(world, app):
    admin = Browser(app, "union-a", "aadmin")
    r = admin.post("/t/union-a/units", {"name": "a本社支部 第二職場", "kind": "workplace",
                                         "parent_id": str(world.ids["union-a:branch"])})
    assert r.status_code == 302
    assert "a本社支部 第二職場" in admin.text("/t/union-a/units")
    assert Browser(app, "union-a", "aeditor").post("/t/union-a/units", {"name": "x", "kind": "branch"}).status_code \
        == 403


# --- auditors -------------------------------------------------------------------------------------------------------

def test_auditor_checks_the_federation_and_sees_the_denial_with_its_reason(world, app):
    auditor = Browser(app, "platform", "aud")
    html = auditor.text("/audit?subject=user:fed/staff&tenant=union-a&object=notices&action=read")
    assert 'data-verdict="deny"' in html
    page = all_text(html)
    assert "拒否：user:fed/staff に union-a での notices/read を認める規則はありません。" in page
    assert "union-a の内部からの操作であること" in page
    allowed = auditor.text("/audit?subject=user:fed/staff&tenant=union-a&object=notices&action=deliver")
    assert 'data-verdict="allow"' in allowed and "p, fed_editor, opted_in, notices, deliver" in allowed
    bad = auditor.get("/audit?subject=nonsense&tenant=union-a&object=notices&action=read")
    assert bad.status_code == 422


def test_auditor_sees_who_can_exposure_and_a_verified_log(world, app):
    auditor = Browser(app, "platform", "aud")
    who = all_text(auditor.text("/audit/who-can?tenant=union-a&object=notices&action=read"))
    assert "union-a の有効な組合員全員（5人）" in who
    assert "渡辺" not in who  # members are counted, never listed
    exposure = all_text(auditor.text("/audit/exposure"))
    assert "fed は union-a の組合員全員にお知らせを直接届けられます。" in exposure
    assert "fed は union-b の役員にだけお知らせを届けられ、役員が転送できます。" in exposure
    assert "どの産別も union-c にお知らせを届けられず、内容も読めません。" in exposure
    log = auditor.text("/audit/log?verify=1")
    assert 'data-verification="ok"' in log and "cascade.set" in log


# --- settings, language, devices, the installable app -----------------------------------------------------------------

def test_language_switch_turns_pages_english_and_back(world, app):
    member = Browser(app, "union-a", "a1")
    assert member.post("/settings/language", {"language": "en"}, token=False).status_code == 403
    assert member.post("/settings/language", {"language": "en"}).status_code == 302
    page = member.text("/inbox")
    assert re.search(r'<html lang="en"[ >]', page) and ">Inbox<" in page
    member.get("/lang/ja?next=/inbox")
    assert re.search(r'<html lang="ja"[ >]', member.text("/inbox"))


def test_devices_can_be_removed_only_by_their_owner(world, app):
    from devtools.local_push import LocalPushService

    with LocalPushService() as push:
        sub = push.new_subscription()
    api = world.as_("union-a", "a1")
    device = api.post("/api/v1/me/push-subscriptions", json=sub).get_json()
    member = Browser(app, "union-a", "a1")
    assert "通知を受け取る端末" in member.text("/settings")
    other = Browser(app, "union-a", "a2")
    assert other.post(f"/settings/devices/{device['id']}/delete").status_code == 404
    assert member.post(f"/settings/devices/{device['id']}/delete", token=False).status_code == 403
    assert member.post(f"/settings/devices/{device['id']}/delete").status_code == 302
    assert api.get("/api/v1/me/push-subscriptions").get_json() == []


def test_manifest_service_worker_icons_and_offline_page(world, app):
    client = app.test_client()
    manifest = client.get("/manifest.webmanifest")
    assert manifest.mimetype == "application/manifest+json"
    data = json.loads(manifest.get_data(as_text=True))
    assert data["start_url"] == "/" and data["display"] == "standalone" and data["lang"] == "ja"
    for icon in data["icons"]:
        r = client.get(icon["src"])
        assert r.status_code == 200 and r.data[:8] == b"\x89PNG\r\n\x1a\n"
        r.close()
    assert {i["sizes"] for i in data["icons"]} >= {"192x192", "512x512"}
    assert any(i.get("purpose") == "maskable" for i in data["icons"])
    sw = client.get("/sw.js")
    assert sw.status_code == 200 and sw.headers["Service-Worker-Allowed"] == "/"
    assert "javascript" in sw.mimetype
    body = sw.get_data(as_text=True)
    assert "showNotification" in body and '"retract"' in body and "notificationclick" in body
    sw.close()
    offline = client.get("/offline")
    assert offline.status_code == 200 and "オフラインです" in offline.get_data(as_text=True)


def test_dates_are_written_the_japanese_way(app):
    from federation.web.formatting import format_datetime, format_event

    with app.test_request_context("/"):
        at = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
        assert format_datetime(at) == "2026年11月24日(火) 18:30"
        assert format_event(at, at + timedelta(hours=1)) == "2026年11月24日(火) 18:30〜19:30"
    with app.test_request_context("/", headers={"Cookie": "musubi_lang=en"}):
        assert format_datetime(at) == "Tue 24 Nov 2026 18:30"


BEYOND_ANY_ID = str(2**40)  # ids are 32-bit columns; PostgreSQL refuses a larger number in a query about them


@pytest.mark.parametrize("who,path,form", [
    (("union-a", "aadmin"), "/t/union-a/units", {"name": "新支部", "kind": "workplace", "parent_id": BEYOND_ANY_ID}),
    (("union-a", "aadmin"), "/t/union-a/relay", {"notice_id": BEYOND_ANY_ID, "audience": "all"}),
    (("fed", "staff"), "/t/fed/notices/new", {"title": "t", "body": "b", "category": "general", "target": "units",
                                               "units": BEYOND_ANY_ID, "when": "draft"}),
])
def test_a_number_no_id_can_be_in_a_form_is_refused_on_the_page(world, app, who, path, form):
    """Forms parse their own numbers (they do not go through the API's schemas): one past every id is no such
    unit or notice, a 422 on the same page with the problem said, never an overflow in the database."""
    r = Browser(app, *who).post(path, form)
    assert r.status_code == 422, r.get_data(as_text=True)[:500]
    assert 'role="alert"' in r.get_data(as_text=True), "the page says what went wrong"


def test_the_audit_log_page_reads_a_bound_past_every_entry_as_no_bound(world, app):
    auditor = Browser(app, "platform", "aud")
    everything = auditor.text("/audit/log")
    r = auditor.get(f"/audit/log?before={BEYOND_ANY_ID}")
    assert r.status_code == 200
    assert r.get_data(as_text=True).count("<tr") == everything.count("<tr") > 1


def test_a_draft_opens_on_the_compose_page_and_can_be_changed_rescheduled_sent_or_deleted(world, app):
    from federation import jobs

    staff = Browser(app, "fed", "staff")
    staff.post("/t/fed/notices/new", compose_form(audience_unit=str(world.ids["council"]), when="draft",
                                                  has_event="1", event_starts="2026-12-05T18:30",
                                                  event_place="連合会館"))
    (draft,) = _notices(world)
    listing = staff.text("/t/fed/notices")
    assert f'href="/t/fed/notices/{draft["id"]}/edit">県協 幹事会の招集</a>' in listing  # the title opens it
    page = staff.text(f"/t/fed/notices/{draft['id']}/edit")
    assert "お知らせの編集" in page and 'value="県協 幹事会の招集"' in page and 'value="連合会館"' in page
    assert re.search(rf'value="{world.ids["council"]}" data-node checked', page)
    later = (datetime.now(UTC) + timedelta(days=2)).astimezone().strftime("%Y-%m-%dT%H:%M")
    edit = f"/t/fed/notices/{draft['id']}/edit"
    # Rescheduled, retitled, the event dropped.
    r = staff.post(edit, compose_form(audience_unit=str(world.ids["council"]), title="幹事会（日程変更）",
                                      when="schedule", publish_at=later))
    assert r.status_code == 302
    got = world.as_("fed", "staff").get(f"/api/v1/tenants/fed/notices/{draft['id']}").get_json()
    assert got["status"] == "scheduled" and got["title"] == "幹事会（日程変更）" and got["event"] is None
    # Bad input on the edit page: 422 naming the field, nothing changed.
    r = staff.post(edit, compose_form(audience_unit=str(world.ids["council"]), title="", when="draft"))
    assert r.status_code == 422
    assert world.as_("fed", "staff").get(f"/api/v1/tenants/fed/notices/{draft['id']}").get_json()["title"] == \
        "幹事会（日程変更）"
    # Sent from the edit page: asked once more first.
    r = staff.post(edit, compose_form(audience_unit=str(world.ids["council"]), confirmed=None))
    assert "この通知を配信しますか" in r.get_data(as_text=True)
    assert _notices(world)[0]["status"] == "scheduled"
    r = staff.post(edit, compose_form(audience_unit=str(world.ids["council"])))
    assert r.status_code == 302
    jobs.drain()
    assert _notices(world)[0]["status"] == "published"
    # Out: no longer editable as a draft, and not deletable (retract instead).
    assert staff.get(edit).status_code == 302
    assert staff.post(f"/t/fed/notices/{draft['id']}/delete", {}).status_code == 409
    # Another draft is deleted outright.
    staff.post("/t/fed/notices/new", compose_form(audience_all="1", when="draft", title="消す下書き"))
    other = next(n for n in _notices(world) if n["title"] == "消す下書き")
    r = staff.post(f"/t/fed/notices/{other['id']}/delete", {})
    assert r.status_code == 302 and "done=deleted" in r.headers["Location"]
    assert world.as_("fed", "staff").get(f"/api/v1/tenants/fed/notices/{other['id']}").status_code == 404


@pytest.mark.parametrize("who", [("union-a", "aadmin"), ("union-b", "b1"), ("fed", "tokyo")])
def test_nobody_but_its_editors_opens_or_deletes_a_draft(world, app, who):
    staff = Browser(app, "fed", "staff")
    staff.post("/t/fed/notices/new", compose_form(audience_all="1", when="draft", title="本部の下書き"))
    (draft,) = _notices(world)
    other = Browser(app, *who)
    r = other.get(f"/t/fed/notices/{draft['id']}/edit")
    assert r.status_code in (403, 404) and "本部の下書き" not in r.get_data(as_text=True)
    assert other.post(f"/t/fed/notices/{draft['id']}/delete", {}).status_code in (403, 404)
    assert other.post(f"/t/fed/notices/{draft['id']}/edit", compose_form(audience_all="1", title="書き換え",
                                                                         when="draft")).status_code in (403, 404)
    assert [n["title"] for n in _notices(world)] == ["本部の下書き"]


def test_the_auditor_picks_the_subject_and_the_hint_names_tenants_that_exist(world, app):
    auditor = Browser(app, "platform", "aud")
    page = auditor.text("/audit")
    hint = re.search(r'<p class="hint" id="subject-hint">(.*?)</p>', page, re.S).group(1)
    named = set(re.findall(r"[@:]([a-z0-9-]+)[/<]", hint))
    with app.app_context():
        from tenants.reads import all_tenants

        slugs = {t.slug for t in all_tenants()}
    assert named and named <= slugs, hint  # every example names a tenant that exists
    picked = auditor.text("/audit?who_kind=user&who_tenant=fed&who_login=staff&tenant=union-a&object=notices"
                          "&action=read")
    assert 'data-verdict="deny"' in picked and "user:fed/staff" in picked
    role = auditor.text("/audit?who_kind=role&who_role=union_admin&who_tenant=union-a&tenant=union-a"
                        "&object=members&action=write")
    assert 'data-verdict="allow"' in role and "role:union_admin@union-a" in role
