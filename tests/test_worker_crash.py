"""A real RQ worker process is killed with SIGKILL in the middle of a cascade; a fresh worker finishes the work, and
afterwards every recipient holds the notice exactly once, every device got its push exactly once, and the audit
chain verifies. Needs a real Redis (MUSUBI_TEST_REDIS_URL); runs on SQLite or PostgreSQL like the rest."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import PW
from sqlalchemy import func, select

from devtools.local_push import LocalPushService
from federation import jobs

REDIS_URL = os.environ.get("MUSUBI_TEST_REDIS_URL")
# The database number in MUSUBI_TEST_REDIS_URL is this test's own (CI gives the SQLite and the PostgreSQL runs,
# which go side by side, different ones): it is flushed before and after. Without a number, 14.
REDIS_DB = int(urlsplit(REDIS_URL or "").path.strip("/") or 14)
PROJECT = Path(__file__).resolve().parent.parent
UNIONS = 120
CHUNK = 10  # unions per delivery job (MUSUBI_CASCADE_CHUNK), so the cascade takes twelve jobs

pytestmark = [pytest.mark.redis,
              pytest.mark.skipif(not REDIS_URL, reason="needs a real Redis: set MUSUBI_TEST_REDIS_URL")]


def poll(predicate, timeout: float, what: str, interval: float = 0.002):  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


@pytest.fixture
def redis_url() -> Iterator[str]:
    from redis import Redis

    parts = urlsplit(REDIS_URL or "")
    url = urlunsplit((parts.scheme, parts.netloc, f"/{REDIS_DB}", "", ""))
    conn = Redis.from_url(url)
    conn.flushdb()
    yield url
    conn.flushdb()
    conn.close()


class DatabaseWriteBlock:
    """Holds up the worker's writes from outside, so it can be caught inside a job: on SQLite the write lock of the
    whole file; on PostgreSQL the audit chain's head row, which a delivery job locks after inserting its rows."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = None

    def acquire(self) -> None:
        if self.url.startswith("sqlite"):
            self.conn = sqlite3.connect(self.url.split("sqlite:///", 1)[1], isolation_level=None, timeout=30)
            self.conn.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            self.conn = psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://", 1))
            self.conn.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")

    def release(self) -> None:
        if self.conn is not None:
            self.conn.rollback()
            self.conn.close()
            self.conn = None


def build_unions(app, world) -> list[str]:  # type: ignore[no-untyped-def]
    """UNIONS more unions under the federation's two councils, three members each; every seventh stays opted out."""
    from federation.auth.passwords import hash_password
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant

    actor = "operator:test"
    pw = hash_password(PW)
    slugs = []
    with app.app_context():
        fed = db.session.execute(select(Tenant).where(Tenant.slug == "fed")).scalar_one()
        for n in range(UNIONS):
            slug = f"u{n:03d}"
            union = ts.create_tenant(slug, f"第{n}単組", "union", actor=actor)
            admin = ts.create_user(union, login_id="admin", display_name="委員長", name_kana="いいんちょう",
                                   password=None, password_hash=pw, actor=actor, commit=False)
            for m in (1, 2):
                ts.create_user(union, login_id=f"m{m}", display_name=f"組合員{m}", name_kana="くみあいいん",
                               password=None, password_hash=pw, actor=actor, commit=False)
            ts.grant_role(union, admin, "union_admin", None, actor=actor)
            ts.invite(fed, slug, world.ids["council"] if n % 2 else world.ids["council2"], actor=actor)
            ts.accept(union, actor=actor)
            if n % 7:
                ts.set_cascade(union, "opted_in", actor=actor)
            slugs.append(slug)
    return slugs


def start_worker(env: dict[str, str], log: Path, *burst: str) -> subprocess.Popen:
    # A session of its own: RQ forks its scheduler from the worker, and teardown must be able to end both.
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "cli.py", "worker", *burst], cwd=PROJECT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def test_a_worker_killed_mid_cascade_loses_nothing_and_doubles_nothing(world, app, tmp_path, redis_url):
    from redis import Redis
    from rq import Queue
    from rq.job import Job
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    from federation.audit.chain import AuditEntry, verify
    from federation.auth.service import subject_of
    from federation.extensions import db
    from federation.notices import inbox
    from federation.notices.models import CascadeChunk, Delivery, Notice
    from federation.push import vapid
    from federation.push.records import PushSubscription
    from tenants.models import Affiliation, RoleGrant, Tenant, User

    slugs = build_unions(app, world)
    database_url = os.environ["DATABASE_URL"]
    vapid.forget()
    vapid.generate(app.config["MUSUBI"].vapid_file)
    redis = Redis.from_url(redis_url)
    queue = Queue(jobs.QUEUE_NAME, connection=redis)
    started_registry = StartedJobRegistry(jobs.QUEUE_NAME, connection=redis)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSUBI_TEST_")}
    env.update(DATABASE_URL=database_url, REDIS_URL=redis_url, MUSUBI_INSTANCE=str(tmp_path),
               SECRET_KEY="test-secret-key-0123456789abcdef", MUSUBI_CASCADE_CHUNK=str(CHUNK))
    log = tmp_path / "workers.log"
    block = DatabaseWriteBlock(database_url)
    victim = fresh = None
    try:
        with LocalPushService() as push:
            # One device for the first member of every fifth union, and for every admin of an opted-out one.
            with app.app_context():
                rows = db.session.execute(
                    select(User, Tenant.slug).join(Tenant, Tenant.id == User.tenant_id)
                    .where(Tenant.slug.in_(slugs), User.login_id.in_(["m1", "admin"]))).all()
                devices = {}
                for user, slug in rows:
                    n = int(slug[1:])
                    if (user.login_id == "m1" and n % 5 == 0) or (user.login_id == "admin" and n % 7 == 0):
                        sub = push.new_subscription()
                        db.session.add(PushSubscription(user_id=user.id, tenant_id=user.tenant_id,
                                                        endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"],
                                                        auth=sub["keys"]["auth"]))
                        devices[sub["endpoint"]] = (slug, user.login_id)
                db.session.commit()

            staff = world.as_("fed", "staff")
            r = staff.post("/api/v1/tenants/fed/notices", json={
                "title": "全国一斉 職場集会", "body": "各職場で集会を開いてください。", "category": "meeting",
                "audience": {"all": True}})
            assert r.status_code == 201, r.get_json()
            nid = r.get_json()["id"]

            app.config["REDIS_URL"] = redis_url  # from here on this process enqueues on Redis, as `serve` would
            jobs.reset()
            victim = start_worker(env, log)
            assert staff.post(f"/api/v1/tenants/fed/notices/{nid}/publish").status_code == 202

            def finished_chunks() -> set[int]:
                with app.app_context():
                    done = set(db.session.execute(select(CascadeChunk.chunk)
                                                  .where(CascadeChunk.notice_id == nid)).scalars())
                    db.session.rollback()
                    return done

            def chunks_done() -> int:
                return len(finished_chunks())

            poll(lambda: chunks_done() >= 1, 60, "the first delivery job to finish")
            block.acquire()

            def blocked_delivery() -> str | None:
                # A job whose work is committed stays "started" for a moment while RQ records the result.
                done = finished_chunks()
                for entry in started_registry.get_job_ids(cleanup=False):
                    job = Job.fetch(entry, connection=redis)
                    if job.func_name.endswith("deliver_chunk") and job.args[1] not in done:
                        return job.id
                return None

            caught = poll(blocked_delivery, 30, "the worker to start the next delivery job")
            time.sleep(0.5)
            assert blocked_delivery() == caught, "the delivery job was meant to be stuck on the database"
            assert victim.poll() is None
            os.kill(victim.pid, signal.SIGKILL)  # the worker process only: RQ's forked scheduler lives on
            assert victim.wait(timeout=10) == -signal.SIGKILL
            block.release()

            total = (2 + UNIONS + CHUNK - 1) // CHUNK  # union-a, union-b and the new ones
            done_at_kill = chunks_done()
            assert 1 <= done_at_kill < total, done_at_kill
            # Abandoned: still "started", but no worker is running it.
            assert caught in started_registry.get_job_ids(cleanup=False)

            # RQ's maintenance pass, as it runs once the dead worker's heartbeat has lapsed: an abandoned job with
            # retries left is scheduled again. The pass is run here at that moment's clock instead of waiting.
            expiry = max(score for _, score in redis.zrange(started_registry.key, 0, -1, withscores=True))
            started_registry.cleanup(timestamp=expiry + 1)
            assert started_registry.get_job_ids(cleanup=False) == []
            scheduled = ScheduledJobRegistry(jobs.QUEUE_NAME, connection=redis)
            assert caught in scheduled.get_job_ids()
            poll(lambda: caught in queue.get_job_ids(), 20, "the retry to come due and be queued", 0.05)

            fresh = start_worker(env, log, "--burst")
            assert fresh.wait(timeout=120) == 0, log.read_text()[-3000:]

            # --- nothing lost, nothing doubled -----------------------------------------------------------------
            assert queue.count == 0 and started_registry.get_job_ids(cleanup=False) == []
            assert FailedJobRegistry(jobs.QUEUE_NAME, connection=redis).get_job_ids() == []
            with app.app_context():
                notice = db.session.get(Notice, nid)
                assert notice.cascade_chunks == total and notice.cascade_done_at is not None
                assert chunks_done() == total
                opted = dict(db.session.execute(
                    select(Tenant.slug, Affiliation.cascade).join(Affiliation, Affiliation.union_id == Tenant.id)
                    .where(Affiliation.status == "active")).all())
                rows = db.session.execute(select(Tenant.slug, Delivery.for_relay, func.count())
                                          .join(Tenant, Tenant.id == Delivery.tenant_id)
                                          .where(Delivery.notice_id == nid)
                                          .group_by(Tenant.slug, Delivery.for_relay)).all()
                assert {slug: (relay, count) for slug, relay, count in rows} == {
                    slug: (cascade == "opted_out", 1) for slug, cascade in opted.items()}
                audited = Counter(e.other_tenant for e in db.session.execute(
                    select(AuditEntry).where(AuditEntry.kind == "notice.deliver")).scalars()
                    if json.loads(e.data)["notice_id"] == nid)
                assert audited == Counter({slug: 1 for slug in opted})
                assert verify().ok

                admins = set(db.session.execute(select(RoleGrant.user_id).where(RoleGrant.role == "union_admin"))
                             .scalars())
                holders = 0
                for user in db.session.execute(select(User).join(Tenant, Tenant.id == User.tenant_id)
                                               .where(Tenant.kind != "platform")).scalars():
                    items = inbox.inbox_page(user, subject_of(user), limit=100, after=None)["items"]
                    got = [i["notice"]["id"] for i in items].count(nid)
                    cascade = opted.get(user.tenant.slug)
                    expected = int(cascade == "opted_in" or (cascade == "opted_out" and user.id in admins))
                    assert got == expected, (user.tenant.slug, user.login_id, got)
                    holders += got
                assert holders == sum(3 if c == "opted_in" else 1 for c in opted.values()) + 2  # a has 5 members
            assert [i["notice"]["id"] for i in world.as_("union-a", "a1").get("/api/v1/me/inbox")
                    .get_json()["items"]] == [nid]

            # Every recipient's device got the notice exactly once, whichever worker sent it; no one else's did.
            reached = {ep for ep, (slug, login_id) in devices.items()
                       if (opted[slug] == "opted_in") is (login_id == "m1")}
            assert reached and len(reached) < len(devices)
            assert Counter(m.endpoint for m in push.messages()) == Counter({ep: 1 for ep in reached})
    finally:
        block.release()
        for proc in (victim, fresh):
            if proc is not None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)  # with it the orphaned RQ scheduler of the dead worker
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        vapid.forget()
        jobs.reset()
