"""Documents through the API: uploads checked by content and size, versions, the audience, downloads checked by the
firewall on every request, and the isolation matrix (F1, F5, F8)."""
from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest
from conftest import World

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 24
BASE = "/api/v1/tenants/union-a/documents"


def upload(api, data: bytes = PDF, name: str = "議案書.pdf", path: str = BASE, **fields):  # type: ignore[no-untyped-def]
    form = {"file": (io.BytesIO(data), name, "application/pdf"), **fields}
    return api.post(path, data=form, content_type="multipart/form-data")


def new_doc(world: World, **fields) -> int:  # type: ignore[no-untyped-def]
    fields.setdefault("title", "第80回定期大会 議案書")
    r = upload(world.as_("union-a", "aeditor"), **fields)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def test_editor_uploads_and_member_downloads_with_safe_headers(world: World) -> None:
    doc_id = new_doc(world, folder="大会", tags="大会, 議案")
    r = world.as_("union-a", "a2").get(f"{BASE}/{doc_id}/download")
    assert r.status_code == 200
    assert r.data == PDF
    assert r.headers["Content-Type"] == "application/pdf"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{quote('議案書.pdf')}" in r.headers["Content-Disposition"]
    listed = world.as_("union-a", "a1").get(BASE, query_string={"tag": "議案"}).get_json()["items"]
    assert [d["id"] for d in listed] == [doc_id]
    assert listed[0]["folder"] == "大会" and listed[0]["tags"] == ["大会", "議案"]
    assert listed[0]["latest"]["content_type"] == "application/pdf"


@pytest.mark.parametrize("data,kind", [(PNG, "image/png"), (JPEG, "image/jpeg"), (WEBP, "image/webp")])
def test_image_type_comes_from_content_not_name(world: World, data: bytes, kind: str) -> None:
    # The client claims application/pdf; the type is read from the bytes (the name must agree: test_upload_names).
    r = upload(world.as_("union-a", "aeditor"), data, name="photo" + {"image/png": ".png", "image/jpeg": ".jpg",
                                                                     "image/webp": ".webp"}[kind], title="写真")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["latest"]["content_type"] == kind


def test_file_named_pdf_that_is_not_a_pdf_is_refused(shared_world: World) -> None:
    r = upload(shared_world.as_("union-a", "aeditor"), b"<html><script>alert(1)</script>", title="偽物")
    assert r.status_code == 422
    assert "file" in r.get_json()["error"]["fields"]


def test_oversize_upload_is_413(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSUBI_DOCUMENT_MAX_MB", "1")
    # The multipart body is built by hand: the test client would spool a body this large to a temporary file it
    # never closes, which the warnings-are-errors setting turns into a failure of an unrelated test.
    boundary = "musubi-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nbig\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode() + PDF + b"0" * (1024 * 1024) + \
        f"\r\n--{boundary}--\r\n".encode()
    editor = world.as_("union-a", "aeditor")
    r = editor.post(BASE, data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert r.status_code == 413
    assert "file" in r.get_json()["error"]["fields"]


def test_new_version_keeps_history_and_old_version_downloads(world: World) -> None:
    doc_id = new_doc(world)
    editor = world.as_("union-a", "aeditor")
    r = upload(editor, PNG, name="v2.png", path=f"{BASE}/{doc_id}/versions")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["latest_version"] == 2
    versions = world.as_("union-a", "a1").get(f"{BASE}/{doc_id}/versions").get_json()["items"]
    assert [(v["version"], v["filename"]) for v in versions] == [(2, "v2.png"), (1, "議案書.pdf")]
    assert world.as_("union-a", "a1").get(f"{BASE}/{doc_id}/download").data == PNG
    assert world.as_("union-a", "a1").get(f"{BASE}/{doc_id}/download?version=1").data == PDF
    assert world.as_("union-a", "a1").get(f"{BASE}/{doc_id}/download?version=9").status_code == 404
    listed = editor.get(BASE).get_json()["items"]
    assert len(listed) == 1 and listed[0]["latest"]["version"] == 2


def test_audience_limits_list_and_download_to_the_unit(world: World) -> None:
    branch2 = world.ids["union-a:branch2"]
    doc_id = new_doc(world, title="工場支部だけ", audience=json.dumps({"units": [branch2]}))
    inside, outside = world.as_("union-a", "a2"), world.as_("union-a", "a1")
    assert [d["id"] for d in inside.get(BASE).get_json()["items"]] == [doc_id]
    assert inside.get(f"{BASE}/{doc_id}/download").status_code == 200
    assert outside.get(BASE).get_json()["items"] == []
    for path in ("", "/download", "/versions"):
        r = outside.get(f"{BASE}/{doc_id}{path}")
        assert r.status_code == 404
        assert "工場" not in r.get_data(as_text=True)
    # Officers see every document whatever its audience.
    assert world.as_("union-a", "aadmin").get(f"{BASE}/{doc_id}/download").status_code == 200


def test_audience_outside_the_union_is_refused_naming_the_entry(world: World) -> None:
    r = upload(world.as_("union-a", "aeditor"), title="x",
               audience=json.dumps({"units": [world.ids["union-b:branch"]]}))
    assert r.status_code == 422
    assert "audience.units[0]" in r.get_json()["error"]["fields"]
    # A number no id can be (ids are 32-bit columns) is no such unit, not an overflow in the database driver.
    r = upload(world.as_("union-a", "aeditor"), title="x",
               audience=json.dumps({"units": [world.ids["union-a:branch"], 2**40]}))
    assert r.status_code == 422, r.get_json()
    assert "audience.units[1]" in r.get_json()["error"]["fields"]


def test_delete_removes_document_and_its_files(world: World) -> None:
    doc_id = new_doc(world)
    from federation.extensions import db
    from federation.space.documents.models import DocumentVersion
    from federation.space.documents.storage import storage

    with world.app.app_context():
        key = db.session.query(DocumentVersion.storage_key).filter_by(document_id=doc_id).scalar()
    assert world.as_("union-a", "a1").delete(f"{BASE}/{doc_id}").status_code == 403
    assert world.as_("union-a", "aeditor").delete(f"{BASE}/{doc_id}").status_code == 204
    assert world.as_("union-a", "a1").get(f"{BASE}/{doc_id}/download").status_code == 404
    with world.app.test_request_context(), pytest.raises(FileNotFoundError):
        storage().get(key)


def test_a_write_that_fails_after_the_file_is_stored_leaves_no_file(world: World,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from werkzeug.datastructures import FileStorage

    from federation.auth.service import subject_of
    from federation.extensions import db
    from federation.space.documents import service
    from federation.space.documents.models import Document
    from federation.space.documents.storage import storage
    from tenants.models import Tenant, User

    folder = world.app.config["MUSUBI"].instance / "documents"
    before = set(folder.rglob("*")) if folder.exists() else set()

    def lost_database() -> None:
        raise RuntimeError("the database went away at commit")

    with world.app.test_request_context():
        tenant = db.session.query(Tenant).filter_by(slug="union-a").one()
        editor = db.session.query(User).filter_by(tenant_id=tenant.id, login_id="aeditor").one()
        subject = subject_of(editor)
        monkeypatch.setattr(db.session, "commit", lost_database)
        with pytest.raises(RuntimeError):
            service.create_document(tenant, editor, subject, {"title": "議案書"},
                                    FileStorage(io.BytesIO(PDF), filename="議案書.pdf"))
        monkeypatch.undo()
        db.session.rollback()
        assert db.session.query(Document).count() == 0
        assert storage().root == folder
    after = set(folder.rglob("*")) if folder.exists() else set()
    assert [p for p in after - before if p.is_file()] == []


def test_download_is_checked_on_every_request(world: World) -> None:
    doc_id = new_doc(world, audience=json.dumps({"units": [world.ids["union-a:branch"]]}))
    member = world.as_("union-a", "a1")
    assert member.get(f"{BASE}/{doc_id}/download").status_code == 200
    moved = world.as_("union-a", "aadmin").patch("/api/v1/tenants/union-a/members/a1",
                                                 json={"unit_id": world.ids["union-a:branch2"]})
    assert moved.status_code == 200, moved.get_json()
    assert member.get(f"{BASE}/{doc_id}/download").status_code == 404
    other = world.as_("union-a", "a2")
    assert other.get(BASE).status_code == 200
    suspended = world.as_("union-a", "aadmin").patch("/api/v1/tenants/union-a/members/a2",
                                                     json={"status": "suspended"})
    assert suspended.status_code == 200, suspended.get_json()
    assert other.get(f"{BASE}/{doc_id}/download").status_code in (401, 403, 404)


# --- isolation matrix -------------------------------------------------------------------------------------------

OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


@pytest.fixture(scope="module")
def doc_in_a(_module_world: World) -> int:
    r = upload(_module_world.as_("union-a", "aeditor"), title="秘密の議案")
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def _endpoints(doc_id: int) -> list[tuple[str, str]]:
    return [("GET", BASE), ("POST", BASE), ("GET", f"{BASE}/{doc_id}"), ("DELETE", f"{BASE}/{doc_id}"),
            ("GET", f"{BASE}/{doc_id}/versions"), ("POST", f"{BASE}/{doc_id}/versions"),
            ("GET", f"{BASE}/{doc_id}/download")]


@pytest.mark.parametrize("tenant,login_id", OUTSIDERS)
def test_outsiders_get_404_on_every_document_endpoint(shared_world: World, doc_in_a: int, tenant: str,
                                                       login_id: str) -> None:
    api = shared_world.as_(tenant, login_id)
    for method, path in _endpoints(doc_in_a):
        if method == "POST":
            r = upload(api, title="侵入", path=path)
        else:
            r = api.client.open(path, method=method, headers=api._headers())
        assert r.status_code == 404, (tenant, login_id, method, path, r.status_code)
        assert "秘密" not in r.get_data(as_text=True)


def test_plain_member_gets_403_on_officer_endpoints(shared_world: World, doc_in_a: int) -> None:
    member = shared_world.as_("union-a", "a1")
    assert upload(member, title="x").status_code == 403
    assert upload(member, title="x", path=f"{BASE}/{doc_in_a}/versions").status_code == 403
    assert member.delete(f"{BASE}/{doc_in_a}").status_code == 403


def test_anonymous_gets_401(shared_world: World, doc_in_a: int) -> None:
    assert shared_world.anonymous().get(f"{BASE}/{doc_in_a}/download").status_code == 401


# --- bad input -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields,field", [
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "ok", "audience": "not json"}, "audience"),
    ({"title": "ok", "audience": json.dumps({"all": False})}, "audience.all"),
    ({"title": "ok", "audience": json.dumps({"units": ["a"]})}, "audience.units"),
    ({"title": "ok", "tags": ",".join(f"t{i}" for i in range(30))}, "tags"),
    ({"title": "ok", "colour": "red"}, "colour"),
])
def test_bad_upload_fields_name_the_field(shared_world: World, fields: dict, field: str) -> None:
    r = upload(shared_world.as_("union-a", "aeditor"), **fields)
    assert r.status_code == 422, r.get_json()
    assert field in r.get_json()["error"]["fields"]


def test_missing_or_empty_file_names_the_field(shared_world: World) -> None:
    editor = shared_world.as_("union-a", "aeditor")
    r = editor.post(BASE, data={"title": "x"}, content_type="multipart/form-data")
    assert r.status_code == 422 and "file" in r.get_json()["error"]["fields"]
    r = upload(editor, b"", title="x")
    assert r.status_code == 422 and "file" in r.get_json()["error"]["fields"]
    r = editor.post(BASE, json={"title": "x"})
    assert 400 <= r.status_code < 500


@pytest.mark.parametrize("query,field", [({"version": "abc"}, "version"), ({"version": "0"}, "version"),
                                         ({"version": str(2**40)}, "version")])
def test_bad_download_query_names_the_field(shared_world: World, doc_in_a: int, query: dict, field: str) -> None:
    r = shared_world.as_("union-a", "a1").get(f"{BASE}/{doc_in_a}/download", query_string=query)
    assert r.status_code == 422
    assert field in r.get_json()["error"]["fields"]


def test_bad_list_query_names_the_field(shared_world: World) -> None:
    r = shared_world.as_("union-a", "a1").get(BASE, query_string={"folder": "x" * 101})
    assert r.status_code == 422 and "folder" in r.get_json()["error"]["fields"]


def test_huge_or_unknown_ids_are_404_not_500(shared_world: World) -> None:
    member = shared_world.as_("union-a", "a1")
    for path in (f"{BASE}/{2**40}", f"{BASE}/{2**40}/download", f"{BASE}/0/versions"):
        assert member.get(path).status_code == 404, path
