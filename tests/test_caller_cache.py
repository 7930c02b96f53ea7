"""The caller cache (federation/auth/callers.py): two web apps on one database and one Redis stand for two web
processes. A change made through one is honoured by the other on its very next request (F7), although the other
answers signed-in requests from memory; a process that stops hearing the channel stops answering from memory
before the change returns; and every write path to the watched tables is announced."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import event, update

from federation import create_app, jobs
from federation.auth import callers
from federation.extensions import db
from tests.conftest import PW, World

REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs a real Redis: set MUSUBI_TEST_REDIS_URL")


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callers, "LEASE", 1.5)
    monkeypatch.setattr(callers, "RENEW", 0.3)
    monkeypatch.setattr(callers, "MARGIN", 0.3)


@pytest.fixture
def pair(world: World, monkeypatch: pytest.MonkeyPatch, short_lease: None) -> Iterator[tuple[Flask, Flask]]:
    """Two apps with the cache on, over the world's database: web process A and web process B."""
    from redis import Redis

    Redis.from_url(REDIS_URL).delete(callers.REGISTRY)
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("MUSUBI_CALLER_CACHE", "1")
    apps = (create_app({"TESTING": True}), create_app({"TESTING": True}))
    for application in apps:
        _hold_lease(application)
    # Jobs run in process A, as they would in a worker with the same settings (REDIS_URL alone would queue them).
    jobs.reset()
    jobs._backend = jobs.InlineRunner(apps[0])
    yield apps
    jobs.reset()
    for application in apps:
        application.extensions["musubi_callers"].stop()
        with application.app_context():
            db.session.remove()
            db.engine.dispose()


def _hold_lease(application: Flask) -> None:
    bus = application.extensions["musubi_callers"]
    end = time.monotonic() + 10
    while not bus.usable():
        assert time.monotonic() < end, "the listener never got its lease"
        time.sleep(0.02)


class SignInQueries:
    """Counts the sign-in query on one app's engine: 0 for a request answered from memory."""

    def __init__(self, application: Flask) -> None:
        self.count = 0
        with application.app_context():
            event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "auth_sessions.token_hash" in statement:
            self.count += 1


def _token(application: Flask, tenant: str, login_id: str) -> str:
    client = application.test_client()
    r = client.post("/api/v1/auth/login", json={"tenant": tenant, "login_id": login_id, "password": PW})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["token"]


def _get(application: Flask, path: str, token: str):  # type: ignore[no-untyped-def]
    return application.test_client().get(path, headers={"Authorization": f"Bearer {token}"})


def _send(application: Flask, method: str, path: str, token: str, body=None):  # type: ignore[no-untyped-def]
    return application.test_client().open(path, method=method, json=body,
                                          headers={"Authorization": f"Bearer {token}"})


@needs_redis
def test_b_answers_from_memory_and_a_sign_out_on_a_ends_it_on_b(pair) -> None:
    a, b = pair
    token = _token(a, "union-a", "a1")
    queries = SignInQueries(b)
    assert _get(b, "/api/v1/me", token).status_code == 200
    assert queries.count == 1
    for _ in range(3):
        assert _get(b, "/api/v1/me", token).status_code == 200
    assert queries.count == 1, "B asked the database again: the cache is not in use, and this test proves nothing"
    assert _send(a, "POST", "/api/v1/auth/logout", token).status_code in (200, 204)
    assert _get(b, "/api/v1/me", token).status_code == 401
    # The neighbour's session, remembered on B too, is untouched by a1's sign-out.
    other = _token(a, "union-b", "b1")
    assert _get(b, "/api/v1/me", other).status_code == 200
    assert _get(b, "/api/v1/me", other).status_code == 200
    assert queries.count == 3


@needs_redis
def test_suspension_and_role_removal_on_a_are_honoured_by_b_at_once(pair) -> None:
    a, b = pair
    admin = _token(a, "union-a", "aadmin")
    editor = _token(a, "union-a", "aeditor")
    member = _token(a, "union-a", "a1")
    neighbour = _token(a, "union-b", "beditor")
    members_page = "/api/v1/tenants/union-a/members?limit=1"
    for _ in range(2):  # remembered on B
        assert _get(b, members_page, editor).status_code == 200
        assert _get(b, "/api/v1/me", member).status_code == 200
        assert _get(b, "/api/v1/tenants/union-b/members?limit=1", neighbour).status_code == 200
    for _ in range(5):
        r = _send(a, "DELETE", "/api/v1/tenants/union-a/roles", admin, {"login_id": "aeditor", "role": "union_editor"})
        assert r.status_code in (200, 204), r.get_json()
        assert _get(b, members_page, editor).status_code == 403
        r = _send(a, "POST", "/api/v1/tenants/union-a/roles", admin, {"login_id": "aeditor", "role": "union_editor"})
        assert r.status_code in (200, 201), r.get_json()
        assert _get(b, members_page, editor).status_code == 200
    r = _send(a, "PATCH", "/api/v1/tenants/union-a/members/a1", admin, {"status": "suspended"})
    assert r.status_code == 200, r.get_json()
    assert _get(b, "/api/v1/me", member).status_code == 401
    # Union B's editor was never touched and is still answered.
    assert _get(b, "/api/v1/tenants/union-b/members?limit=1", neighbour).status_code == 200


@needs_redis
def test_a_read_mark_on_a_shows_in_the_inbox_b_serves(pair) -> None:
    a, b = pair
    editor = _token(a, "union-a", "aeditor")
    member = _token(a, "union-a", "a1")
    r = _send(a, "POST", "/api/v1/tenants/union-a/notices", editor,
              {"title": "職場集会", "body": "本文", "category": "general", "audience": {"all": True}})
    assert r.status_code == 201, r.get_json()
    notice_id = r.get_json()["id"]
    assert _send(a, "POST", f"/api/v1/tenants/union-a/notices/{notice_id}/publish", editor).status_code == 202
    jobs.drain()
    # B's remembered row must have moved with the delivery (the union's inbox version), so the page shows it.
    page = _get(b, "/api/v1/me/inbox", member).get_json()
    assert [item["notice"]["id"] for item in page["items"]] == [notice_id]
    assert page["items"][0]["read_at"] is None
    assert _get(b, "/api/v1/me/inbox", member).headers["X-Inbox-Cache"] == "hit"
    assert _get(a, "/api/v1/me/inbox", member).get_json()["items"][0]["read_at"] is None  # remembered on A too
    assert _send(a, "POST", f"/api/v1/me/inbox/{notice_id}/read", member).status_code in (200, 204)
    # The process that took the read shows it at once (the member's keep-alive connection goes on asking it)...
    assert _get(a, "/api/v1/me/inbox", member).get_json()["items"][0]["read_at"] is not None
    # ...and the other as soon as it has applied the note, which the writer did not wait for.
    end = time.monotonic() + callers.LEASE
    while _get(b, "/api/v1/me/inbox", member).get_json()["items"][0]["read_at"] is None:
        assert time.monotonic() < end, "B never dropped the read mark's user"
        time.sleep(0.01)


@needs_redis
def test_a_process_that_stops_hearing_the_channel_stops_answering_from_memory_first(pair) -> None:
    a, b = pair
    admin = _token(a, "union-a", "aadmin")
    member = _token(a, "union-a", "a1")
    assert _get(b, "/api/v1/me", member).status_code == 200
    bus = b.extensions["musubi_callers"]
    stalled, release = threading.Event(), threading.Event()
    dropping = bus.cache.drop

    def stall(keys):  # type: ignore[no-untyped-def]
        if threading.current_thread().name == "musubi-callers":
            stalled.set()
            release.wait(30)  # B's listener is stuck: it neither applies nor acknowledges nor renews
        return dropping(keys)

    bus.cache.drop = stall
    try:
        started = time.monotonic()
        r = _send(a, "PATCH", "/api/v1/tenants/union-a/members/a1", admin, {"status": "suspended"})
        took = time.monotonic() - started
        assert r.status_code == 200 and stalled.is_set()
        assert took < callers.LEASE + 1.0, f"A waited {took:.2f} s for a stalled process, more than one lease"
        assert not bus.usable()
        assert _get(b, "/api/v1/me", member).status_code == 401
    finally:
        release.set()
        bus.cache.drop = dropping


def test_announcing_without_redis_waits_one_lease(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(callers, "LEASE", 0.4)
    bus = callers.CallerBus("redis://127.0.0.1:1/0")  # nothing listens on port 1
    started = time.monotonic()
    bus.announce([callers.user_key(7)])
    assert time.monotonic() - started >= 0.4


def test_the_cache_drops_by_user_tenant_or_everything_and_refuses_a_raced_lookup() -> None:
    cache = callers.CallerCache(max_entries=3)
    cache.put("s1", "row1", user_id=1, tenant_id=10, generation=0)
    cache.put("s2", "row2", user_id=2, tenant_id=10, generation=0)
    cache.put("s3", "row3", user_id=3, tenant_id=20, generation=0)
    cache.drop([callers.user_key(1)])
    assert (cache.get("s1"), cache.get("s2"), cache.get("s3")) == (None, "row2", "row3")
    cache.drop([callers.tenant_key(10)])
    assert (cache.get("s2"), cache.get("s3")) == (None, "row3")
    # A lookup that began before an announcement was applied is not stored.
    began = cache.generation
    cache.drop([callers.user_key(99)])
    cache.put("s4", "stale", user_id=4, tenant_id=20, generation=began)
    assert cache.get("s4") is None
    cache.put("s4", "row4", user_id=4, tenant_id=20, generation=cache.generation)
    for n in range(5, 8):
        cache.put(f"s{n}", f"row{n}", user_id=n, tenant_id=20, generation=cache.generation)
    assert len(cache) == 3 and cache.get("s3") is None  # the oldest went first
    cache.drop([callers.EVERYTHING])
    assert len(cache) == 0


@needs_redis
def test_every_write_to_the_watched_tables_is_announced(pair) -> None:
    from federation.firewall.models import bump_policy_version
    from federation.notices import inbox_cache
    from tenants import service as ts
    from tenants.models import Tenant, User

    a, _ = pair
    announced: list[set[str]] = []
    bus = a.extensions["musubi_callers"]
    monkey = bus.announce
    bus.announce = lambda keys: announced.append(set(keys))
    try:
        with a.app_context():
            union = db.session.execute(db.select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
            member = ts.user_in(union, "a1")
            inbox_cache.touch_user(member.id)
            db.session.commit()
            assert announced.pop() == {callers.read_state_key(member.id)}
            inbox_cache.touch_unions([union.id])
            db.session.commit()
            assert announced.pop() == {callers.tenant_key(union.id)}
            member.display_name = "名前 変更"
            db.session.commit()
            assert announced.pop() == {callers.user_key(member.id)}
            # A bulk statement nobody described drops everything.
            db.session.execute(update(User).where(User.id == member.id).values(name_kana="なまえ"))
            db.session.commit()
            assert announced.pop() == {callers.EVERYTHING}
            bump_policy_version()
            db.session.commit()
            assert announced.pop() == {callers.EVERYTHING}
            # A rolled-back change announces nothing, and a later unrelated commit does not carry it.
            inbox_cache.touch_user(member.id)
            db.session.rollback()
            db.session.commit()
            assert announced == []
    finally:
        bus.announce = monkey


@needs_redis
def test_gunicorn_workers_remember_callers_and_a_revocation_reaches_every_one(world: World, tmp_path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped gunicorn settings with two worker processes: each request on a new connection, so they land on
    either worker; every answer right after a revocation or a grant made through the other worker is right."""
    import json
    import subprocess
    import sys
    import urllib.error
    import urllib.request
    from pathlib import Path

    from redis import Redis

    from devtools.benchmarks import pg

    redis = Redis.from_url(REDIS_URL)
    redis.delete(callers.REGISTRY)
    port = pg.free_port()
    log = tmp_path / "gunicorn.log"
    args, env = pg.web_command(port, workers=2)  # the shipped settings, as production starts them
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, *args], cwd=Path(__file__).resolve().parent.parent, stdout=out,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, **env, "REDIS_URL": REDIS_URL, "MUSUBI_CALLER_CACHE": "1"})

    def call(method: str, path: str, token: str | None = None, body: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json", "Connection": "close",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status, json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}

    try:
        pg.wait_http(f"http://127.0.0.1:{port}/healthz", timeout=30)
        tokens = {who: call("POST", "/api/v1/auth/login", body={"tenant": "union-a", "login_id": who,
                                                                "password": PW})[1]["token"]
                  for who in ("aadmin", "aeditor")}
        page = "/api/v1/tenants/union-a/members?limit=1"
        end = time.monotonic() + 20
        while len(redis.zrangebyscore(callers.REGISTRY, redis.time()[0], "+inf")) < 2:
            assert time.monotonic() < end, "both workers never held a lease:\n" + log.read_text()
            assert call("GET", page, tokens["aeditor"])[0] == 200  # starts each worker's listener
            time.sleep(0.1)
        role = {"login_id": "aeditor", "role": "union_editor"}
        for _ in range(10):
            assert call("DELETE", "/api/v1/tenants/union-a/roles", tokens["aadmin"], role)[0] in (200, 204)
            assert call("GET", page, tokens["aeditor"])[0] == 403
            assert call("POST", "/api/v1/tenants/union-a/roles", tokens["aadmin"], role)[0] in (200, 201)
            assert call("GET", page, tokens["aeditor"])[0] == 200
        assert call("POST", "/api/v1/auth/logout", tokens["aeditor"])[0] in (200, 204)
        assert call("GET", "/api/v1/me", tokens["aeditor"])[0] == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
