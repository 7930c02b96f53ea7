"""A union's own space in headless Chromium against a real `cli.py serve`, two or three people per journey, each in
their own browser context: an officer uploads a PDF that a member downloads byte for byte while the neighbour union
gets 404; a survey is created, answered once on a phone and counted; a 慶弔費申請 form is defined, filed with an
attachment, approved with a comment; an invitation's QR flyer brings in a new member who registers and signs in.
Every page is photographed at phone and desktop widths into artifacts/screenshots/, and none may be wider than a
phone."""
from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_world import DESKTOP, PHONE, PW, ServedWorld, browser_missing_reason, expect, shoot, sign_in

from federation.demo import one_page_pdf

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(browser_missing_reason() is not None, reason=browser_missing_reason() or "")]


def tiny_pdf() -> bytes:
    return one_page_pdf("議案書")


def tiny_png() -> bytes:
    """A 2x2 grey PNG written by hand: a real image for the attachment, without an imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorld]:
    world = ServedWorld(tmp_path_factory.mktemp("space-browser"))
    try:
        world.build()
        # A 書記 who holds union_editor: the officer who uploads, asks and approves without being the admin.
        admin = world.api("union-a", "aadmin")
        admin.call("POST", "/api/v1/tenants/union-a/members", {"login_id": "aeditor", "display_name": "書記 三郎",
                                                              "name_kana": "しょき さぶろう", "password": PW})
        admin.call("POST", "/api/v1/tenants/union-a/roles", {"login_id": "aeditor", "role": "union_editor"})
        yield world
    finally:
        world.stop()


def menu(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Open a page from the menu as a person would: on a phone from the bottom bar, or behind its メニュー."""
    nav = page.get_by_role("navigation", name="メインメニュー")
    link = nav.get_by_role("link", name=name, exact=True)
    if not link.is_visible():
        nav.get_by_text("メニュー", exact=True).click()
    link.click()


def assert_on_phone_screen(locator) -> None:  # type: ignore[no-untyped-def]
    """The element is read on a phone without scrolling a table sideways to find it."""
    locator.page.set_viewport_size(PHONE)
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box


def test_officer_uploads_a_pdf_that_members_download_and_the_neighbour_cannot_see(open_page, served, tmp_path):
    pdf = tiny_pdf()
    officer = open_page(DESKTOP)
    sign_in(officer, "union-a", "aeditor")
    menu(officer, "文書")
    upload = officer.get_by_role("region", name="文書をアップロード")
    upload.get_by_label("件名").fill("2026年度 組合規約")
    upload.get_by_label("フォルダ").fill("規約")
    upload.get_by_label("組合全体").check()
    upload.get_by_label("ファイル").set_input_files({"name": "組合規約2026.pdf", "mimeType": "application/pdf",
                                                 "buffer": pdf})
    upload.get_by_role("button", name="アップロード").click()
    officer.wait_for_url(re.compile(r".*/t/union-a/documents/\d+\?done=uploaded$"))
    document_url = officer.url.split("?", 1)[0]
    assert officer.get_by_role("heading", name="2026年度 組合規約").is_visible()
    assert "組合全体" in officer.locator("dl.pairs").inner_text()
    assert "組合規約2026.pdf" in officer.locator("dl.pairs").inner_text()

    member = open_page()
    sign_in(member, "union-a", "a1")
    menu(member, "文書")
    row = member.locator(".row", has_text="2026年度 組合規約")
    expect(row).to_be_visible()
    assert "PDF" in row.inner_text() and "規約" in row.inner_text()
    shoot(member, "documents")
    with member.expect_download() as info:
        row.get_by_role("link", name="ダウンロード").click()
    download = info.value
    saved = tmp_path / "downloaded.pdf"
    download.save_as(saved)
    assert saved.read_bytes() == pdf
    assert download.suggested_filename == "組合規約2026.pdf"
    officer.goto("/t/union-a/documents")
    shoot(officer, "documents-officer")

    neighbour = open_page()
    sign_in(neighbour, "union-b", "b1")
    response = neighbour.goto(document_url)
    assert response is not None and response.status == 404
    assert neighbour.get_by_role("heading", name="見つかりません").is_visible()
    assert "組合規約" not in neighbour.content()
    assert neighbour.goto(document_url + "/download").status == 404
    neighbour.goto(document_url)
    shoot(neighbour, "document-not-found")


def test_officer_asks_a_single_choice_question_and_a_member_answers_it_once(open_page, served):
    officer = open_page(DESKTOP)
    sign_in(officer, "union-a", "aeditor")
    menu(officer, "アンケート")
    officer.get_by_role("link", name="アンケートを作成").click()
    officer.get_by_label("件名").fill("春闘要求についてのアンケート")
    officer.get_by_label("説明").fill("今年の要求案について、組合員の皆さんの意見を聞かせてください。")
    first = officer.get_by_role("group", name="設問1", exact=True)
    first.get_by_label("種類").select_option(label="単一選択")
    first.get_by_label("設問", exact=True).fill("要求案に賛成ですか")
    first.get_by_label("選択肢").fill("賛成\n反対\nどちらともいえない")
    shoot(officer, "survey-new")
    officer.get_by_role("button", name="アンケートを作成する").click()
    officer.wait_for_url(re.compile(r".*/t/union-a/surveys/\d+\?done=created$"))
    survey_url = officer.url.split("?", 1)[0]

    member = open_page()
    sign_in(member, "union-a", "a2")
    menu(member, "アンケート")
    row = member.locator(".row", has_text="春闘要求についてのアンケート")
    assert "未回答" in row.inner_text()
    row.get_by_role("link", name="春闘要求についてのアンケート").click()
    member.wait_for_url(survey_url)
    answer = member.get_by_role("region", name="あなたの回答")
    answer.get_by_role("group", name=re.compile("要求案に賛成ですか")).get_by_label("賛成", exact=True).check()
    shoot(member, "survey-answer")
    answer.get_by_role("button", name="回答を送信").click()
    member.wait_for_url(re.compile(r".*\?done=answered$"))
    expect(member.get_by_role("status").first).to_have_text("ご回答ありがとうございました。回答を受け付けました。")
    answered = member.get_by_role("region", name="あなたの回答")
    assert "このアンケートには回答済みです" in answered.inner_text()
    assert answered.locator("form").count() == 0 and member.get_by_role("radio").count() == 0
    # Results are the officers': a member sees neither the rate nor the counts.
    assert member.get_by_role("region", name="集計結果").count() == 0
    shoot(member, "survey-answered")
    menu(member, "アンケート")
    assert "回答済み" in member.locator(".row", has_text="春闘要求についてのアンケート").inner_text()

    officer.goto(survey_url)
    rate = officer.get_by_role("region", name="回答率")
    assert re.search(r"回答済み\s*1 / \d+", rate.locator("dl.tiles").inner_text()), rate.inner_text()
    results = officer.get_by_role("region", name="集計結果")
    assert "単一選択・回答1件" in results.get_by_role("heading", name=re.compile("要求案に賛成ですか")).inner_text()
    counts = {r.locator("th").inner_text(): r.locator("td").first.inner_text()
              for r in results.locator("tbody tr").all()}
    assert counts == {"賛成": "1", "反対": "0", "どちらともいえない": "0"}
    assert_on_phone_screen(results.locator("tbody tr", has_text="賛成").locator("td").last)
    shoot(officer, "survey-results")


def test_admin_defines_a_form_a_member_files_it_and_the_approver_approves(open_page, served):
    png = tiny_png()
    admin = open_page(DESKTOP)
    sign_in(admin, "union-a", "aadmin")
    menu(admin, "申請")
    admin.get_by_role("link", name="申請書の管理").click()
    add = admin.get_by_role("region", name="申請書を追加")
    add.get_by_label("申請書名").fill("慶弔費申請")
    add.get_by_label("説明（任意）").fill("結婚・出産・忌引のときに申請してください。")
    amount, reason = add.locator(".slot").nth(0), add.locator(".slot").nth(1)
    amount.get_by_label("項目1: 項目名").fill("金額")
    amount.get_by_label("種類").select_option(label="数値")
    amount.get_by_label("必須").check()
    reason.get_by_label("項目2: 項目名").fill("理由")
    reason.get_by_label("種類").select_option(label="文章")
    reason.get_by_label("必須").check()
    approver = add.get_by_label("一次承認をする人")
    offered = approver.locator("option").all_inner_texts()
    assert "組合編集者" in offered, offered
    approver.select_option(label="組合編集者")
    add.get_by_role("button", name="申請書を追加する").click()
    admin.wait_for_url(re.compile(r".*/t/union-a/applications/types\?done=\d+$"))
    defined = admin.locator("tbody tr", has_text="慶弔費申請").inner_text()
    assert "金額" in defined and "理由" in defined and "組合編集者" in defined
    shoot(admin, "application-types")

    member = open_page()
    sign_in(member, "union-a", "a3")
    menu(member, "申請")
    member.get_by_role("link", name="新しい申請").click()
    member.get_by_role("radio", name=re.compile("慶弔費申請")).check()
    member.get_by_role("button", name="次へ").click()
    member.get_by_label("金額").fill("30000")
    member.get_by_label("理由").fill("祖母の葬儀のため（忌引）")
    member.get_by_label("添付ファイル（任意）").set_input_files({"name": "会葬礼状.png", "mimeType": "image/png",
                                                          "buffer": png})
    shoot(member, "application-new")
    member.get_by_role("button", name="申請する").click()
    member.wait_for_url(re.compile(r".*/t/union-a/applications/\d+\?done=filed$"))
    application_url = member.url.split("?", 1)[0]
    assert "審査待ち" in member.locator(".page-head").inner_text()
    assert member.get_by_role("link", name="会葬礼状.png").is_visible()

    editor = open_page(DESKTOP)
    sign_in(editor, "union-a", "aeditor")
    menu(editor, "申請")
    editor.get_by_role("link", name="判断待ち").click()
    editor.locator("tbody tr", has_text="加藤 翔").get_by_role("link", name="慶弔費申請").click()
    editor.wait_for_url(application_url)
    details = editor.get_by_role("region", name="内容").inner_text()
    assert "加藤 翔" in details and "30,000" in details and "祖母の葬儀のため（忌引）" in details
    with editor.expect_download() as info:
        editor.get_by_role("link", name="会葬礼状.png").click()
    assert Path(info.value.path()).read_bytes() == png
    editor.get_by_label("コメント").fill("承認します。心よりお悔やみ申し上げます。")
    shoot(editor, "application-decide")
    editor.get_by_role("button", name="承認する").click()
    editor.wait_for_url(re.compile(r".*\?done=approve$"))
    expect(editor.get_by_role("status").first).to_have_text("この申請を承認しました。")
    assert "承認済み" in editor.locator(".page-head").inner_text()

    menu(member, "申請")
    mine = member.locator("tbody tr", has_text="慶弔費申請")
    assert "承認済み" in mine.inner_text() and "完了" in mine.inner_text()
    shoot(member, "applications")
    mine.get_by_role("link", name="慶弔費申請").click()
    history = member.locator("table", has_text="審査待ち → 承認済み").inner_text()
    assert "書記 三郎" in history and "承認します。心よりお悔やみ申し上げます。" in history
    # The approver's comment is what the member came to read: on a phone it is on screen, not off to the right.
    assert_on_phone_screen(member.get_by_text("承認します。心よりお悔やみ申し上げます。"))
    shoot(member, "application-approved")


def test_admin_issues_an_invitation_and_a_new_hire_registers_from_the_flyer(open_page, served):
    admin = open_page(DESKTOP)
    sign_in(admin, "union-a", "aadmin")
    menu(admin, "招待")
    issue = admin.get_by_role("region", name="招待を発行")
    issue.get_by_label("新しい組合員の所属").select_option(label="本社支部")
    issue.get_by_label("ラベル（任意）").fill("2026年度 新入社員説明会")
    issue.get_by_role("button", name="発行する").click()
    admin.wait_for_url(re.compile(r".*/t/union-a/invitations/\d+\?done=created$"))
    qr = admin.get_by_role("img", name="登録用のQRコード")
    expect(qr).to_be_visible()
    admin.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=qr.element_handle())
    assert qr.evaluate("img => img.naturalWidth") > 0
    url = admin.locator(".flyer-url").inner_text().strip()
    assert url.startswith(served.base + "/register/"), url
    assert "本社支部" in admin.locator(".flyer").inner_text()
    shoot(admin, "invitation-flyer")

    newcomer = open_page()
    newcomer.goto(url)
    assert "A通信労働組合" in newcomer.locator("main").inner_text()
    newcomer.get_by_label("社員番号").fill("a100")
    newcomer.get_by_label("氏名", exact=True).fill("小林 結衣")
    newcomer.get_by_label("氏名のよみ（かな）").fill("こばやし ゆい")
    newcomer.get_by_label("パスワード").fill(PW)
    shoot(newcomer, "register")
    newcomer.get_by_role("button", name="登録する").click()
    expect(newcomer.get_by_role("heading", name="登録しました")).to_be_visible()
    assert "今すぐサインインできます" in newcomer.locator("main").inner_text()
    shoot(newcomer, "register-done")
    newcomer.get_by_role("link", name="ログイン").click()
    newcomer.wait_for_url(re.compile(r".*/signin.*"))
    sign_in(newcomer, "union-a", "a100")
    assert newcomer.locator(".who-name").inner_text() == "小林 結衣"
    assert newcomer.locator(".who-tenant").inner_text() == "A通信労働組合"

    admin.goto("/t/union-a/invitations")
    admin.get_by_role("link", name="所属ごとの登録数").click()
    branch = admin.locator("tbody tr", has_text="本社支部")
    assert branch.locator("td").first.inner_text() == "1"
    assert admin.locator("tfoot td").first.inner_text() == "1"
    assert_on_phone_screen(branch.locator("td").last)
    shoot(admin, "invitation-report")
