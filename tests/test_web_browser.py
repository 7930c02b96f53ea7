"""The main journeys in headless Chromium (Debian's package) against a real `cli.py serve`: a federation editor
targets a council and publishes; an opted-in member sees it and presses 出席 after the sharing note; an opted-out
member does not see it until their union admin relays it; an auditor sees the federation denied with its reason.
Every main page is photographed at phone and desktop widths into artifacts/screenshots/."""
from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from browser_world import (
    DESKTOP,
    SCREENSHOTS,
    ServedWorld,
    browser_missing_reason,
    copy_to_docs,
    expect,
    shoot,
    sign_in,
)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(browser_missing_reason() is not None, reason=browser_missing_reason() or "")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorld]:
    world = ServedWorld(tmp_path_factory.mktemp("browser"))
    try:
        world.build()
        yield world
    finally:
        world.stop()


def test_sign_in_page_is_japanese_and_labelled(open_page):
    page = open_page()
    page.goto("/signin")
    assert page.locator("html").get_attribute("lang") == "ja"
    for label in ("組合・産別のコード", "社員番号またはメールアドレス", "パスワード"):
        assert page.get_by_label(label).is_visible()
    # The keyboard reaches the form in order, and the focused field is outlined.
    order = []
    for _ in range(6):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.className"))
        if order[-1] == "tenant":
            break
    assert order[0] == "skip" and order[-1] == "tenant", order
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "login_id"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    shoot(page, "signin")


def test_federation_editor_targets_a_council_and_publishes(open_page, served):
    page = open_page(DESKTOP)
    sign_in(page, "fed", "staff")
    page.get_by_role("link", name="お知らせを作成").click()
    page.get_by_label("件名").fill("東京県協 秋季セミナーのご案内")
    page.get_by_label("分類").select_option("seminar")
    page.locator("#body").fill("## 秋季セミナー\n\n- 会場: 連合会館\n- 持ち物: **筆記用具**")
    page.get_by_role("button", name="プレビュー").click()
    assert page.locator("[data-preview-body] strong").inner_text() == "筆記用具"
    page.get_by_label("日時のある会議・セミナーのお知らせ").check()
    page.get_by_label("開始").fill("2026-12-05T18:30")
    page.get_by_label("終了").fill("2026-12-05T20:30")
    page.get_by_label("場所").fill("連合会館 201会議室")
    reach = page.locator("[data-reach]")
    assert reach.inner_text() == "届ける相手を選んでください。"
    # The tree is folded: blocks show, their councils open on demand.
    assert not page.get_by_label("東京県協").is_visible()
    page.locator("details[data-branch] > summary").first.click()
    page.get_by_label("東京県協").check()
    # union-a (opted in: aadmin and three members) directly, union-b (opted out) through its officers.
    expect(reach).to_have_text("4人 (1組合) に直接届きます・1組合は役員のみ")
    assert page.get_by_label("A通信労働組合").is_disabled()  # covered by the council: not sent twice
    page.get_by_label("今すぐ配信").check()
    shoot(page, "compose")
    page.get_by_role("button", name="確定する").click()
    # Sending to phones at once is asked once more, with the title and the count.
    confirm = page.locator("#send-confirm")
    expect(confirm).to_contain_text("東京県協 秋季セミナーのご案内")
    expect(confirm).to_contain_text("4人 (1組合) に直接届きます")
    shoot(page, "compose-confirm")
    page.get_by_role("button", name="配信する").click()
    page.wait_for_url(re.compile(r".*/t/fed/notices/\d+/stats.*"))
    notice_id = int(re.search(r"/notices/(\d+)/stats", page.url).group(1))
    served.wait_for_cascade(notice_id)
    page.reload()
    assert page.locator("svg.chart").is_visible()
    table = page.locator("table").inner_text()
    assert "A通信労働組合" in table and "B建設労働組合" in table and "役員のみ" in table
    shoot(page, "stats")
    page.goto("/t/fed/notices")
    shoot(page, "notices")


def test_event_fields_show_only_when_asked_for_and_hidden_ones_are_not_sent(open_page, served):
    page = open_page()
    sign_in(page, "fed", "staff")
    page.goto("/t/fed/notices/new")
    fields = page.locator("#event-fields")
    place = page.get_by_label("場所")
    assert fields.evaluate("e => getComputedStyle(e).display") == "none" and not place.is_visible()
    page.get_by_label("日時のある会議・セミナーのお知らせ").check()
    assert place.is_visible()
    page.get_by_label("開始").fill("2026-12-05T18:30")
    place.fill("連合会館 201会議室")
    page.get_by_label("日時のある会議・セミナーのお知らせ").uncheck()  # changed their mind: no event
    assert not place.is_visible() and place.is_disabled()
    page.get_by_label("件名").fill("日時のない連絡")
    page.locator("#body").fill("本文")
    page.get_by_label("加盟組合すべて").check()
    page.get_by_label("下書きとして保存").check()
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/t/fed/notices/new")) as sent:
        page.get_by_role("button", name="確定する").click()
    posted = sent.value.post_data or ""
    assert "event_place" not in posted and "event_starts" not in posted, posted
    page.wait_for_url(re.compile(r".*/t/fed/notices.*"))


def test_a_draft_opens_from_its_title_is_edited_and_deleted(open_page, served):
    page = open_page()
    sign_in(page, "fed", "staff")
    page.goto("/t/fed/notices/new")
    page.get_by_label("件名").fill("下書き 定期大会の準備")
    page.locator("#body").fill("準備中")
    page.get_by_label("加盟組合すべて").check()
    page.get_by_label("下書きとして保存").check()
    page.get_by_role("button", name="確定する").click()
    page.wait_for_url(re.compile(r".*/t/fed/notices\?done=draft"))
    page.get_by_role("link", name="下書き 定期大会の準備").click()
    page.wait_for_url(re.compile(r".*/t/fed/notices/\d+/edit"))
    assert page.get_by_label("件名").input_value() == "下書き 定期大会の準備"
    assert page.get_by_label("加盟組合すべて").is_checked() and page.get_by_label("下書きとして保存").is_checked()
    page.get_by_label("件名").fill("定期大会の準備（第2版）")
    page.get_by_role("button", name="確定する").click()
    page.wait_for_url(re.compile(r".*/t/fed/notices\?done=draft"))
    expect(page.get_by_role("link", name="定期大会の準備（第2版）")).to_be_visible()
    page.get_by_role("link", name="定期大会の準備（第2版）").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-notice").click()
    page.wait_for_url(re.compile(r".*/t/fed/notices\?done=deleted"))
    expect(page.locator("main")).to_contain_text("削除しました")
    assert page.get_by_role("link", name="定期大会の準備（第2版）").count() == 0


def test_text_size_is_kept_on_this_device_across_pages_and_nothing_overflows(open_page, served):
    page = open_page({"width": 360, "height": 740})
    sign_in(page, "union-a", "a1")
    base = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
    page.locator("#text-size").get_by_role("link", name="特大").click()
    for path in ("/inbox", "/settings", "/t/union-a/applications", "/signin/help"):
        page.goto(path)
        size = page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)")
        assert size == base * 1.5, (path, size, base)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, (path, overflow)
        expect(page.locator("#text-size [aria-current]")).to_have_text("特大")
    shoot(page, "inbox-xlarge")
    page.locator("#text-size").get_by_role("link", name="標準").click()
    assert page.evaluate("parseFloat(getComputedStyle(document.documentElement).fontSize)") == base


PAGES_AT_360 = {
    ("fed", "staff"): ("/t/fed/notices", "/t/fed/notices/new", "/t/fed/units", "/settings"),
    ("union-a", "aadmin"): ("/t/union-a/notices", "/t/union-a/members", "/t/union-a/members/import",
                            "/t/union-a/units", "/t/union-a/roles", "/t/union-a/cascade", "/t/union-a/relay",
                            "/t/union-a/documents", "/t/union-a/surveys", "/t/union-a/applications",
                            "/t/union-a/invitations", "/t/union-a/ballots"),
    ("union-a", "a1"): ("/inbox", "/settings", "/settings/password", "/t/union-a/documents"),
    ("platform", "aud"): ("/audit/check", "/audit/who-can", "/audit/exposure", "/audit/log"),
}


@pytest.mark.parametrize("who", sorted(PAGES_AT_360))
def test_no_page_scrolls_sideways_on_a_360_px_phone(open_page, served, who):
    page = open_page({"width": 360, "height": 740})
    sign_in(page, *who)
    wide = []
    for path in PAGES_AT_360[who]:
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        if overflow > 0:
            wide.append((path, overflow))
    assert not wide, wide


def test_opted_in_member_sees_it_and_presses_attend_after_the_sharing_note(open_page, served):
    notice_id = served.publish("連合会館での秋季セミナー")
    page = open_page()
    sign_in(page, "union-a", "a1")
    item = page.locator(".inbox-item", has_text="連合会館での秋季セミナー")
    assert item.is_visible()
    assert "未読" in item.inner_text() and "セミナー" in item.inner_text()
    assert "2026年12月5日(土) 18:30〜20:30" in item.inner_text()
    shoot(page, "inbox")
    item.get_by_role("link").click()
    page.wait_for_url(f"**/notices/{notice_id}")
    note = page.locator("#share-note")
    attend = page.get_by_role("button", name="出席")
    assert note.is_visible() and "氏名・よみがな・組合名" in note.inner_text()
    # The note sits above the button and is read out with it.
    assert note.bounding_box()["y"] < attend.bounding_box()["y"]
    assert attend.get_attribute("aria-describedby") == "share-note"
    shoot(page, "notice")
    attend.click()
    page.wait_for_url(re.compile(r".*stamped=attend.*"))
    assert page.get_by_role("status").first.inner_text() == "「出席」を送りました。"
    assert page.get_by_role("button", name="出席").get_attribute("aria-pressed") == "true"
    shared = served.api("fed", "staff").call("GET", f"/api/v1/tenants/fed/notices/{notice_id}/receipts")["items"]
    assert [s["display_name"] for s in shared] == ["渡辺 恵"]
    page.goto("/settings")
    shoot(page, "settings")


def test_opted_out_member_does_not_see_it_until_the_union_admin_relays_it(open_page, served):
    notice_id = served.publish("産別 中央委員会の報告", category="meeting")
    member = open_page()
    sign_in(member, "union-b", "b1")
    assert member.locator(".inbox-item", has_text="産別 中央委員会の報告").count() == 0
    assert member.goto(f"/notices/{notice_id}").status == 404

    admin = open_page(DESKTOP)
    sign_in(admin, "union-b", "badmin")
    relay_item = admin.locator(".inbox-item", has_text="産別 中央委員会の報告")
    assert "役員向け・転送待ち" in relay_item.inner_text()
    admin.get_by_role("navigation", name="メインメニュー").get_by_role("link", name="転送待ち").click()
    row = admin.locator(".row", has_text="産別 中央委員会の報告")
    shoot(admin, "relay")
    row.get_by_role("button", name="組合員に転送").click()
    admin.wait_for_url(re.compile(r".*/t/union-b/relay\?done=.*"))
    assert "組合員に配信済み" in admin.locator(".row", has_text="産別 中央委員会の報告").inner_text()

    member.goto("/inbox")
    assert member.locator(".inbox-item", has_text="産別 中央委員会の報告").is_visible()
    assert member.goto(f"/notices/{notice_id}").status == 200

    admin.goto("/t/union-b/cascade")
    assert admin.get_by_role("heading", name="産別には決して見えないもの").is_visible()
    shoot(admin, "cascade")
    admin.goto("/t/union-b/members")
    shoot(admin, "members")
    admin.goto(f"/t/union-b/notices/{notice_id}/receipts")
    shoot(admin, "receipts")


def test_auditor_checks_the_federation_and_sees_a_denial_with_its_reason(open_page, served):
    page = open_page(DESKTOP)
    sign_in(page, "platform", "aud")
    # The subject is picked, not typed in the firewall's notation: a person, their federation, their number.
    page.get_by_label("個人", exact=True).check()
    page.get_by_label("所属する組合・産別").select_option("fed")
    page.get_by_label("社員番号またはメールアドレス（個人のとき）").fill("staff")
    page.get_by_label("テナント").select_option("union-a")
    page.get_by_label("対象").select_option("notices")
    page.get_by_label("操作").select_option("read")
    page.get_by_role("button", name="確認").last.click()
    verdict = page.locator("[data-verdict]")
    assert verdict.get_attribute("data-verdict") == "deny"
    assert page.get_by_role("heading", name="拒否").is_visible()
    reason = page.locator("[data-reason]").inner_text()
    assert reason == "拒否：user:fed/staff に union-a での notices/read を認める規則はありません。"
    assert "union-a の内部からの操作であること" in page.locator(".nearest").inner_text()
    shoot(page, "audit-check")
    page.get_by_role("link", name="公開範囲").click()
    assert "fed は union-b の役員にだけお知らせを届けられ、役員が転送できます。" in page.locator("main").inner_text()
    shoot(page, "audit-exposure")
    page.get_by_role("link", name="監査ログ").first.click()
    page.get_by_role("button", name="今すぐ検証").click()
    assert page.locator("[data-verification]").get_attribute("data-verification") == "ok"
    shoot(page, "audit-log")


def test_the_journeys_left_screenshots_for_review():
    """The journeys above shoot every main page; docs/screenshots is refreshed from them only on request
    (MUSUBI_UPDATE_DOCS_SCREENSHOTS=1), so an ordinary test run never rewrites tracked files."""
    names = ["inbox-phone.png", "notice-phone.png", "compose-desktop.png", "stats-desktop.png",
             "cascade-phone.png", "audit-check-desktop.png"]
    missing = [n for n in names if not (SCREENSHOTS / n).exists()]
    assert not missing, f"earlier journeys did not leave {missing}"
    for name in names:
        assert (SCREENSHOTS / name).stat().st_size > 1000
    if os.environ.get("MUSUBI_UPDATE_DOCS_SCREENSHOTS") == "1":
        copy_to_docs(names)
