"""The world the route sweeps walk: real objects of a federation and two unions, made through the API the way people
make them, and the path templates filled with them (test_real_paths.py, test_route_matrix.py)."""
from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator

from conftest import World

from federation import jobs
from federation.demo import one_page_pdf

CALLERS = {
    "federation staff": ("fed", "staff"),
    "federation admin": ("fed", "fadmin"),
    "council officer": ("fed", "tokyo"),
    "union admin": ("union-a", "aadmin"),
    "union editor": ("union-a", "aeditor"),
    "member": ("union-a", "a1"),
    "neighbour member": ("union-b", "b1"),
    "neighbour admin": ("union-b", "badmin"),
    "auditor": ("platform", "aud"),
    "platform operator": ("platform", "ops"),
}
# Answers that are files or pictures rather than JSON.
NOT_JSON = re.compile(r"(\.csv|\.png|\.svg|/download|/export|/attachments/\{attachment_id\})$")


API_PARAM = re.compile(r"\{(\w+)\}")  # /tenants/{slug}
PAGE_PARAM = re.compile(r"<(?:\w+:)?(\w+)>")  # /t/<slug>/notices/<int:notice_id>


def _filled(template: str, param: re.Pattern[str], values: dict[str, list[str]]) -> Iterator[str]:
    """The template with every combination of real values for its parameters."""
    names = param.findall(template)
    missing = [n for n in names if n not in values]
    assert not missing, f"{template}: no real value for {missing}; add one to _objects or PAGE_VALUES"
    parts = param.split(template)  # text, name, text, name, ..., text
    for combo in itertools.product(*(values[n] for n in names)):
        parts[1::2] = combo
        yield "".join(parts)


def _ok(r, what: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code in (200, 201, 202), (what, r.status_code, r.get_json())
    return r.get_json()


def _browser_subscription() -> dict:
    """What a phone's browser hands over when it subscribes (its push service is never asked here)."""
    import base64
    import secrets

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": f"https://push.example.invalid/send/{secrets.token_urlsafe(16)}",
            "keys": {"p256dh": b64(point), "auth": b64(secrets.token_bytes(16))}}


def _objects(world: World) -> dict[str, list[str]]:
    """One of everything, made through the API the way people make them; path parameter -> values to try."""
    staff, aeditor, aadmin, a1 = (world.as_(*CALLERS[k]) for k in ("federation staff", "union editor",
                                                                    "union admin", "member"))
    A = "/api/v1/tenants/union-a"  # noqa: N806

    def notice(api, slug: str, title: str, **extra) -> int:  # type: ignore[no-untyped-def]
        made = _ok(api.post(f"/api/v1/tenants/{slug}/notices", json={
            "title": title, "body": "本文", "category": "seminar", "audience": {"all": True}, **extra}), title)
        _ok(api.post(f"/api/v1/tenants/{slug}/notices/{made['id']}/publish"), title)
        return made["id"]

    fed_notice = notice(staff, "fed", "連合会セミナー")
    union_notice = notice(aeditor, "union-a", "A労組 職場集会", comments=True)
    b_notice = notice(world.as_("union-b", "beditor"), "union-b", "B労組 職場集会")
    officers_notice = notice(staff, "fed", "書記局から担当役員へ", audience={"officers": True})
    jobs.drain()  # the cascades: what follows acts on the notices as delivered
    _ok(a1.put(f"/api/v1/me/inbox/{fed_notice}/reaction", json={"stamp": "attend"}), "stamp")
    # Two-way: a comment in union A's thread, a question of one of its members, its officers' reply.
    comment = _ok(a1.post(f"{A}/notices/{union_notice}/comments", json={"body": "A労組の職場の声"}), "comment")
    question = _ok(a1.post(f"{A}/notices/{fed_notice}/comments", json={"body": "A労組からの質問", "consent": True}),
                   "question")
    officer_reply = _ok(aadmin.post(f"{A}/notices/{officers_notice}/comments", json={"body": "A労組の役員の返信"}),
                        "officers' reply")
    doc = _ok(aeditor.post(f"{A}/documents", data={
        "title": "議案書", "file": (io.BytesIO(one_page_pdf("議案書")), "議案書.pdf", "application/pdf")},
        content_type="multipart/form-data"), "document")
    survey = _ok(aeditor.post(f"{A}/surveys", json={
        "title": "職場アンケート", "anonymous": True, "opens_at": "2026-01-01T00:00:00+09:00",
        "closes_at": "2099-01-01T00:00:00+09:00",
        "questions": [{"kind": "single", "text": "満足ですか", "options": ["はい", "いいえ"]}]}), "survey")
    _ok(a1.post(f"{A}/surveys/{survey['id']}/answers", json={"answers": {str(survey["questions"][0]["id"]): 0}}),
        "answer")
    kind = _ok(aadmin.post(f"{A}/application-types", json={
        "name": "慶弔費申請", "fields": [{"key": "event", "label": "事由", "kind": "text", "required": True}]}),
        "application type")
    application = _ok(a1.post(f"{A}/applications", json={"type_id": kind["id"], "values": {"event": "結婚"}}),
                      "application")
    attachment = _ok(a1.post(f"{A}/applications/{application['id']}/attachments", data={
        "file": (io.BytesIO(one_page_pdf("会葬礼状")), "会葬礼状.pdf", "application/pdf")},
        content_type="multipart/form-data"), "attachment")
    invitation = _ok(aadmin.post(f"{A}/invitations", json={"valid_days": 30}), "invitation")
    gated = _ok(aadmin.post(f"{A}/invitations", json={"valid_days": 30, "needs_approval": True}), "gated invitation")
    _ok(world.anonymous().post(f"/api/v1/register/{gated['token']}", json={
        "login_id": "E20261201", "display_name": "新入 花子", "name_kana": "しんにゅう はなこ",
        "password": "Shinnyu-2026-pass!"}), "registration")
    pending = _ok(aadmin.get(f"{A}/registrations/pending"), "pending")["items"]
    device = _ok(a1.post("/api/v1/me/push-subscriptions", json=_browser_subscription()), "push subscription")
    ballot = _tallied_ballot(aadmin, a1, A)
    report = _ok(staff.post("/api/v1/federations/fed/reports", json={
        "title": "春闘回答集計", "due_at": "2099-01-01T00:00:00+09:00", "audience": {"all": True},
        "fields": [{"key": "raise_yen", "label": "賃上げ額", "type": "integer", "unit": "円"}]}), "report")
    _ok(aadmin.put(f"/api/v1/unions/union-a/reports/{report['id']}/answer", json={"values": {"raise_yen": 9000}}),
        "report answer")
    _ok(aadmin.put(f"{A}/kpi/roster", json={"roster_size": 120}), "roster size")
    return {
        "device_id": [str(device["id"])],
        "slug": ["fed", "union-a", "union-b", "platform"],
        "fed": ["fed"],
        "union": ["union-a"],
        "notice_id": [str(fed_notice), str(union_notice), str(b_notice), str(officers_notice)],
        "comment_id": [str(comment["id"]), str(question["id"]), str(officer_reply["id"])],
        "document_id": [str(doc["id"])],
        "survey_id": [str(survey["id"])],
        "app_id": [str(application["id"])],
        "attachment_id": [str(attachment["id"])],
        "inv_id": [str(invitation["id"])],
        "token": [invitation["token"]],
        "registration_id": [str(pending[0]["registration_id"])],
        "login_id": ["a1", "b1", "staff"],
        "ballot_id": [str(ballot)],
        "report_id": [str(report["id"])],
    }


def _tallied_ballot(aadmin, a1, base: str) -> int:  # type: ignore[no-untyped-def]
    """A ballot run to its end, the union admin as its election officer: one vote, two trustees, the tally."""
    from federation.ballots import crypto

    _ok(aadmin.post(f"{base}/roles", json={"login_id": "aadmin", "role": "election_officer"}), "election officer")
    made = _ok(aadmin.post(f"{base}/ballots", json={
        "title": "A労組 役員選挙", "kind": "election", "options": [{"label": "A渡辺 恵"}, {"label": "A青木 健"}],
        "opens_at": "2026-01-01T00:00:00+09:00", "closes_at": "2099-01-01T00:00:00+09:00"}), "ballot")
    bid = made["id"]
    keys = [crypto.new_trustee_key() for _ in range(2)]
    for i, key in enumerate(keys):
        _ok(aadmin.post(f"{base}/ballots/{bid}/trustees", json={
            "name": f"trustee{i}", "public_key": crypto.hx(key.public),
            "key_proof": crypto.prove_key(key, f"union-a/{bid}/trustee")}), "trustee")
    _ok(aadmin.post(f"{base}/ballots/{bid}/open"), "open")
    _ok(a1.post(f"{base}/ballots/{bid}/votes", json={"choices": [1]}), "vote")
    _ok(aadmin.post(f"{base}/ballots/{bid}/close"), "close")
    board = _ok(aadmin.get(f"{base}/ballots/{bid}/board"), "board")
    sums = [(bytes.fromhex(c["a"]), bytes.fromhex(c["b"])) for c in board["encrypted_tally"]]
    for i, key in enumerate(keys):
        _ok(aadmin.post(f"{base}/ballots/{bid}/decryptions", json={
            "trustee": f"trustee{i}", "factors": crypto.partial_decryption(key, sums, board["fingerprint"])}),
            "decryption")
    _ok(aadmin.post(f"{base}/ballots/{bid}/tally"), "tally")
    return bid


# Page parameters that differ in name from the API's.
PAGE_VALUES = {"code": ["ja", "en"], "filename": ["css/musubi.css"], "size": ["standard", "large", "xlarge", "huge"]}
