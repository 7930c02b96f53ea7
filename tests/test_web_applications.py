"""The application pages (申請): a member files a form with an attachment and follows it, approvers decide their step
with a comment, the union admin defines forms and exports CSV; every page answers as the API does (404 outside the
union and for a colleague's application, 403 for a missing right), bad input is a 422 that stores nothing, and
forms without their token are refused."""
from __future__ import annotations

import io
import json
import re

import pytest
from conftest import World
from web_support import Browser, latin_words, visible_text

A = "/api/v1/tenants/union-a"
P = "/t/union-a/applications"
PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
KEICHO = {
    "name": "慶弔費申請",
    "description": "結婚・出産・弔事の際に申請してください。",
    "fields": [
        {"key": "event", "label": "事由", "kind": "choice", "required": True, "choices": ["結婚", "出産", "弔事"]},
        {"key": "event_date", "label": "発生日", "kind": "date", "required": True},
        {"key": "amount", "label": "金額", "kind": "number"},
        {"key": "note", "label": "備考", "kind": "text"},
    ],
}
GOOD = {"v_event": "弔事", "v_event_date": "2026-10-10", "v_amount": "30,000", "v_note": "祖母の葬儀"}
# File formats are named as Japanese offices name them; the rest of a page must be Japanese.
FORMATS = {"PDF", "PNG", "JPEG", "WebP", "CSV"}


def make_type(world: World, **over: object) -> int:
    r = world.as_("union-a", "aadmin").post(f"{A}/application-types", json={**KEICHO, **over})
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def file_via_page(browser: Browser, type_id: int, values: dict | None = None, attachment: bytes | None = None,
                  *, token: bool = True):  # type: ignore[no-untyped-def]
    data: dict = {"type_id": str(type_id), **(values if values is not None else GOOD)}
    if attachment is not None:
        data["file"] = (io.BytesIO(attachment), "会葬礼状.pdf")
    return browser.post(f"{P}/new", data, token=token)


def mine(world: World, who: str = "a1") -> list[dict]:
    return world.as_("union-a", who).get(f"{A}/applications").get_json()["items"]


def filed_id(response) -> int:  # type: ignore[no-untyped-def]
    assert response.status_code == 302, response.get_data(as_text=True)[:3000]
    found = re.search(r"/applications/(\d+)\?done=filed$", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


# --- a member's journey --------------------------------------------------------------------------------------------

def test_member_files_a_form_with_an_attachment_and_follows_it(world, app):
    type_id = make_type(world)
    a1 = Browser(app, "union-a", "a1")
    pick = a1.text(f"{P}/new")
    assert "慶弔費申請" in pick and "結婚・出産・弔事" in pick
    form = a1.text(f"{P}/new?type_id={type_id}")
    for label in ("事由", "発生日", "金額", "備考"):
        assert label in form
    assert 'type="date"' in form and '<option value="弔事">' in form and 'type="file"' in form

    app_id = filed_id(file_via_page(a1, type_id, attachment=PDF))
    stored = mine(world)
    assert [a["id"] for a in stored] == [app_id]
    assert stored[0]["values"] == {"event": "弔事", "event_date": "2026-10-10", "amount": 30000, "note": "祖母の葬儀"}
    assert stored[0]["status"] == "pending" and len(stored[0]["attachments"]) == 1

    detail = a1.text(f"{P}/{app_id}?done=filed")
    assert "申請しました" in detail and "祖母の葬儀" in detail and "会葬礼状.pdf" in detail
    assert "審査待ち" in detail and "承認者: 組合管理者" in detail
    assert "令和8年10月10日(土)（2026年）" in detail and "30,000" in detail  # dates as on paperwork
    assert "取り下げる" in detail and "承認する" not in detail  # an applicant withdraws, never decides

    link = re.search(rf'href="({P}/{app_id}/attachments/\d+)"', detail)
    assert link
    download = a1.get(link.group(1))
    assert download.status_code == 200 and download.data == PDF
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"

    listed = a1.text(P)
    assert "慶弔費申請" in listed and "審査待ち" in listed and "承認者: 組合管理者" in listed
    assert "新しい申請" in listed and "判断待ち" not in listed  # no approver tab for a plain member


def test_bad_values_are_shown_per_field_with_422_and_nothing_is_stored(world, app):
    type_id = make_type(world)
    a1 = Browser(app, "union-a", "a1")
    bad = {"v_event": "離婚", "v_event_date": "2026-13-45", "v_amount": "三万円", "v_note": "x" * 2001}
    r = file_via_page(a1, type_id, bad)
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert "選択肢から選んでください（事由）" in page
    assert "日付を入力してください（発生日）" in page
    assert "数値を入力してください（金額）" in page
    assert "備考は2000文字以内" in page
    assert "保存していません" in page
    assert 'value="三万円"' in page  # what the member typed is kept for them to correct
    r = file_via_page(a1, type_id, {"v_event": "", "v_event_date": ""})
    assert r.status_code == 422 and "事由は必須です" in r.get_data(as_text=True)
    # A file that is not a PDF or an image by its content: the values were fine, still nothing is stored.
    r = file_via_page(a1, type_id, attachment=b"MZ\x90\x00 not a document")
    assert r.status_code == 422 and "中身で確認" in r.get_data(as_text=True)
    assert mine(world) == []
    # A form from another union, or none at all, is refused by its field.
    other = world.as_("union-b", "badmin").post("/api/v1/tenants/union-b/application-types", json=KEICHO)
    r = file_via_page(a1, other.get_json()["id"])
    assert r.status_code == 422 and "一覧から申請書を選んでください" in r.get_data(as_text=True)
    assert a1.get(f"{P}/new?type_id=abc").status_code == 422
    assert mine(world) == []


def test_approver_sees_it_to_decide_and_a_rejection_needs_its_reason(world, app):
    type_id = make_type(world)
    app_id = filed_id(file_via_page(Browser(app, "union-a", "a1"), type_id))
    admin = Browser(app, "union-a", "aadmin")
    # An approver opens the page on what waits for them, with its count.
    todo = admin.text(P)
    assert re.search(r'view=to_approve" aria-current="page">判断待ち <span class="count" id="waiting-count">1</span>',
                     todo), todo
    assert "A渡辺 恵" in todo and f"{P}/{app_id}" in todo
    assert 'view=mine" aria-current' not in todo
    detail = admin.text(f"{P}/{app_id}")
    assert "承認する" in detail and "却下する" in detail and "取り下げる" not in detail

    r = admin.post(f"{P}/{app_id}/reject", {"comment": "  "})
    assert r.status_code == 422 and "却下の理由を書いてください" in r.get_data(as_text=True)
    assert mine(world)[0]["status"] == "pending"

    r = admin.post(f"{P}/{app_id}/reject", {"comment": "会葬礼状を添付してください"})
    assert r.status_code == 302
    got = mine(world)[0]
    assert got["status"] == "rejected" and got["history"][-1]["comment"] == "会葬礼状を添付してください"
    seen = Browser(app, "union-a", "a1").text(f"{P}/{app_id}")
    assert "却下" in seen and "会葬礼状を添付してください" in seen and "A執行 委員長" in seen
    assert "取り下げる" not in seen  # decided: nothing left to withdraw
    assert admin.text(f"{P}?view=to_approve").count(f"{P}/{app_id}") == 0
    # Deciding twice is a conflict, shown on the page.
    r = admin.post(f"{P}/{app_id}/approve", {"comment": ""})
    assert r.status_code == 409 and mine(world)[0]["status"] == "rejected"


def test_two_step_form_goes_through_the_editor_then_the_admin(world, app):
    type_id = make_type(world, approver_role="union_editor", second_approver_role="union_admin")
    app_id = filed_id(file_via_page(Browser(app, "union-a", "a1"), type_id))
    editor, admin = Browser(app, "union-a", "aeditor"), Browser(app, "union-a", "aadmin")
    assert f"{P}/{app_id}" in editor.text(f"{P}?view=to_approve")
    assert editor.post(f"{P}/{app_id}/approve", {"comment": "書類確認済"}).status_code == 302
    assert mine(world)[0]["status"] == "first_approved"
    # The editor's part is done: the second step is not theirs.
    assert "承認する" not in editor.text(f"{P}/{app_id}")
    assert editor.post(f"{P}/{app_id}/approve", {"comment": ""}).status_code == 403
    assert "一次承認済み" in admin.text(f"{P}?view=to_approve")
    assert admin.post(f"{P}/{app_id}/approve", {"comment": "支給します"}).status_code == 302
    history = [(s["from"], s["to"], s["actor"]["login_id"]) for s in mine(world)[0]["history"]]
    assert history == [(None, "pending", "a1"), ("pending", "first_approved", "aeditor"),
                       ("first_approved", "approved", "aadmin")]
    page = Browser(app, "union-a", "a1").text(f"{P}/{app_id}")
    assert "書類確認済" in page and "支給します" in page and "承認済み" in page


def test_applicant_withdraws_while_open_and_the_status_filter_narrows_the_list(world, app):
    type_id = make_type(world)
    a1 = Browser(app, "union-a", "a1")
    first = filed_id(file_via_page(a1, type_id))
    second = filed_id(file_via_page(a1, type_id, {**GOOD, "v_note": "二件目"}))
    assert a1.post(f"{P}/{first}/withdraw", {"comment": "重複のため"}).status_code == 302
    assert {a["id"]: a["status"] for a in mine(world)} == {first: "withdrawn", second: "pending"}
    assert a1.post(f"{P}/{first}/withdraw", {"comment": ""}).status_code == 409
    withdrawn = a1.text(f"{P}?status=withdrawn")
    assert f"{P}/{first}" in withdrawn and f"{P}/{second}" not in withdrawn
    admin = Browser(app, "union-a", "aadmin")
    everything = admin.text(f"{P}?view=approvable")
    assert f"{P}/{first}" in everything and f"{P}/{second}" in everything
    open_only = admin.text(f"{P}?view=approvable&status=pending")
    assert f"{P}/{first}" not in open_only and f"{P}/{second}" in open_only
    # A garbled filter is named, never a 500.
    assert admin.get(f"{P}?status=nonsense").status_code == 422
    assert admin.get(f"{P}?view=everyone").status_code == 422


# --- form types and the export -------------------------------------------------------------------------------------

def type_form(**over: str) -> dict[str, str]:
    form = {"name": "通勤費申請", "description": "", "f0_label": "区間", "f0_kind": "text", "f0_required": "on",
            "f1_label": "金額", "f1_kind": "number", "f2_label": "種別", "f2_kind": "choice",
            "f2_choices": "定期\n回数券、その他", "approver_role": "union_editor", "second_approver_role": ""}
    return {**form, **over}


def types(world: World) -> list[dict]:
    return world.as_("union-a", "aadmin").get(f"{A}/application-types").get_json()["items"]


def test_admin_defines_a_form_on_the_page_and_members_can_file_it(world, app):
    admin = Browser(app, "union-a", "aadmin")
    page = admin.text(f"{P}/types")
    assert "申請書を追加" in page and "組合編集者" in page
    r = admin.post(f"{P}/types", type_form())
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    [kind] = types(world)
    assert kind["name"] == "通勤費申請" and kind["approver_role"] == "union_editor"
    assert kind["second_approver_role"] is None
    assert [(f["label"], f["kind"], f["required"]) for f in kind["fields"]] == [
        ("区間", "text", True), ("金額", "number", False), ("種別", "choice", False)]
    assert kind["fields"][2]["choices"] == ["定期", "回数券", "その他"]
    listed = admin.text(f"{P}/types")
    assert "通勤費申請" in listed and "選択" in listed and "必須" in listed
    form = Browser(app, "union-a", "a1").text(f"{P}/new?type_id={kind['id']}")
    assert "区間" in form and '<option value="回数券">' in form


@pytest.mark.parametrize(("over", "message"), [
    ({"f2_choices": ""}, "選択肢を"),
    ({"f0_kind": "text", "f0_choices": "a,b"}, "選択肢を"),
    ({"f0_label": "", "f1_label": "", "f2_label": "", "f2_choices": ""}, "項目を1つ以上"),
    ({"name": ""}, "申請書の名前"),
    ({"approver_role": "fed_admin"}, "承認する人を選んでください"),
    ({"second_approver_role": "member"}, "二次承認"),
    ({"f1_kind": "colour"}, "項目の種類"),
])
def test_a_bad_form_definition_is_refused_by_its_field_and_stores_nothing(world, app, over, message):
    admin = Browser(app, "union-a", "aadmin")
    r = admin.post(f"{P}/types", type_form(**over))
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert message in page and "保存していません" in page
    assert types(world) == []


def test_admin_downloads_the_csv_from_the_forms_page(world, app):
    type_id = make_type(world)
    filed_id(file_via_page(Browser(app, "union-a", "a1"), type_id))
    admin = Browser(app, "union-a", "aadmin")
    page = admin.text(f"{P}/types")
    assert f"{P}/export.csv?type_id={type_id}" in page
    r = admin.get(f"{P}/export.csv?type_id={type_id}")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    text = r.data.decode("utf-8")
    assert text.startswith("\ufeff") and "事由" in text and "弔事" in text and "a1" in text
    assert admin.get(f"{P}/export.csv?type_id=x").status_code == 422
    assert admin.get(f"{P}/export.csv?status=x").status_code == 422


# --- who may open what ---------------------------------------------------------------------------------------------

OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


@pytest.fixture
def filed(world: World, app) -> dict[str, int]:  # type: ignore[no-untyped-def]
    type_id = make_type(world)
    app_id = filed_id(file_via_page(Browser(app, "union-a", "a1"), type_id, attachment=PDF))
    attachment = mine(world)[0]["attachments"][0]["id"]
    return {"type": type_id, "app": app_id, "file": attachment}


def pages_of(ids: dict[str, int]) -> list[str]:
    return [P, f"{P}/new", f"{P}/new?type_id={ids['type']}", f"{P}/{ids['app']}",
            f"{P}/{ids['app']}/attachments/{ids['file']}", f"{P}/types", f"{P}/export.csv", f"{P}?view=to_approve"]


@pytest.mark.parametrize("who", OUTSIDERS, ids=lambda w: f"{w[0]}/{w[1]}")
def test_the_federation_the_auditor_and_neighbours_get_404_everywhere(world, app, filed, who):
    browser = Browser(app, *who)
    for path in pages_of(filed):
        r = browser.get(path)
        assert r.status_code == 404, (who, path, r.status_code)
        assert r.data != PDF and "慶弔費申請" not in r.get_data(as_text=True)
    for op in ("approve", "reject", "withdraw"):
        assert browser.post(f"{P}/{filed['app']}/{op}", {"comment": "x"}).status_code == 404, (who, op)
    assert browser.post(f"{P}/types", type_form()).status_code == 404
    assert browser.post(f"{P}/new", {"type_id": filed["type"], **GOOD}).status_code == 404
    assert mine(world)[0]["status"] == "pending" and types(world)[0]["id"] == filed["type"]


def test_members_of_the_union_get_what_their_role_allows(world, app, filed):
    expected = {
        # the applicant: their own application and file; no forms page, no export, no approver views
        "a1": {f"{P}/{filed['app']}": 200, f"{P}/{filed['app']}/attachments/{filed['file']}": 200,
               f"{P}/types": 403, f"{P}/export.csv": 403, f"{P}?view=to_approve": 403, P: 200, f"{P}/new": 200},
        # a colleague: the application is not theirs to know about (404, as the API)
        "a2": {f"{P}/{filed['app']}": 404, f"{P}/{filed['app']}/attachments/{filed['file']}": 404,
               f"{P}/types": 403, P: 200},
        # the editor approves (the form may name them) but neither defines forms nor exports
        "aeditor": {f"{P}?view=to_approve": 200, f"{P}/types": 403, f"{P}/export.csv": 403,
                    f"{P}/{filed['app']}": 404},
        "aadmin": {f"{P}/{filed['app']}": 200, f"{P}/{filed['app']}/attachments/{filed['file']}": 200,
                   f"{P}/types": 200, f"{P}/export.csv": 200, f"{P}?view=to_approve": 200},
    }
    for who, paths in expected.items():
        browser = Browser(app, "union-a", who)
        for path, status in paths.items():
            assert browser.get(path).status_code == status, (who, path)
    a1, a2 = Browser(app, "union-a", "a1"), Browser(app, "union-a", "a2")
    # A plain member approves nothing, not even their own; a colleague cannot withdraw someone else's.
    assert a1.post(f"{P}/{filed['app']}/approve", {"comment": ""}).status_code == 403
    assert a2.post(f"{P}/{filed['app']}/withdraw", {"comment": ""}).status_code == 404
    assert a1.post(f"{P}/types", type_form()).status_code == 403
    assert mine(world)[0]["status"] == "pending" and len(types(world)) == 1


def test_forms_without_the_pages_token_are_refused(world, app, filed):
    a1, admin = Browser(app, "union-a", "a1"), Browser(app, "union-a", "aadmin")
    assert file_via_page(a1, filed["type"], token=False).status_code == 403
    assert admin.post(f"{P}/{filed['app']}/approve", {"comment": ""}, token=False).status_code == 403
    assert a1.post(f"{P}/{filed['app']}/withdraw", {"comment": ""}, token=False).status_code == 403
    assert admin.post(f"{P}/types", type_form(), token=False).status_code == 403
    assert admin.post(f"{P}/{filed['app']}/approve", {"comment": "", "csrf_token": "forged"},
                      token=False).status_code == 403
    assert [a["status"] for a in mine(world)] == ["pending"] and len(types(world)) == 1


def test_the_menu_shows_applications_to_union_members_only(world, app):
    assert f'href="{P}"' in Browser(app, "union-a", "a1").text("/settings")
    assert f'href="{P}"' in Browser(app, "union-a", "aadmin").text("/settings")
    for who in (("fed", "fadmin"), ("platform", "aud")):
        assert "/applications" not in Browser(app, *who).text("/settings")


# --- Japanese first ------------------------------------------------------------------------------------------------

def test_application_pages_show_no_untranslated_english_in_japanese_mode(world, app, filed):
    def as_(who: str) -> Browser:
        b = Browser(app, "union-a", who)
        b.client.set_cookie("musubi_lang", "ja")
        return b

    a1, admin = as_("a1"), as_("aadmin")
    pages: dict[str, str] = {}

    def visit(browser: Browser, path: str, status: int = 200, data: dict | None = None) -> None:
        r = browser.get(path) if data is None else browser.post(path, data)
        assert r.status_code == status, (path, r.status_code)
        pages[path + (" (post)" if data is not None else "")] = visible_text(r.get_data(as_text=True))

    app_id = filed["app"]
    for path in (P, f"{P}/new", f"{P}/new?type_id={filed['type']}", f"{P}/{app_id}", f"{P}/{app_id}?done=filed",
                 f"{P}?status=pending"):
        visit(a1, path)
    visit(a1, f"{P}/new", 422, {"type_id": filed["type"], "v_event": "x", "v_event_date": "x", "v_amount": "x"})
    visit(a1, f"{P}/types", 403)
    for path in (f"{P}?view=to_approve", f"{P}?view=approvable", f"{P}/{app_id}", f"{P}/types",
                 f"{P}/types?done=1"):
        visit(admin, path)
    visit(admin, f"{P}/types", 422, type_form(f2_choices="", name=""))
    r = admin.post(f"{P}/{app_id}/reject", {"comment": ""})
    assert r.status_code == 422
    pages["reject without reason"] = visible_text(r.get_data(as_text=True))
    assert admin.post(f"{P}/{app_id}/approve", {"comment": "了解"}).status_code == 302
    visit(a1, f"{P}/{app_id}?done=approve")
    visit(a1, f"{P}?status=nonsense", 422)

    # Slugs, login ids and the extension of the member's own file name are data, not the page's words.
    allowed = FORMATS | {"musubi", "union", "a1", "aadmin", "pdf"}
    leftovers = {name: sorted(latin_words(text) - allowed) for name, text in pages.items()}
    assert {k: v for k, v in leftovers.items() if v} == {}, json.dumps(leftovers, ensure_ascii=False)
