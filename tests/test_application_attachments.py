"""Files attached to applications (会葬礼状, 診断書): only the applicant uploads, only while pending, checked by content
and size; only the applicant and those who may decide the application download; everyone else gets 404 (F8)."""
from __future__ import annotations

import io
from urllib.parse import quote

import pytest
from conftest import World
from test_applications import A, file, make_type

PDF = b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 24


def attach(api, app_id: int, data: bytes = PDF, name: str = "会葬礼状.pdf"):  # type: ignore[no-untyped-def]
    form = {"file": (io.BytesIO(data), name, "application/pdf")}
    return api.post(f"{A}/applications/{app_id}/attachments", data=form, content_type="multipart/form-data")


def filed(world: World) -> dict:
    return file(world, make_type(world)["id"])


def test_applicant_uploads_and_both_applicant_and_approver_download(world: World) -> None:
    app = filed(world)
    member = world.as_("union-a", "a1")
    r = attach(member, app["id"])
    assert r.status_code == 201, r.get_json()
    out = r.get_json()
    assert out["filename"] == "会葬礼状.pdf" and out["content_type"] == "application/pdf" and out["size"] == len(PDF)
    photo = attach(member, app["id"], JPEG, "診断書.jpg").get_json()
    # The type comes from the bytes, not from the type the client claimed (application/pdf).
    assert photo["content_type"] == "image/jpeg"

    listed = member.get(f"{A}/applications/{app['id']}").get_json()["attachments"]
    assert listed == [{"id": out["id"], "filename": "会葬礼状.pdf", "content_type": "application/pdf",
                       "size": len(PDF)},
                      {"id": photo["id"], "filename": "診断書.jpg", "content_type": "image/jpeg", "size": len(JPEG)}]
    todo = world.as_("union-a", "aadmin").get(f"{A}/applications?view=to_approve").get_json()["items"]
    assert [a["id"] for a in todo[0]["attachments"]] == [out["id"], photo["id"]]

    for who in ("a1", "aadmin"):
        d = world.as_("union-a", who).get(f"{A}/applications/{app['id']}/attachments/{out['id']}")
        assert d.status_code == 200, who
        assert d.data == PDF
        assert d.headers["Content-Type"] == "application/pdf"
        assert d.headers["X-Content-Type-Options"] == "nosniff"
        assert d.headers["Content-Disposition"].startswith("attachment;")
        assert f"filename*=UTF-8''{quote('会葬礼状.pdf')}" in d.headers["Content-Disposition"]
    img = world.as_("union-a", "aadmin").get(f"{A}/applications/{app['id']}/attachments/{photo['id']}")
    assert img.data == JPEG and img.headers["Content-Type"] == "image/jpeg"
    for data, kind, name in ((PNG, "image/png", "photo.png"), (WEBP, "image/webp", "photo.webp")):
        assert attach(member, app["id"], data, name).get_json()["content_type"] == kind
    # Deciding is the approver's part; the evidence is the applicant's alone to send.
    assert attach(world.as_("union-a", "aadmin"), app["id"]).status_code == 403
    assert len(member.get(f"{A}/applications/{app['id']}").get_json()["attachments"]) == 4


def test_other_member_of_the_same_union_gets_404(world: World) -> None:
    app = filed(world)
    aid = attach(world.as_("union-a", "a1"), app["id"]).get_json()["id"]
    other = world.as_("union-a", "a2")
    r = other.get(f"{A}/applications/{app['id']}/attachments/{aid}")
    assert r.status_code == 404 and r.data != PDF
    assert attach(other, app["id"]).status_code == 404
    # Their own application does not open someone else's file by its id either.
    own = file(world, app["type_id"], "a2")
    assert other.get(f"{A}/applications/{own['id']}/attachments/{aid}").status_code == 404


OUTSIDERS = [("fed", "fadmin"), ("fed", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-b", "badmin"),
             ("union-b", "b1")]


@pytest.fixture(scope="module")
def attached(_module_world: World) -> tuple[int, int]:
    kind = make_type(_module_world)
    app = file(_module_world, kind["id"])
    r = attach(_module_world.as_("union-a", "a1"), app["id"])
    assert r.status_code == 201, r.get_json()
    return app["id"], r.get_json()["id"]


@pytest.mark.parametrize("tenant,login_id", OUTSIDERS)
def test_federation_auditor_and_neighbour_get_404(shared_world: World, attached: tuple[int, int], tenant: str,
                                                  login_id: str) -> None:
    app_id, aid = attached
    who = shared_world.as_(tenant, login_id)
    r = who.get(f"{A}/applications/{app_id}/attachments/{aid}")
    assert r.status_code == 404, (tenant, login_id, r.status_code)
    assert r.get_json()["error"]["message"] == "not found"
    assert attach(who, app_id).status_code == 404
    if tenant == "union-b":
        assert who.get(f"/api/v1/tenants/union-b/applications/{app_id}/attachments/{aid}").status_code == 404


def test_unknown_or_huge_ids_are_404(shared_world: World, attached: tuple[int, int]) -> None:
    app_id, aid = attached
    member = shared_world.as_("union-a", "a1")
    for path in (f"{app_id}/attachments/{aid + 1000}", f"{app_id}/attachments/{2**40}", f"{2**40}/attachments/1"):
        assert member.get(f"{A}/applications/{path}").status_code == 404, path


def test_anonymous_is_401(shared_world: World, attached: tuple[int, int]) -> None:
    app_id, aid = attached
    assert shared_world.anonymous().get(f"{A}/applications/{app_id}/attachments/{aid}").status_code == 401


def test_not_a_pdf_named_pdf_is_422_and_missing_file_too(world: World) -> None:
    app = filed(world)
    member = world.as_("union-a", "a1")
    r = attach(member, app["id"], b"<html><script>alert(1)</script>", "診断書.pdf")
    assert r.status_code == 422 and "file" in r.get_json()["error"]["fields"]
    r = member.post(f"{A}/applications/{app['id']}/attachments", data={}, content_type="multipart/form-data")
    assert r.status_code == 422 and "file" in r.get_json()["error"]["fields"]
    assert member.get(f"{A}/applications/{app['id']}").get_json()["attachments"] == []


def test_too_large_is_413(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from federation.space.documents import storage

    monkeypatch.setattr(storage, "max_bytes", lambda: 1024)
    app = filed(world)
    member = world.as_("union-a", "a1")
    r = attach(member, app["id"], PDF + b"0" * 1024)
    assert r.status_code == 413 and "file" in r.get_json()["error"]["fields"]
    assert attach(member, app["id"], PDF).status_code == 201


def test_upload_after_approval_is_409(world: World) -> None:
    app = filed(world)
    member = world.as_("union-a", "a1")
    aid = attach(member, app["id"]).get_json()["id"]
    assert world.as_("union-a", "aadmin").post(f"{A}/applications/{app['id']}/approve", json={}).status_code == 200
    r = attach(member, app["id"])
    assert r.status_code == 409 and "status" in r.get_json()["error"]["fields"]
    # What was sent before the decision stays readable for both sides.
    assert member.get(f"{A}/applications/{app['id']}/attachments/{aid}").status_code == 200
    assert world.as_("union-a", "aadmin").get(f"{A}/applications/{app['id']}/attachments/{aid}").status_code == 200
    withdrawn = file(world, app["type_id"])
    assert member.post(f"{A}/applications/{withdrawn['id']}/withdraw", json={}).status_code == 200
    assert attach(member, withdrawn["id"]).status_code == 409


def test_sixth_attachment_is_409(world: World) -> None:
    app = filed(world)
    member = world.as_("union-a", "a1")
    for i in range(5):
        assert attach(member, app["id"], name=f"{i}.pdf").status_code == 201
    r = attach(member, app["id"], name="5.pdf")
    assert r.status_code == 409 and "file" in r.get_json()["error"]["fields"]
    assert len(member.get(f"{A}/applications/{app['id']}").get_json()["attachments"]) == 5
