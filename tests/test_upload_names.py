"""An upload's name must end in an extension of the type its bytes are (`診断書.pdf.cmd` holding a PDF is refused,
naming the file field), and a download is named with the extension of the detected type, for documents and for
application attachments, through the API and the pages."""
from __future__ import annotations

import io
from urllib.parse import quote

import pytest
from conftest import World
from flask import Flask
from test_application_attachments import attach, filed
from test_documents import BASE, JPEG, PDF, PNG, WEBP, upload
from test_web_applications import GOOD, A, P
from test_web_documents import LIST, TITLE, stored
from web_support import Browser, visible_text

from federation.space.documents.service import download_response

MISMATCHED = [(PDF, "診断書.pdf.cmd"), (PDF, "report.exe"), (PNG, "photo.pdf"), (JPEG, "photo.png"),
              (WEBP, "photo.jpg"), (PDF, "page.html"), (PNG, "x.svg")]
MATCHED = [(PDF, "議案書.PDF"), (PNG, "写真.png"), (JPEG, "a.jpg"), (JPEG, "a.jpeg"), (WEBP, "a.webp"),
           (PDF, "no extension")]


@pytest.mark.parametrize("data,name", MISMATCHED)
def test_api_document_whose_name_is_another_type_is_refused_naming_the_file(shared_world: World, data: bytes,
                                                                            name: str) -> None:
    r = upload(shared_world.as_("union-a", "aeditor"), data, name=name, title="名前と中身")
    assert r.status_code == 422, r.get_json()
    assert "file" in r.get_json()["error"]["fields"]


@pytest.mark.parametrize("data,name", MATCHED)
def test_api_document_whose_name_matches_its_type_is_taken(world: World, data: bytes, name: str) -> None:
    editor = world.as_("union-a", "aeditor")
    r = upload(editor, data, name=name, title="名前と中身")
    assert r.status_code == 201, r.get_json()
    d = editor.get(f"{BASE}/{r.get_json()['id']}/download")
    assert d.status_code == 200 and d.headers["X-Content-Type-Options"] == "nosniff"
    served = name if "." in name else f"{name}.pdf"
    assert f"filename*=UTF-8''{quote(served, safe='')}" in d.headers["Content-Disposition"]


@pytest.mark.parametrize("data,name", MISMATCHED[:3])
def test_api_attachment_whose_name_is_another_type_is_refused_naming_the_file(world: World, data: bytes,
                                                                              name: str) -> None:
    app = filed(world)
    r = attach(world.as_("union-a", "a1"), app["id"], data, name)
    assert r.status_code == 422, r.get_json()
    assert "file" in r.get_json()["error"]["fields"]


def test_document_page_refuses_a_name_of_another_type(world: World, app: Flask) -> None:
    editor = Browser(app, "union-a", "aeditor")
    r = editor.post(LIST, {"title": TITLE, "audience": "all", "file": (io.BytesIO(PDF), "診断書.pdf.cmd")})
    assert r.status_code == 422
    assert 'role="alert"' in r.get_data(as_text=True) and "ファイル" in visible_text(r.get_data(as_text=True))
    assert stored(app) == (0, 0)


def test_application_page_refuses_an_attachment_named_as_another_type(world: World, app: Flask) -> None:
    from test_applications import make_type

    type_id = make_type(world)["id"]
    a1 = Browser(app, "union-a", "a1")
    r = a1.post(f"{P}/new", {"type_id": str(type_id), **GOOD, "file": (io.BytesIO(PDF), "診断書.pdf.cmd")})
    assert r.status_code == 422 and "中身で確認" in r.get_data(as_text=True)
    assert world.as_("union-a", "a1").get(f"{A}/applications").get_json()["items"] == []


@pytest.mark.parametrize("stored_name,kind,served", [
    ("診断書.pdf.cmd", "application/pdf", "診断書.pdf"),
    ("診断書.cmd", "application/pdf", "診断書.pdf"),
    ("写真", "image/jpeg", "写真.jpg"),
    ("写真.JPEG", "image/jpeg", "写真.JPEG"),
    ("page.html", "image/png", "page.png"),
])
def test_a_download_is_named_with_the_extension_of_its_detected_type(app: Flask, stored_name: str, kind: str,
                                                                     served: str) -> None:
    with app.test_request_context():
        r = download_response(b"x", stored_name, kind)
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=\"")
    assert f"filename*=UTF-8''{quote(served, safe='')}" in disposition
    ascii_part = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert ascii_part.rsplit(".", 1)[-1].lower() == served.rsplit(".", 1)[-1].lower()
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.mimetype == kind


def test_a_stored_type_outside_the_allowed_ones_is_served_as_bytes(app: Flask) -> None:
    with app.test_request_context():
        r = download_response(b"<html>", "x.html", "text/html")
    assert r.mimetype == "application/octet-stream" and ".html" not in r.headers["Content-Disposition"]
