"""The documents pages: officers upload, add versions and delete (after a confirmation page); members list and
download only what is addressed to their unit; every download is checked again; the federation, the auditor and
other unions get 404, a member 403 on officer pages; bad uploads are shown on the page and store nothing."""
from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import World
from flask import Flask
from web_support import Browser, latin_words, visible_text

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
LIST = "/t/union-a/documents"
TITLE = "第80回定期大会 議案書"


def upload(browser: Browser, *, data: bytes = PDF, name: str = "議案書.pdf", token: bool = True,
           **fields: object):  # type: ignore[no-untyped-def]
    form: dict[str, object] = {"title": TITLE, "audience": "all", **fields, "file": (io.BytesIO(data), name)}
    return browser.post(LIST, form, token=token)


def new_doc(browser: Browser, **fields: object) -> int:
    r = upload(browser, **fields)
    assert r.status_code == 302, r.get_data(as_text=True)[:3000]
    return int(r.headers["Location"].split("/documents/", 1)[1].split("?", 1)[0])


def upload_large(browser: Browser, data: bytes):  # type: ignore[no-untyped-def]
    """An upload built by hand: the test client would spool a body this large to a temporary file it never closes,
    which the warnings-are-errors setting turns into a failure."""
    boundary = "musubi-page-boundary"
    parts = b""
    for name, value in (("csrf_token", browser.token or ""), ("title", TITLE), ("audience", "all")):
        parts += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").encode()
    parts += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
              "Content-Type: application/pdf\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return browser.client.post(LIST, data=parts, content_type=f"multipart/form-data; boundary={boundary}")


def stored(app: Flask) -> tuple[int, int]:
    """(document rows, files in the store) across every tenant: what "nothing stored" is checked against."""
    from sqlalchemy import func, select

    from federation.extensions import db
    from federation.space.documents.models import Document, DocumentVersion

    with app.app_context():
        rows = db.session.execute(select(func.count()).select_from(Document)).scalar_one()
        rows += db.session.execute(select(func.count()).select_from(DocumentVersion)).scalar_one()
        root = Path(app.config["MUSUBI"].instance) / "documents"
    files = [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
    return rows, len(files)


def test_officer_uploads_and_member_lists_filters_and_downloads(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    doc_id = new_doc(editor, folder="大会", tags="大会, 議案")
    page = editor.text(f"{LIST}/{doc_id}?done=uploaded")
    assert TITLE in page and "文書をアップロードしました" in page and "第1版" in page and "版の履歴" in page
    member = Browser(app, "union-a", "a1")
    listing = member.text(LIST)
    assert TITLE in listing and "大会" in listing and "議案" in listing and "第1版" in listing
    assert f"{len(PDF)} B" in listing
    assert f'href="{LIST}/{doc_id}/download"' in listing
    # Members get the download link but no officer detail link and no upload form.
    assert f'href="{LIST}/{doc_id}"' not in listing and 'name="file"' not in listing
    assert TITLE in member.text(f"{LIST}?tag=議案") and TITLE in member.text(f"{LIST}?folder=大会")
    assert TITLE not in member.text(f"{LIST}?folder=総務")
    r = member.get(f"{LIST}/{doc_id}/download")
    assert r.status_code == 200 and r.data == PDF
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{quote('議案書.pdf')}" in r.headers["Content-Disposition"]


def test_the_page_list_matches_the_api_list_for_each_person(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    new_doc(editor, title="全員向け")
    new_doc(editor, title="工場支部向け", audience="units", audience_unit=[str(world.ids["union-a:branch2"])])
    for login in ("a1", "a2", "aeditor"):
        api = [d["title"] for d in world.as_("union-a", login).get("/api/v1/tenants/union-a/documents")
               .get_json()["items"]]
        page = Browser(app, "union-a", login).text(LIST)
        for title in ("全員向け", "工場支部向け"):
            assert (title in page) == (title in api), (login, title)
    assert "工場支部向け" not in Browser(app, "union-a", "a1").text(LIST)


def test_member_outside_the_audience_gets_404_on_detail_and_download(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    doc_id = new_doc(editor, title="工場支部だけ", audience="units",
                     audience_unit=[str(world.ids["union-a:branch2"])])
    outsider = Browser(app, "union-a", "a1")  # in the head-office branch
    assert outsider.get(f"{LIST}/{doc_id}").status_code == 404
    assert outsider.get(f"{LIST}/{doc_id}/download").status_code == 404
    assert outsider.get(f"{LIST}/{doc_id}/download?version=1").status_code == 404
    inside = Browser(app, "union-a", "a2")
    assert inside.get(f"{LIST}/{doc_id}/download").data == PDF
    page = inside.text(f"{LIST}/{doc_id}")
    assert "工場支部だけ" in page and "a工場支部" in page
    # The member's view of the detail has no history, upload or delete.
    assert "版の履歴" not in page and 'name="file"' not in page and "/delete" not in page


def test_access_is_checked_again_on_every_download(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    doc_id = new_doc(editor, audience="units", audience_unit=[str(world.ids["union-a:branch2"])])
    member = Browser(app, "union-a", "a2")
    assert member.get(f"{LIST}/{doc_id}/download").status_code == 200
    from federation.extensions import db
    from tenants.models import Tenant, User

    with app.app_context():
        tenant = db.session.query(Tenant).filter_by(slug="union-a").one()
        user = db.session.query(User).filter_by(tenant_id=tenant.id, login_id="a2").one()
        user.unit_id = world.ids["union-a:branch"]
        db.session.commit()
    # Moved to another branch: the very next download is refused, with nothing cached from the last one.
    assert member.get(f"{LIST}/{doc_id}/download").status_code == 404


def test_new_version_keeps_history_and_each_version_downloads(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    doc_id = new_doc(editor)
    r = editor.post(f"{LIST}/{doc_id}/versions", {"file": (io.BytesIO(PNG), "差し替え.png")})
    assert r.status_code == 302 and "done=version" in r.headers["Location"]
    page = editor.text(f"{LIST}/{doc_id}")
    assert "第2版" in page and "差し替え.png" in page and "議案書.pdf" in page
    assert f"{LIST}/{doc_id}/download?version=1" in page and f"{LIST}/{doc_id}/download?version=2" in page
    member = Browser(app, "union-a", "a1")
    assert member.get(f"{LIST}/{doc_id}/download").data == PNG
    assert member.get(f"{LIST}/{doc_id}/download?version=1").data == PDF
    assert member.get(f"{LIST}/{doc_id}/download?version=7").status_code == 404
    assert member.get(f"{LIST}/{doc_id}/download?version=abc").status_code == 422
    assert "第2版" in member.text(LIST)


def test_delete_asks_first_then_removes_every_version(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    doc_id = new_doc(editor)
    editor.post(f"{LIST}/{doc_id}/versions", {"file": (io.BytesIO(PNG), "2.png")})
    confirm = editor.text(f"{LIST}/{doc_id}/delete")
    assert "削除しますか" in confirm and "全2版" in confirm
    assert stored(app) == (3, 2), "the confirmation page changes nothing"
    r = editor.post(f"{LIST}/{doc_id}/delete")
    assert r.status_code == 302 and "done=deleted" in r.headers["Location"]
    assert TITLE not in editor.text(LIST)
    assert stored(app) == (0, 0)
    assert Browser(app, "union-a", "a1").get(f"{LIST}/{doc_id}/download").status_code == 404


@pytest.mark.parametrize("case", ["not_a_pdf", "missing_title", "too_big", "no_file", "nobody_chosen"])
def test_bad_upload_is_shown_on_the_page_with_422_and_stores_nothing(world: World, app: Flask,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     case: str) -> None:
    editor = Browser(app, "union-a", "aeditor")
    fields: dict[str, object] = {}
    expect = "ファイル"
    if case == "not_a_pdf":
        fields["data"] = b"<html><script>alert(1)</script>"
    elif case == "missing_title":
        fields["title"] = "  "
        expect = "件名"
    elif case == "too_big":
        monkeypatch.setenv("MUSUBI_DOCUMENT_MAX_MB", "1")
    elif case == "nobody_chosen":
        fields["audience"] = "units"
        expect = "届ける相手"
    if case == "no_file":
        r = editor.post(LIST, {"title": TITLE, "audience": "all", "file": (io.BytesIO(b""), "")})
    elif case == "too_big":
        r = upload_large(editor, PDF + b"\x00" * (1024 * 1024))
    else:
        r = upload(editor, **fields)  # type: ignore[arg-type]
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert 'role="alert"' in page and expect in visible_text(page)
    if case != "missing_title":
        assert f'value="{TITLE}"' in page, "what was typed is kept"
    assert stored(app) == (0, 0)


def test_new_version_that_is_not_a_pdf_is_refused_on_the_page(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    doc_id = new_doc(editor)
    r = editor.post(f"{LIST}/{doc_id}/versions", {"file": (io.BytesIO(b"MZ\x90\x00"), "virus.pdf")})
    assert r.status_code == 422 and "ファイル" in visible_text(r.get_data(as_text=True))
    assert stored(app) == (2, 1)


OUTSIDERS = [("fed", "staff"), ("fed", "fadmin"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


def test_firewall_matrix_for_the_document_pages(world: World, app: Flask) -> None:
    doc_id = new_doc(Browser(app, "union-a", "aeditor"))
    gets = [LIST, f"{LIST}/{doc_id}", f"{LIST}/{doc_id}/download", f"{LIST}/{doc_id}/download?version=1",
            f"{LIST}/{doc_id}/delete"]
    for tenant, login in OUTSIDERS:
        b = Browser(app, tenant, login)
        for path in gets:
            assert b.get(path).status_code == 404, (tenant, login, path)
        assert upload(b).status_code == 404, (tenant, login)
        assert b.post(f"{LIST}/{doc_id}/versions", {"file": (io.BytesIO(PNG), "x.png")}).status_code == 404
        assert b.post(f"{LIST}/{doc_id}/delete").status_code == 404, (tenant, login)
    member = Browser(app, "union-a", "a1")
    assert member.get(LIST).status_code == 200
    assert member.get(f"{LIST}/{doc_id}").status_code == 200
    assert member.get(f"{LIST}/{doc_id}/delete").status_code == 403
    assert upload(member).status_code == 403
    assert member.post(f"{LIST}/{doc_id}/versions", {"file": (io.BytesIO(PNG), "x.png")}).status_code == 403
    assert member.post(f"{LIST}/{doc_id}/delete").status_code == 403
    # The neighbour's own list does not show union-a's document either.
    assert TITLE not in Browser(app, "union-b", "badmin").text("/t/union-b/documents")
    assert stored(app) == (2, 1)


def test_an_id_of_another_union_is_404_even_for_its_officers(world: World, app: Flask) -> None:
    doc_id = new_doc(Browser(app, "union-a", "aeditor"))
    b = Browser(app, "union-b", "badmin")
    for path in (f"/t/union-b/documents/{doc_id}", f"/t/union-b/documents/{doc_id}/download",
                 f"/t/union-b/documents/{doc_id}/delete"):
        assert b.get(path).status_code == 404, path
    assert b.post(f"/t/union-b/documents/{doc_id}/delete").status_code == 404
    assert stored(app)[0] == 2


def test_forms_without_the_pages_token_are_refused(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    assert upload(editor, token=False).status_code == 403
    assert stored(app) == (0, 0)
    doc_id = new_doc(editor)
    r = editor.post(f"{LIST}/{doc_id}/versions", {"file": (io.BytesIO(PNG), "x.png")}, token=False)
    assert r.status_code == 403
    assert editor.post(f"{LIST}/{doc_id}/delete", token=False).status_code == 403
    assert editor.post(f"{LIST}/{doc_id}/delete", {"csrf_token": "forged"}, token=False).status_code == 403
    assert stored(app) == (2, 1)


def test_menu_shows_documents_to_union_people_only(world: World, app: Flask) -> None:
    assert f'href="{LIST}"' in Browser(app, "union-a", "a1").text("/settings")
    assert f'href="{LIST}"' in Browser(app, "union-a", "aadmin").text("/settings")
    for tenant, login in (("fed", "staff"), ("fed", "fadmin"), ("platform", "aud")):
        assert "/documents" not in Browser(app, tenant, login).text("/settings")


# Proper nouns and units a Japanese page shows as they are (file formats and sizes are written so in Japanese too),
# and the extensions of the uploaded file names, which are the uploader's data.
ALLOWED = {"musubi", "PDF", "PNG", "JPEG", "WebP", "KB", "MB", "pdf", "png"}


def test_document_pages_show_no_untranslated_english_in_japanese_mode(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    editor.client.set_cookie("musubi_lang", "ja")
    doc_id = new_doc(editor, folder="大会", tags="議案", audience="units",
                     audience_unit=[str(world.ids["union-a:branch"])])
    member = Browser(app, "union-a", "a1")
    member.client.set_cookie("musubi_lang", "ja")
    pages = {
        "list": editor.get(LIST), "filtered": editor.get(f"{LIST}?tag=議案"), "empty": editor.get(f"{LIST}?tag=無い"),
        "detail": editor.get(f"{LIST}/{doc_id}?done=uploaded"), "delete": editor.get(f"{LIST}/{doc_id}/delete"),
        "deleted": editor.get(f"{LIST}?done=deleted"), "bad": upload(editor, data=b"plain text"),
        "bad_version": editor.post(f"{LIST}/{doc_id}/versions", {"file": (io.BytesIO(b"x"), "x.pdf")}),
        "member_list": member.get(LIST), "member_detail": member.get(f"{LIST}/{doc_id}"),
        "member_denied": member.get(f"{LIST}/{doc_id}/delete"),
    }
    leftovers = {}
    for name, r in pages.items():
        assert r.status_code in (200, 403, 422), (name, r.status_code)
        words = latin_words(visible_text(r.get_data(as_text=True))) - ALLOWED
        if words:
            leftovers[name] = sorted(words)
    assert leftovers == {}, json.dumps(leftovers, ensure_ascii=False)
