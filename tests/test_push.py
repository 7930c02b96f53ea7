"""Web Push from the cascade to a real push service on 127.0.0.1: VAPID-signed, encrypted to each device's key and
decrypted there, retried on 429/5xx, pruned on 410, and never sent twice to one device."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from devtools.local_push import LocalPushService
from federation import jobs

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def vapid_key(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from federation.push import vapid

    vapid.forget()  # the signing key is cached per process; this test's instance folder has its own
    yield vapid.generate(app.config["MUSUBI"].vapid_file)
    vapid.forget()


@pytest.fixture
def push(vapid_key) -> Iterator[LocalPushService]:  # type: ignore[no-untyped-def]
    with LocalPushService() as service:
        yield service


def subscribe(api, push: LocalPushService) -> dict:  # type: ignore[no-untyped-def]
    sub = push.new_subscription()
    r = api.post("/api/v1/me/push-subscriptions", json=sub)
    assert r.status_code == 201, r.get_json()
    return sub


def create(api, slug, *, category="general", audience=None, **extra) -> int:  # type: ignore[no-untyped-def]
    body = {"title": extra.pop("title", "臨時大会の招集"), "body": extra.pop("body", "議案書を確認してください。"),
            "category": category, "audience": audience or {"all": True}, **extra}
    r = api.post(f"/api/v1/tenants/{slug}/notices", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def publish(api, slug, notice_id, *, drain=True) -> None:  # type: ignore[no-untyped-def]
    r = api.post(f"/api/v1/tenants/{slug}/notices/{notice_id}/publish")
    assert r.status_code == 202, r.get_json()
    if drain:
        jobs.drain()


def by_endpoint(push: LocalPushService, kind: str | None = None) -> Counter:
    return Counter(m.endpoint for m in push.messages() if kind is None or json.loads(m.payload)["kind"] == kind)


def wait_until(predicate, timeout=10.0):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def subscription_ids(app, user_login: str | None = None) -> list[int]:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from federation.push.records import PushSubscription
    from tenants.models import User

    with app.app_context():
        stmt = select(PushSubscription.id).order_by(PushSubscription.id)
        if user_login:
            stmt = stmt.join(User, User.id == PushSubscription.user_id).where(User.login_id == user_login)
        return list(db.session.execute(stmt).scalars())


# --- delivery ---------------------------------------------------------------------------------------------------------

def test_a_published_notice_arrives_decrypted_at_every_device_of_every_recipient_and_no_one_else(world, push):
    devices = {}
    for tenant, login_id, count in (("union-a", "a1", 2), ("union-a", "a2", 1), ("union-a", "aadmin", 1),
                                    ("union-b", "badmin", 1), ("union-b", "b1", 1), ("union-c", "c1", 1),
                                    ("fed", "staff", 1), ("fed2", "staff", 1)):
        api = world.as_(tenant, login_id)
        devices[(tenant, login_id)] = [subscribe(api, push)["endpoint"] for _ in range(count)]
    staff = world.as_("fed", "staff")
    long_title = "全国統一行動" * 33  # 198 characters, three UTF-8 bytes each
    nid = create(staff, "fed", title=long_title, body=("組合員の皆さんへ。" * 2223)[:20_000])
    publish(staff, "fed", nid)

    expected = {ep for who in (("union-a", "a1"), ("union-a", "a2"), ("union-a", "aadmin"), ("union-b", "badmin"))
                for ep in devices[who]}
    assert by_endpoint(push) == Counter({ep: 1 for ep in expected})
    assert push.rejected() == []
    for message in push.messages():
        assert len(message.payload) <= 4096 - 103  # it arrived, so the encrypted body fitted the 4 KB limit
        data = json.loads(message.payload)
        assert data["title"] == long_title and data["notice_id"] == nid and data["url"].endswith(f"/{nid}")
        assert data["kind"] == "notice" and data["category"] == "general"
        assert message.ttl > 0 and message.urgency == "normal" and message.topic == f"n{nid}"
        assert message.vapid_sub.startswith(("mailto:", "https:"))

    # The author sees how many have it on a device: counts per union.
    stats = staff.get(f"/api/v1/tenants/fed/notices/{nid}/stats").get_json()
    # union-b was reached through its one admin: that one person's figure is withheld (the small-group rule).
    assert {u["union"]: u["delivered"] for u in stats["unions"]} == {"union-a": 3, "union-b": None}
    assert stats["delivered"] == 3


def test_urgent_notices_go_with_high_urgency_and_every_push_has_a_ttl_and_topic(world, push):
    a1 = world.as_("union-a", "a1")
    endpoint = subscribe(a1, push)["endpoint"]
    editor = world.as_("union-a", "aeditor")
    urgent = create(editor, "union-a", category="urgent", title="台風接近 本日の集会は中止")
    publish(editor, "union-a", urgent)
    normal = create(editor, "union-a", category="meeting")
    publish(editor, "union-a", normal)
    messages = {json.loads(m.payload)["notice_id"]: m for m in push.messages(endpoint)}
    assert set(messages) == {urgent, normal}
    assert messages[urgent].urgency == "high" and messages[normal].urgency == "normal"
    assert messages[urgent].topic == f"n{urgent}" and messages[normal].topic == f"n{normal}"
    # Urgent news is worthless days later; an ordinary notice may wait for a phone that is off.
    assert 0 < messages[urgent].ttl <= messages[normal].ttl


def test_410_and_404_remove_the_subscription_and_the_others_still_get_it(world, push):
    a1, a2, a3 = (world.as_("union-a", u) for u in ("a1", "a2", "a3"))
    gone = subscribe(a1, push)["endpoint"]
    keep = subscribe(a1, push)["endpoint"]
    forgotten = subscribe(a2, push)["endpoint"]
    other = subscribe(a3, push)["endpoint"]
    push.gone(gone)
    push.fail(forgotten, 404)
    editor = world.as_("union-a", "aeditor")
    publish(editor, "union-a", create(editor, "union-a"))

    assert by_endpoint(push) == Counter({keep: 1, other: 1})
    assert sorted(r.status for r in push.rejected()) == [404, 410]
    assert [s["endpoint"] for s in a1.get("/api/v1/me/push-subscriptions").get_json()] == [keep]
    assert a2.get("/api/v1/me/push-subscriptions").get_json() == []
    # Dead subscriptions are not tried again.
    publish(editor, "union-a", create(editor, "union-a"))
    assert sorted(r.status for r in push.rejected()) == [404, 410]
    assert by_endpoint(push) == Counter({keep: 2, other: 2})


def test_429_and_500_are_retried_and_each_device_gets_the_push_exactly_once(world, push):
    a1, a2, a3 = (world.as_("union-a", u) for u in ("a1", "a2", "a3"))
    limited = subscribe(a1, push)["endpoint"]
    broken = subscribe(a2, push)["endpoint"]
    fine = subscribe(a3, push)["endpoint"]
    push.fail(limited, 429, retry_after=3)  # longer than the first backoff step, so it is what decides
    push.fail(broken, 500)
    editor = world.as_("union-a", "aeditor")
    nid = create(editor, "union-a")
    started = time.monotonic()
    publish(editor, "union-a", nid)

    assert by_endpoint(push) == Counter({limited: 1, broken: 1, fine: 1})
    assert sorted((r.status, r.endpoint) for r in push.rejected()) == sorted([(429, limited), (500, broken)])
    first = {m.endpoint: m.received_at for m in push.messages()}
    assert first[limited] - first[fine] >= 2.9  # Retry-After honoured
    assert time.monotonic() - started < 20
    # The retry carried only what had failed: the device that got it the first time was not sent it again.
    assert len(push.messages(fine)) == 1
    stats = editor.get(f"/api/v1/tenants/union-a/notices/{nid}/stats").get_json()
    assert stats["delivered"] == 3


def _sender_keys(tmp_path: Path):  # type: ignore[no-untyped-def]
    from federation.push import vapid

    path = tmp_path / "vapid.json"
    vapid.generate(path)
    return vapid.VapidKeys.load(path, "mailto:push-test@musubi.invalid")


HEADERS = {"TTL": "3600", "Urgency": "normal", "Topic": "n1"}


def test_batches_one_after_another_reuse_the_connections_to_the_push_service(tmp_path):
    from federation.push.addresses import parse_networks
    from federation.push.sender import Sender

    keys, local = _sender_keys(tmp_path), parse_networks("127.0.0.1")
    with LocalPushService() as service:
        subs = [{**service.new_subscription(), "id": i} for i in range(24)]
        sender = Sender(concurrency=2, timeout=10)
        try:
            for start in range(0, 24, 6):  # four batches, as one worker runs four jobs
                outcomes = sender.send_all(keys, subs[start:start + 6], b'{"v":1}', HEADERS, local)
                assert [o.status for o in outcomes] == [201] * 6
            # One pool for the process: at most `concurrency` connections, however many batches went through it
            # (a session per batch opened at least one connection per batch).
            assert service.connections()[0] <= 2
            assert len(service.messages()) == 24 and service.rejected() == []
        finally:
            sender.close()
        # Closed on stop: the service sees its connections end rather than time out.
        wait_until(lambda: service.connections()[1] == 0, timeout=5)
        # A sender used again after close starts a new loop and pool.
        try:
            assert [o.status for o in sender.send_all(keys, subs[:2], b'{"v":1}', HEADERS, local)] == [201, 201]
        finally:
            sender.close()


def test_a_429_in_a_pooled_batch_holds_back_only_its_own_device(tmp_path):
    from federation.push.addresses import parse_networks
    from federation.push.sender import Sender

    keys, local = _sender_keys(tmp_path), parse_networks("127.0.0.1")
    with LocalPushService() as service:
        subs = [{**service.new_subscription(), "id": i} for i in range(8)]
        service.fail(subs[3]["endpoint"], 429, retry_after=7)
        sender = Sender(concurrency=2, timeout=10)
        try:
            first = {o.subscription_id: o for o in sender.send_all(keys, subs[:4], b'{"v":1}', HEADERS, local)}
            assert {i: o.status for i, o in first.items()} == {0: 201, 1: 201, 2: 201, 3: 429}
            assert first[3].retry_after == 7 and first[0].retry_after == 0
            # The next batch goes on at once over the same connections, and the limited device's retry gets in.
            rest = sender.send_all(keys, subs[4:] + [subs[3]], b'{"v":1}', HEADERS, local)
            assert [o.status for o in rest] == [201] * 5
            assert service.connections()[0] <= 2
            assert sorted(m.endpoint for m in service.messages()) == sorted(s["endpoint"] for s in subs)
        finally:
            sender.close()


def test_each_push_service_origin_keeps_its_own_pool_across_batches(tmp_path):
    from federation.push.addresses import parse_networks
    from federation.push.sender import Sender

    keys, local = _sender_keys(tmp_path), parse_networks("127.0.0.1")
    with LocalPushService() as one, LocalPushService() as two:
        subs = [{**(one if i % 2 else two).new_subscription(), "id": i} for i in range(24)]
        one.fail(subs[1]["endpoint"], 429, retry_after=30)  # one origin limits one device: the other goes on
        sender = Sender(concurrency=2, timeout=10)
        try:
            statuses = {}
            for start in range(0, 24, 8):
                for o in sender.send_all(keys, subs[start:start + 8], b'{"v":1}', HEADERS, local):
                    statuses[o.subscription_id] = o.status
            assert statuses == {i: 429 if i == 1 else 201 for i in range(24)}
            # Pooled per origin: each service saw at most `concurrency` connections over the three batches.
            assert one.connections()[0] <= 2 and two.connections()[0] <= 2
            assert len(one.messages()) == 11 and len(two.messages()) == 12
        finally:
            sender.close()


def test_running_the_same_batch_again_pushes_nothing_twice(world, push, app):
    from federation.notices.models import Delivery
    from federation.push import sender

    for login_id in ("a1", "a2", "aadmin"):
        subscribe(world.as_("union-a", login_id), push)
    staff = world.as_("fed", "staff")
    nid = create(staff, "fed")
    publish(staff, "fed", nid)
    assert len(push.messages()) == 3
    subs = subscription_ids(app)
    with app.app_context():
        sender.send_batch(nid, "notice", subs, 0)
        sender.send_batch(nid, "notice", subs, 0)
        from federation.extensions import db

        delivery_ids = list(db.session.execute(select(Delivery.id).where(Delivery.notice_id == nid)).scalars())
        sender.push_deliveries(nid, delivery_ids)
    jobs.drain()
    assert len(push.messages()) == 3 and push.rejected() == []


def test_members_who_already_read_are_not_pushed(world, push):
    a1, a2 = world.as_("union-a", "a1"), world.as_("union-a", "a2")
    reader = subscribe(a2, push)["endpoint"]
    other = subscribe(a1, push)["endpoint"]
    push.fail(reader, 503)
    editor = world.as_("union-a", "aeditor")
    nid = create(editor, "union-a")
    publish(editor, "union-a", nid, drain=False)
    # The first attempt failed; before the retry, the member opens the notice on another device.
    wait_until(lambda: any(r.endpoint == reader for r in push.rejected()))
    assert a2.post(f"/api/v1/me/inbox/{nid}/read").status_code == 200
    jobs.drain()
    assert by_endpoint(push) == Counter({other: 1})


# --- retraction -------------------------------------------------------------------------------------------------------

def test_a_notice_retracted_before_its_push_went_out_is_not_pushed(world, push):
    endpoints = [subscribe(world.as_("union-a", u), push)["endpoint"] for u in ("a1", "a2")]
    for endpoint in endpoints:
        push.fail(endpoint, 500)
    staff = world.as_("fed", "staff")
    nid = create(staff, "fed", category="urgent")
    publish(staff, "fed", nid, drain=False)
    wait_until(lambda: len(push.rejected()) == 2)
    assert staff.delete(f"/api/v1/tenants/fed/notices/{nid}").status_code == 200
    jobs.drain()
    assert push.messages() == []  # neither the notice nor a retraction of something never shown


def test_a_retraction_replaces_the_push_under_the_same_topic(world, push):
    a1 = world.as_("union-a", "a1")
    first = subscribe(a1, push)["endpoint"]
    badmin_device = subscribe(world.as_("union-b", "badmin"), push)["endpoint"]
    staff = world.as_("fed", "staff")
    nid = create(staff, "fed", title="誤って送った通知")
    publish(staff, "fed", nid)
    later = subscribe(a1, push)["endpoint"]  # a device added after the push went out: nothing to replace there
    assert staff.delete(f"/api/v1/tenants/fed/notices/{nid}").status_code == 200
    jobs.drain()

    assert by_endpoint(push, "notice") == Counter({first: 1, badmin_device: 1})
    assert by_endpoint(push, "retract") == Counter({first: 1, badmin_device: 1})
    assert later not in by_endpoint(push)
    original = {m.endpoint: m for m in push.messages() if json.loads(m.payload)["kind"] == "notice"}
    for m in push.messages():
        data = json.loads(m.payload)
        if data["kind"] == "retract":
            assert m.topic == original[m.endpoint].topic == f"n{nid}"
            assert data["notice_id"] == nid and data["title"] == "" and "誤って" not in m.payload.decode()
    # Retracting again sends nothing more.
    staff.delete(f"/api/v1/tenants/fed/notices/{nid}")
    jobs.drain()
    assert len(push.messages()) == 4


# --- the HTTP side ----------------------------------------------------------------------------------------------------

def test_subscription_endpoints_validate_and_delete(world, push):
    a1, a2 = world.as_("union-a", "a1"), world.as_("union-a", "a2")
    sub = push.new_subscription()

    def bad(body, field):  # type: ignore[no-untyped-def]
        r = a1.post("/api/v1/me/push-subscriptions", json=body)
        assert r.status_code == 422, (field, r.status_code, r.get_json())
        assert set(r.get_json()) == {"error"}
        assert field in json.dumps(r.get_json()["error"]["fields"]), (field, r.get_json())

    bad({**sub, "endpoint": "http://push.example.com/send/abc"}, "endpoint")
    bad({**sub, "endpoint": "ftp://push.example.com/send/abc"}, "endpoint")
    bad({**sub, "endpoint": "not a url at all"}, "endpoint")
    bad({**sub, "keys": {**sub["keys"], "p256dh": sub["keys"]["p256dh"][:40]}}, "p256dh")
    bad({**sub, "keys": {**sub["keys"], "p256dh": "A" * 87}}, "p256dh")  # 65 bytes, but not a P-256 point
    bad({**sub, "keys": {**sub["keys"], "auth": "c2hvcnQ"}}, "auth")
    bad({**sub, "keys": {"p256dh": sub["keys"]["p256dh"]}}, "auth")
    bad({**sub, "platform": "android"}, "platform")
    bad({**sub, "keys": {**sub["keys"], "extra": "x"}}, "extra")
    bad({"endpoint": sub["endpoint"]}, "keys")
    assert world.anonymous().post("/api/v1/me/push-subscriptions", json=sub).status_code == 401
    assert a1.get("/api/v1/me/push-subscriptions").get_json() == []

    r = a1.post("/api/v1/me/push-subscriptions", json=sub)
    assert r.status_code == 201 and r.get_json()["endpoint"] == sub["endpoint"]
    # A real (https) push service endpoint is accepted too.
    https = {**push.new_subscription(), "endpoint": "https://fcm.googleapis.com/fcm/send/abc-123"}
    assert a1.post("/api/v1/me/push-subscriptions", json=https).status_code == 201
    assert [s["endpoint"] for s in a1.get("/api/v1/me/push-subscriptions").get_json()] == [sub["endpoint"],
                                                                                           https["endpoint"]]
    assert a2.get("/api/v1/me/push-subscriptions").get_json() == []
    # Someone else's endpoint cannot be deleted.
    assert a2.delete("/api/v1/me/push-subscriptions", json={"endpoint": sub["endpoint"]}).status_code == 404
    r = a1.delete("/api/v1/me/push-subscriptions", json={"endpoint": sub["endpoint"], "bogus": 1})
    assert r.status_code == 422 and "bogus" in r.get_json()["error"]["fields"]
    assert a1.delete("/api/v1/me/push-subscriptions", json=sub).status_code == 204
    assert [s["endpoint"] for s in a1.get("/api/v1/me/push-subscriptions").get_json()] == [https["endpoint"]]
    assert a1.delete("/api/v1/me/push-subscriptions", json=sub).status_code == 404
    assert a1.delete("/api/v1/me/push-subscriptions", json={"endpoint": https["endpoint"]}).status_code == 204
    # Nothing is pushed to a deleted subscription.
    editor = world.as_("union-a", "aeditor")
    publish(editor, "union-a", create(editor, "union-a"))
    assert push.messages() == [] and push.rejected() == []


def test_vapid_public_key_is_served_once_initialised_by_the_cli(world, tmp_path, app):
    from federation.push import vapid

    anon = world.anonymous()
    r = anon.get("/api/v1/push/vapid-public-key")
    assert r.status_code == 404
    error = r.get_json()["error"]
    assert set(error) == {"code", "message", "fields"} and error["code"] == "push_not_configured"

    key_file = app.config["MUSUBI"].vapid_file  # the test's instance folder, unless MUSUBI_VAPID_FILE says otherwise
    env = {k: v for k, v in os.environ.items() if k not in ("MUSUBI_VAPID_FILE", "REDIS_URL")}
    env.update(MUSUBI_INSTANCE=str(tmp_path), SECRET_KEY="test-secret-key-0123456789abcdef")
    if os.environ.get("MUSUBI_VAPID_FILE"):
        env["MUSUBI_VAPID_FILE"] = str(key_file)
    done = subprocess.run([sys.executable, "cli.py", "push", "init-vapid"], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
    public = json.loads(key_file.read_text())["public_key"]
    assert public in done.stdout

    r = anon.get("/api/v1/push/vapid-public-key")
    assert r.status_code == 200 and r.get_json() == {"public_key": public}
    # A second run refuses to replace the key: one line on stderr, a non-zero exit.
    again = subprocess.run([sys.executable, "cli.py", "push", "init-vapid"], cwd=PROJECT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode != 0 and len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    assert anon.get("/api/v1/push/vapid-public-key").get_json() == {"public_key": public}
    # A deploy script's --if-missing keeps the key and succeeds.
    kept = subprocess.run([sys.executable, "cli.py", "push", "init-vapid", "--if-missing"], cwd=PROJECT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert kept.returncode == 0 and "kept" in kept.stdout, kept.stderr
    assert json.loads(key_file.read_text())["public_key"] == public

    # And a push signed with it is accepted by the push service.
    vapid.forget()
    try:
        with LocalPushService() as push:
            a1 = world.as_("union-a", "a1")
            endpoint = subscribe(a1, push)["endpoint"]
            editor = world.as_("union-a", "aeditor")
            publish(editor, "union-a", create(editor, "union-a"))
            assert by_endpoint(push) == Counter({endpoint: 1})
            assert vapid.keys(key_file, app.config["MUSUBI"].vapid_subject).public_key == public
    finally:
        vapid.forget()


def test_without_a_vapid_key_the_cascade_still_delivers_and_nothing_is_pushed(world):
    from federation.push import vapid

    vapid.forget()
    with LocalPushService() as push:
        a1 = world.as_("union-a", "a1")
        subscribe(a1, push)
        editor = world.as_("union-a", "aeditor")
        nid = create(editor, "union-a")
        publish(editor, "union-a", nid)
        assert push.messages() == []
        assert [i["notice"]["id"] for i in a1.get("/api/v1/me/inbox").get_json()["items"]] == [nid]


def test_retry_after_is_read_as_seconds_or_as_an_http_date():
    import email.utils
    from datetime import UTC, datetime, timedelta

    from federation.push.sender import parse_retry_after

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) == 0.0
    assert parse_retry_after("soon") == 0.0
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25.0 < parse_retry_after(later) <= 30.0
    earlier = email.utils.format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier) == 0.0


# --- every push asks the firewall when it is sent (F2, F7) ------------------------------------------------------------

def test_a_push_retried_after_its_union_opted_out_goes_only_to_the_officers(world, push, app):
    from tenants import service as ts
    from tenants.models import Tenant

    member = subscribe(world.as_("union-a", "a1"), push)["endpoint"]
    officer = subscribe(world.as_("union-a", "aadmin"), push)["endpoint"]
    opted_out = subscribe(world.as_("union-b", "badmin"), push)["endpoint"]
    for endpoint in (member, officer, opted_out):
        push.fail(endpoint, 500)  # the first attempt fails everywhere; the retry comes after the change below
    staff = world.as_("fed", "staff")
    publish(staff, "fed", create(staff, "fed"), drain=False)
    wait_until(lambda: len(push.rejected()) == 3)
    with app.app_context():
        from federation.extensions import db

        union_a = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        ts.set_cascade(union_a, "opted_out", actor="operator:test")
    jobs.drain()
    assert by_endpoint(push) == Counter({officer: 1, opted_out: 1})


def test_nothing_is_pushed_to_a_member_suspended_while_the_push_waited(world, push, app):
    from tenants import service as ts
    from tenants.models import Tenant

    suspended = subscribe(world.as_("union-a", "a1"), push)["endpoint"]
    other = subscribe(world.as_("union-a", "a2"), push)["endpoint"]
    push.fail(suspended, 500)
    push.fail(other, 500)
    editor = world.as_("union-a", "aeditor")
    publish(editor, "union-a", create(editor, "union-a"), drain=False)
    wait_until(lambda: len(push.rejected()) == 2)
    with app.app_context():
        from federation.extensions import db

        union_a = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        ts.set_user_status(union_a, ts.user_in(union_a, "a1"), "suspended", actor="operator:test")
    jobs.drain()
    assert by_endpoint(push) == Counter({other: 1})



def test_a_message_push_skips_a_device_whose_owner_was_suspended_after_it_was_queued(world, push, app):
    from federation.push import messages
    from tenants import service as ts
    from tenants.models import Tenant

    suspended = subscribe(world.as_("union-a", "a1"), push)["endpoint"]
    other = subscribe(world.as_("union-a", "a2"), push)["endpoint"]
    body = messages.message_payload("survey_reminder", "アンケート", "ご回答ください", "/surveys/1", "A通信労組")
    with app.app_context():
        from federation.extensions import db

        union_a = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        ts.set_user_status(union_a, ts.user_in(union_a, "a1"), "suspended", actor="operator:test")
        messages.push_message(subscription_ids(app), body.decode(), "s1", 3600)
    assert by_endpoint(push) == Counter({other: 1})
    assert suspended not in by_endpoint(push)

# --- endpoints on private addresses are refused (SSRF) ----------------------------------------------------------------

@pytest.fixture
def no_private(app):  # type: ignore[no-untyped-def]
    """This server's settings without MUSUBI_PUSH_ALLOW_PRIVATE, as in production."""
    import dataclasses

    settings = app.config["MUSUBI"]
    app.config["MUSUBI"] = dataclasses.replace(settings, push_allow_private=())
    yield
    app.config["MUSUBI"] = settings


@pytest.mark.parametrize("endpoint", [
    "https://169.254.169.254/latest/meta-data/", "https://10.0.0.5/push/x", "https://192.168.1.1/push/x",
    "https://172.16.0.1/push/x", "https://127.0.0.1:8443/push/x", "https://[::1]/push/x",
    "https://[::ffff:169.254.169.254]/push/x", "https://[fe80::1]/push/x", "https://[fd00::1]/push/x",
    "https://0.0.0.0/push/x", "https://localhost/push/x", "https://push.localhost/push/x",
    "http://127.0.0.1:9999/push/x", "http://push.example.com/push/x", "https://user:pw@push.example.com/x",
])
def test_endpoints_on_private_or_loopback_addresses_are_refused_by_default(world, push, no_private, endpoint):
    r = world.as_("union-a", "a1").post("/api/v1/me/push-subscriptions",
                                         json={**push.new_subscription(), "endpoint": endpoint})
    assert r.status_code == 422, r.get_json()
    assert "endpoint" in r.get_json()["error"]["fields"]


def test_the_local_push_service_is_refused_unless_allowed_explicitly(world, push, no_private, app):
    import dataclasses

    from federation.push.addresses import parse_networks

    a1 = world.as_("union-a", "a1")
    sub = push.new_subscription()
    assert a1.post("/api/v1/me/push-subscriptions", json=sub).status_code == 422
    app.config["MUSUBI"] = dataclasses.replace(app.config["MUSUBI"], push_allow_private=parse_networks("127.0.0.1"))
    assert a1.post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
    # Allowed for 127.0.0.1 is allowed for that address only.
    other = {**push.new_subscription(), "endpoint": "http://10.1.2.3/push/x"}
    assert a1.post("/api/v1/me/push-subscriptions", json=other).status_code == 422
    https = {**push.new_subscription(), "endpoint": "https://fcm.googleapis.com/fcm/send/abc-123"}
    assert a1.post("/api/v1/me/push-subscriptions", json=https).status_code == 201


def _add_subscription(app, login_id: str, sub: dict) -> int:  # type: ignore[no-untyped-def]
    """A subscription row written directly: an endpoint accepted once, whose host resolves elsewhere now."""
    from federation.extensions import db
    from federation.push.records import PushSubscription
    from tenants.models import User

    with app.app_context():
        user = db.session.execute(select(User).where(User.login_id == login_id)).scalar_one()
        row = PushSubscription(user_id=user.id, tenant_id=user.tenant_id, endpoint=sub["endpoint"],
                               p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"])
        db.session.add(row)
        db.session.commit()
        return row.id


def test_a_host_that_resolves_to_a_private_address_at_send_time_is_never_connected_to(world, push, app, caplog):
    import socket
    import threading

    # A listener that counts connections: the "internal service" a rebinding DNS would point the host at.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        # `localhost` stands for a public name whose DNS now answers 127.0.0.1; https, so nothing about the URL as
        # written is wrong once the name is taken to be public: only the resolved address is.
        rebound = {**push.new_subscription(), "endpoint": f"https://rebound.localhost:{port}/push/x"}
        literal = {**push.new_subscription(), "endpoint": f"http://127.0.0.1:{port}/push/y"}
        fine = subscribe(world.as_("union-a", "a2"), push)["endpoint"]
        refused = [_add_subscription(app, "a1", rebound), _add_subscription(app, "a3", literal)]

        import dataclasses

        from federation.push import addresses
        from federation.push.addresses import parse_networks

        # Let the URL check pass for the name (as for any public-looking name); the connector must still refuse.
        original = addresses._LOOPBACK_NAMES
        addresses._LOOPBACK_NAMES = ()
        settings = app.config["MUSUBI"]
        # Only the local push service's port is exempt... addresses are what count: allow nothing private but
        # keep the local service reachable through its own explicit setting.
        app.config["MUSUBI"] = dataclasses.replace(settings, push_allow_private=parse_networks("127.0.0.2"))
        try:
            editor = world.as_("union-a", "aeditor")
            with caplog.at_level("WARNING", logger="musubi.push"):
                publish(editor, "union-a", create(editor, "union-a"))
        finally:
            addresses._LOOPBACK_NAMES = original
            app.config["MUSUBI"] = settings
    finally:
        stop.set()
        thread.join(2)
        listener.close()
    assert accepted == []  # never fetched
    assert fine not in by_endpoint(push)  # 127.0.0.1 was not allowed either: the local service got nothing
    logged = " ".join(r.getMessage() for r in caplog.records)
    for sub_id in refused:
        assert f"subscription {sub_id} refused" in logged
    assert subscription_ids(app, "a1") and subscription_ids(app, "a3")  # skipped, neither retried nor deleted


def test_a_name_with_any_private_address_is_refused_before_connecting():
    from federation.push.addresses import RefusedAddress, checked_addresses

    assert checked_addresses("fcm.googleapis.com", ["142.250.196.10", "142.250.196.10"]) == ["142.250.196.10"]
    for answers in (["169.254.169.254"], ["142.250.196.10", "10.0.0.1"], ["::1"], ["::ffff:127.0.0.1"], []):
        with pytest.raises(RefusedAddress):
            checked_addresses("push.example.com", answers)
    # An explicitly allowed network is reachable (the local push service of the tests).
    from federation.push.addresses import parse_networks
    assert checked_addresses("push.test", ["127.0.0.1"], parse_networks("127.0.0.1")) == ["127.0.0.1"]


# --- an endpoint moves to another user only with its keys; sign-out removes the session's devices ---------------------

def test_another_user_cannot_take_over_an_endpoint_without_its_keys(world, push, app):
    a1, a2 = world.as_("union-a", "a1"), world.as_("union-a", "a2")
    sub = subscribe(a1, push)
    stranger = push.new_subscription()  # someone who learnt the endpoint, with keys of their own
    r = a2.post("/api/v1/me/push-subscriptions", json={**stranger, "endpoint": sub["endpoint"]})
    assert r.status_code == 409 and "endpoint" in r.get_json()["error"]["fields"]
    assert [s["endpoint"] for s in a1.get("/api/v1/me/push-subscriptions").get_json()] == [sub["endpoint"]]
    assert a2.get("/api/v1/me/push-subscriptions").get_json() == []
    # The same browser (it holds the keys) signed in as someone else: the device moves to them.
    assert a2.post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
    assert a1.get("/api/v1/me/push-subscriptions").get_json() == []
    assert [s["endpoint"] for s in a2.get("/api/v1/me/push-subscriptions").get_json()] == [sub["endpoint"]]


def test_signing_out_removes_the_sessions_subscriptions_and_keeps_the_others(world, push, app):
    from conftest import login
    from web_support import Browser

    phone = login(app.test_client(), "union-a", "a1")
    kept = subscribe(phone, push)["endpoint"]
    laptop = login(app.test_client(), "union-a", "a1")
    gone = subscribe(laptop, push)["endpoint"]
    assert laptop.post("/api/v1/auth/logout").status_code == 204
    assert [s["endpoint"] for s in phone.get("/api/v1/me/push-subscriptions").get_json()] == [kept]

    page = Browser(app, "union-a", "a1")
    csrf = page.client.get("/api/v1/me").get_json()["csrf_token"]
    shared_pc = push.new_subscription()
    r = page.client.post("/api/v1/me/push-subscriptions", json=shared_pc, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 201, r.get_json()
    assert page.post("/signout").status_code == 302
    assert [s["endpoint"] for s in phone.get("/api/v1/me/push-subscriptions").get_json()] == [kept]
    editor = world.as_("union-a", "aeditor")
    publish(editor, "union-a", create(editor, "union-a"))
    assert by_endpoint(push) == Counter({kept: 1})
    assert gone not in by_endpoint(push)


# --- retracting from the page: one service, a job id RQ accepts -------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("MUSUBI_TEST_REDIS_URL"), reason="needs a Redis: set MUSUBI_TEST_REDIS_URL")
def test_retracting_from_the_page_queues_the_retraction_push_on_rq(world, push, app):
    from redis import Redis
    from rq import Queue, SimpleWorker
    from web_support import Browser

    member = subscribe(world.as_("union-a", "a1"), push)["endpoint"]
    staff = world.as_("fed", "staff")
    nid = create(staff, "fed")
    publish(staff, "fed", nid)
    assert by_endpoint(push, "notice") == Counter({member: 1})

    redis = Redis.from_url(os.environ["MUSUBI_TEST_REDIS_URL"])  # a database of the tests' own
    redis.flushdb()
    rq_backend = object.__new__(jobs.RQBackend)
    rq_backend.redis, rq_backend.queue = redis, Queue(jobs.QUEUE_NAME, connection=redis)
    inline, jobs._backend = jobs._backend, rq_backend
    try:
        r = Browser(app, "fed", "staff").post(f"/t/fed/notices/{nid}/retract")
        assert r.status_code == 302
        queued = rq_backend.queue.get_job_ids()
        assert queued == [f"retract-{nid}"]
        jobs.set_worker_app(app)
        SimpleWorker([rq_backend.queue], connection=redis).work(burst=True)
        assert rq_backend.queue.get_job_ids() == [] and len(rq_backend.queue.failed_job_registry) == 0
        # The retraction job queued its batch on the same queue; the worker ran it too.
        assert by_endpoint(push, "retract") == Counter({member: 1})
    finally:
        jobs._backend = inline
        jobs.set_worker_app(None)  # type: ignore[arg-type]
        redis.flushdb()


# --- reading is explicit --------------------------------------------------------------------------------------------

def test_getting_a_notice_through_the_api_does_not_mark_it_read(world, push):
    staff = world.as_("fed", "staff")
    nid = create(staff, "fed")
    publish(staff, "fed", nid)
    a1 = world.as_("union-a", "a1")
    r = a1.get(f"/api/v1/tenants/union-a/notices/{nid}")  # a recipient reads it through their own tenant
    assert r.status_code == 200 and r.get_json()["id"] == nid
    item = next(i for i in a1.get("/api/v1/me/inbox").get_json()["items"] if i["notice"]["id"] == nid)
    assert item["read_at"] is None
    stats = staff.get(f"/api/v1/tenants/fed/notices/{nid}/stats").get_json()
    assert stats["read"] == 0
    assert a1.post(f"/api/v1/me/inbox/{nid}/read").status_code in (200, 204)
    item = next(i for i in a1.get("/api/v1/me/inbox").get_json()["items"] if i["notice"]["id"] == nid)
    assert item["read_at"] is not None
