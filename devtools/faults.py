"""`python cli.py faults [SCENARIO]`: scripted fault drills against a real PostgreSQL and Redis.

Each scenario builds a scratch database with a bulk federation (PostgreSQL, `MUSUBI_FAULT_DATABASE_URL` names the
admin database the scratch one is created next to), real RQ workers, schedulers and gunicorn on Redis
(`MUSUBI_FAULT_REDIS_URL`), publishes a federation notice, breaks something in the middle of the cascade, and then
checks the same things every time: every recipient holds the notice exactly once, no device was pushed twice (and
every device that should have been was, once), and the audit chain verifies.

Restarting the servers is done by the shell commands in `MUSUBI_FAULT_PG_RESTART` and `MUSUBI_FAULT_REDIS_RESTART`,
so the drills can be pointed at throwaway servers: they restart whatever they are pointed at.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_PG_RESTART = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main restart"
DEFAULT_REDIS_RESTART = ("redis-cli -h 127.0.0.1 shutdown nosave; redis-server --daemonize yes --bind 127.0.0.1 -::1 "
                         "--port 6379 --save \"\" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log")

UNIONS = 60
MEMBERS = 3000  # 50 per union
DEVICES = 300
CHUNK = 3  # unions per delivery job, so a cascade is twenty jobs and there is a "middle" to break

SCENARIOS = ("worker-kill", "redis-restart", "pg-restart", "scheduler", "web-kill")


@dataclass
class Target:
    database_url: str
    redis_url: str
    pg_restart: str
    redis_restart: str

    @classmethod
    def from_env(cls) -> Target:
        return cls(os.environ.get("MUSUBI_FAULT_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   os.environ.get("MUSUBI_FAULT_REDIS_URL", "redis://127.0.0.1:6379/13"),
                   os.environ.get("MUSUBI_FAULT_PG_RESTART", DEFAULT_PG_RESTART),
                   os.environ.get("MUSUBI_FAULT_REDIS_RESTART", DEFAULT_REDIS_RESTART))


@dataclass
class Report:
    results: list[tuple[str, str, bool, str]] = field(default_factory=list)

    def check(self, scenario: str, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append((scenario, name, bool(ok), detail))
        mark = "ok  " if ok else "FAIL"
        click.echo(f"  {mark} {scenario}: {name}" + (f" ({detail})" if detail else ""))
        return bool(ok)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r[2])


class Aborted(Exception):
    """A scenario could not reach the point of its fault; reported as a failed check, the next one still runs."""


def poll(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise Aborted(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def shell(command: str, timeout: float = 120) -> None:
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=timeout)  # noqa: S602
    if done.returncode != 0:
        raise Aborted(f"`{command}` exited {done.returncode}: {(done.stderr or done.stdout).strip()[:200]}")


class RowLock:
    """Holds a row lock from outside, so a worker or a request can be caught inside its transaction."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.conn: Any = None

    def hold(self, statement: str, *params: Any) -> None:
        import psycopg

        self.conn = psycopg.connect(self.url)
        self.conn.execute(statement, params)

    def activity(self, columns: str, where: str = "true") -> list[tuple]:
        """Rows of pg_stat_activity for this database, read on a connection of its own: inside the transaction
        that holds the lock the view is a snapshot taken at its first read, and a session that started waiting
        after that read would never be seen."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(f"SELECT {columns} FROM pg_stat_activity WHERE datname = current_database() "
                                f"AND pid <> pg_backend_pid() AND {where}").fetchall()

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.rollback()
                self.conn.close()
            except Exception:  # noqa: BLE001 - the server may just have been restarted under it
                pass
            self.conn = None


class Processes:
    """Workers, schedulers and web servers, each in a session of its own: RQ forks its scheduler from a worker, and a
    drill must be able to kill the worker alone or end everything it started."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen([sys.executable, *args], cwd=PROJECT, env={**os.environ, **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc

    def worker(self, name: str) -> subprocess.Popen:
        return self.start(name, "cli.py", "worker")

    def scheduler(self, name: str) -> subprocess.Popen:
        return self.start(name, "cli.py", "scheduler")

    def gunicorn(self, workers: int = 2) -> tuple[subprocess.Popen, int]:
        from devtools.benchmarks.pg import free_port, wait_http, web_command

        port = free_port()
        args, env = web_command(port, workers)
        proc = self.start("gunicorn", *args, env=env)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        return proc, port

    @staticmethod
    def kill(proc: subprocess.Popen, *, group: bool = True) -> None:
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # with it anything the process forked
            except ProcessLookupError:
                pass
        self.procs.clear()


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


# --- the world and the checks ----------------------------------------------------------------------------------------

@dataclass
class Stage:
    scenario: str
    report: Report
    database_url: str
    redis_url: str
    procs: Processes
    push: Any
    devices: dict[str, tuple[int, bool]] = field(default_factory=dict)  # endpoint → (user id, union opted in)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        return self.report.check(self.scenario, name, ok, detail)


def _give_devices(stage: Stage) -> None:
    """Subscriptions on the local push service for DEVICES plain members spread over every union."""
    from sqlalchemy import select

    from federation.extensions import db
    from federation.push.records import PushSubscription
    from tenants.models import Affiliation, User

    opted = dict(db.session.execute(select(Affiliation.union_id, Affiliation.cascade)).all())
    per_union = max(1, DEVICES // len(opted))
    users = db.session.execute(select(User.id, User.tenant_id, User.login_id).where(
        User.tenant_id.in_(list(opted)), User.login_id >= "100002").order_by(User.tenant_id, User.login_id)).all()
    taken: Counter[int] = Counter()
    for uid, tenant_id, _login in users:
        if taken[tenant_id] >= per_union:
            continue
        taken[tenant_id] += 1
        sub = stage.push.new_subscription()
        db.session.add(PushSubscription(user_id=uid, tenant_id=tenant_id, endpoint=sub["endpoint"],
                                        p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]))
        stage.devices[sub["endpoint"]] = (uid, opted[tenant_id] == "opted_in")
    db.session.commit()


def _staff():  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from federation.auth.service import subject_of
    from federation.extensions import db
    from tenants.models import Tenant, User

    fed = db.session.execute(select(Tenant).where(Tenant.slug == "bench-fed")).scalar_one()
    staff = db.session.execute(select(User).where(User.tenant_id == fed.id, User.login_id == "staff")).scalar_one()
    return fed, staff, subject_of(staff)


def create_notice(*, publish_at: Any = None) -> int:
    from federation.notices import service as ns

    fed, staff, subject = _staff()
    body: dict[str, Any] = {"title": "全国一斉 職場集会のお知らせ", "body": "各職場で**集会**を開いてください。",
                            "category": "meeting", "audience": {"all": True}}
    if publish_at is not None:
        body["publish_at"] = publish_at
    return ns.create_notice(fed, staff, subject, body).id


def publish(notice_id: int) -> None:
    from federation.extensions import db
    from federation.notices import service as ns
    from federation.notices.models import Notice

    _, _, subject = _staff()
    ns.publish_now(db.session.get(Notice, notice_id), subject)


def fresh() -> None:
    from federation.extensions import db

    db.session.rollback()
    db.session.expire_all()


def chunks_done(notice_id: int) -> int:
    from sqlalchemy import func, select

    from federation.extensions import db
    from federation.notices.models import CascadeChunk

    fresh()
    return db.session.execute(select(func.count()).select_from(CascadeChunk)
                              .where(CascadeChunk.notice_id == notice_id)).scalar_one()


def cascade_done(notice_id: int) -> bool:
    from federation.extensions import db
    from federation.notices.models import Notice

    fresh()
    notice = db.session.get(Notice, notice_id)
    return notice is not None and notice.cascade_done_at is not None


def outcome(stage: Stage, notice_id: int, *, timeout: float = 90) -> None:
    """The checks every scenario ends with."""
    from sqlalchemy import func, select

    from federation.audit.chain import AuditEntry, verify
    from federation.auth.service import subject_of
    from federation.extensions import db
    from federation.notices.inbox import receipt_target
    from federation.notices.models import Delivery, Notice
    from federation.push.records import PushSend
    from tenants.models import Affiliation, Tenant, User

    try:
        poll(lambda: cascade_done(notice_id), timeout, "the cascade to finish", 0.2)
    except Aborted as exc:
        stage.check("cascade finished", False, str(exc))
    else:
        notice = db.session.get(Notice, notice_id)
        stage.check("cascade finished", True, f"{chunks_done(notice_id)} delivery jobs recorded, "
                    f"{notice.cascade_targets} unions targeted")

    opted = dict(db.session.execute(select(Affiliation.union_id, Affiliation.cascade)
                                    .where(Affiliation.status == "active")).all())
    rows = db.session.execute(select(Delivery.tenant_id, Delivery.for_relay, func.count())
                              .where(Delivery.notice_id == notice_id)
                              .group_by(Delivery.tenant_id, Delivery.for_relay)).all()
    per_union = {tenant_id: (relay, count) for tenant_id, relay, count in rows}
    wrong = [u for u, c in opted.items() if per_union.get(u) != (c == "opted_out", 1)]
    stage.check("one delivery per (notice, union), relay only where opted out", not wrong and len(rows) == len(opted),
                f"{len(rows)} deliveries for {len(opted)} unions" + (f"; wrong for union ids {wrong[:5]}"
                                                                     if wrong else ""))

    opted_in = [u for u, c in opted.items() if c == "opted_in"]
    members = db.session.execute(select(User).where(User.tenant_id.in_(opted_in), User.status == "active")).scalars()
    seen = missing = 0
    for user in members:
        if receipt_target(user, subject_of(user), notice_id) is None:
            missing += 1
        else:
            seen += 1
    stage.check("every member of every opted-in union sees it in their inbox", missing == 0 and seen > 0,
                f"{seen} members see it, {missing} do not")

    slugs = dict(db.session.execute(select(Tenant.id, Tenant.slug)).all())
    audited = Counter(e.other_tenant for e in db.session.execute(
        select(AuditEntry).where(AuditEntry.kind == "notice.deliver")).scalars()
        if json.loads(e.data).get("notice_id") == notice_id)
    stage.check("one audit entry per union delivered to", audited == Counter({slugs[u]: 1 for u in opted}),
                f"{sum(audited.values())} entries for {len(opted)} unions")

    doubled = db.session.execute(select(func.count()).select_from(
        select(PushSend.subscription_id).where(PushSend.notice_id == notice_id)
        .group_by(PushSend.notice_id, PushSend.subscription_id, PushSend.kind)
        .having(func.count() > 1).subquery())).scalar_one()
    stage.check("no PushSend recorded twice for (notice, subscription, kind)", doubled == 0, f"{doubled} doubled")

    expected = {ep for ep, (_uid, is_in) in stage.devices.items() if is_in}

    def pushed() -> Counter[str]:
        return Counter(m.endpoint for m in stage.push.messages())

    try:
        poll(lambda: expected <= set(pushed()), 60, "every device to be pushed", 0.2)
    except Aborted:
        pass
    time.sleep(2.0)  # a duplicate would arrive after the last first copy: give it the chance to
    got = pushed()
    twice = sum(1 for n in got.values() if n > 1)
    stray = set(got) - expected
    lost = expected - set(got)
    stage.check("every device pushed exactly once, no one else's", not twice and not stray and not lost,
                f"{len(expected)} devices expected, {sum(got.values())} messages; {twice} twice, {len(lost)} never, "
                f"{len(stray)} to devices that should get none")

    fresh()
    verification = verify()
    stage.check("audit chain verifies", verification.ok, f"{verification.entries} entries")


# --- the scenarios ---------------------------------------------------------------------------------------------------

def _queue(redis_url: str):  # type: ignore[no-untyped-def]
    from redis import Redis
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from federation import jobs

    conn = Redis.from_url(redis_url)
    return conn, Queue(jobs.QUEUE_NAME, connection=conn), StartedJobRegistry(jobs.QUEUE_NAME, connection=conn)


def worker_kill(stage: Stage) -> int:
    """SIGKILL the worker while it is inside a delivery job; RQ's abandoned-job pass and a fresh worker finish it."""
    conn, queue, started = _queue(stage.redis_url)
    victim = stage.procs.worker("worker-victim")
    nid = create_notice()
    publish(nid)
    poll(lambda: chunks_done(nid) >= 1, 60, "the first delivery job to finish", 0.01)
    lock = RowLock(stage.database_url)
    lock.hold("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")  # the next delivery job waits here
    try:
        caught = poll(lambda: [j for j in started.get_job_ids(cleanup=False) if j.startswith("deliver-")], 30,
                      "a delivery job to be caught mid-way")
        time.sleep(0.3)
        done_at_kill = chunks_done(nid)
        stage.procs.kill(victim, group=False)  # the worker only: its forked RQ scheduler lives on, as it would
    finally:
        lock.release()
    stage.check("worker killed inside a delivery job", True, f"job {caught[0]}, {done_at_kill} jobs done before")
    # RQ's maintenance pass, run at the moment the dead worker's heartbeat has lapsed instead of waiting for it.
    expiry = max(score for _, score in conn.zrange(started.key, 0, -1, withscores=True))
    started.cleanup(timestamp=expiry + 1)
    stage.check("RQ marked the job abandoned and scheduled its retry", caught[0] not in
                started.get_job_ids(cleanup=False))
    stage.procs.worker("worker-fresh")
    outcome(stage, nid)
    return nid


def redis_restart(stage: Stage, target: Target) -> int:
    """Redis loses every queued job mid-cascade; the scheduler notices the unfinished cascade and finishes it."""
    worker = stage.procs.worker("worker-1")
    nid = create_notice()
    publish(nid)
    poll(lambda: chunks_done(nid) >= 1, 60, "the first delivery job to finish", 0.01)
    lock = RowLock(stage.database_url)
    lock.hold("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
    try:
        time.sleep(0.3)
        before = chunks_done(nid)
        shell(target.redis_restart)
        conn, queue, _ = _queue(stage.redis_url)
        poll(lambda: _pings(conn), 30, "Redis to answer again")
        stage.check("Redis restarted mid-cascade, its queue empty", queue.count == 0,
                    f"{before} delivery jobs done before")
    finally:
        lock.release()
    time.sleep(1.0)
    # Process supervision restarts a worker whose Redis connection broke; a drill does it by hand.
    stage.procs.kill(worker)
    stage.procs.worker("worker-2")
    stage.procs.scheduler("scheduler")
    outcome(stage, nid, timeout=120)
    return nid


def _pings(conn) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(conn.ping())
    except Exception:  # noqa: BLE001 - still restarting
        return False


def pg_restart(stage: Stage, target: Target) -> int:
    """PostgreSQL restarts mid-cascade: jobs in flight fail and retry; each web process fails at most one request."""
    import requests

    from devtools.benchmarks.world import PASSWORD
    from federation.extensions import db

    for i in range(2):
        stage.procs.worker(f"worker-{i}")
    web, port = stage.procs.gunicorn(workers=2)
    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    r = http.post(f"{base}/api/v1/auth/login", json={"tenant": "bench-u0000", "login_id": "100010",
                                                     "password": PASSWORD}, timeout=30)
    token = r.json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    warm = [http.get(f"{base}/api/v1/me/inbox", headers=headers, timeout=30).status_code for _ in range(16)]
    stage.check("web answers before the restart", set(warm) == {200}, f"{len(warm)} requests")
    nid = create_notice()
    publish(nid)
    poll(lambda: chunks_done(nid) >= 1, 60, "the first delivery job to finish", 0.01)
    before = chunks_done(nid)
    # This process checks the outcome afterwards: it lets go of its own connections first, so only the web and
    # worker processes meet the restart.
    db.session.remove()
    db.engine.dispose()
    shell(target.pg_restart)
    poll(lambda: _pg_answers(stage.database_url), 60, "PostgreSQL to accept connections")
    stage.check("PostgreSQL restarted mid-cascade", True, f"{before} delivery jobs done before")
    statuses = []
    for _ in range(24):
        try:
            statuses.append(requests.get(f"{base}/api/v1/me/inbox", headers=headers, timeout=30).status_code)
        except requests.RequestException:
            statuses.append(0)
    failures = sum(1 for s in statuses if s != 200)
    trace = "".join("." if s == 200 else "x" for s in statuses)
    stage.check("each web process failed at most one request, then answered",
                failures <= 2 and set(statuses[8:]) == {200}, f"requests after the restart: {trace} (x = failed)")
    outcome(stage, nid, timeout=120)
    retried = sum(log.read_text(errors="replace").count("OperationalError")
                  for log in stage.procs.logs.glob("worker-*.log"))
    stage.check("worker jobs met the restart and were retried", True,
                f"{retried} database errors in the worker logs, every job finished all the same")
    return nid


def _pg_answers(url: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=2) as c:
            c.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - still starting
        return False


def scheduler(stage: Stage) -> int:
    """The scheduler is killed just before a publish_at and comes back after it, as two schedulers at once."""
    from federation.audit.chain import AuditEntry
    from federation.extensions import db, utcnow
    from federation.notices.models import Notice

    stage.procs.worker("worker")
    publish_at = utcnow() + timedelta(seconds=6)
    nid = create_notice(publish_at=publish_at)
    first = stage.procs.scheduler("scheduler-1")
    time.sleep(max(0.0, (publish_at - utcnow()).total_seconds() - 2))
    stage.procs.kill(first)
    time.sleep(max(0.0, (publish_at - utcnow()).total_seconds() + 2))
    fresh()
    status = db.session.get(Notice, nid).status
    stage.check("killed before publish_at; nothing published while it was down", status == "scheduled", status)
    stage.procs.scheduler("scheduler-2")
    stage.procs.scheduler("scheduler-3")
    poll(lambda: _status(nid) == "published", 30, "a scheduler to publish the notice", 0.1)
    outcome(stage, nid)
    time.sleep(3)  # both schedulers keep ticking meanwhile: a late second publish would show up here
    fresh()
    published = sum(1 for e in db.session.query(AuditEntry).filter(AuditEntry.kind == "notice.publish")
                    if json.loads(e.data).get("notice_id") == nid)
    stage.check("published exactly once by two schedulers at once", published == 1, f"{published} publish entries")
    return nid


def _status(notice_id: int) -> str:
    from federation.extensions import db
    from federation.notices.models import Notice

    fresh()
    return db.session.get(Notice, notice_id).status


def web_kill(stage: Stage) -> int:
    """Every gunicorn worker is SIGKILLed while a publish request is inside its transaction."""
    import requests

    from devtools.benchmarks.pg import wait_http
    from devtools.benchmarks.world import PASSWORD

    stage.procs.worker("worker")
    web, port = stage.procs.gunicorn(workers=2)
    base = f"http://127.0.0.1:{port}"
    r = requests.post(f"{base}/api/v1/auth/login", json={"tenant": "bench-fed", "login_id": "staff",
                                                         "password": PASSWORD}, timeout=30)
    headers = {"Authorization": f"Bearer {r.json()['token']}"}
    nid = create_notice()
    lock = RowLock(stage.database_url)
    lock.hold("SELECT id FROM notices WHERE id = %s FOR UPDATE", nid)  # the publish request waits on this row
    answer: dict[str, Any] = {}

    def request() -> None:
        try:
            answer["status"] = requests.post(f"{base}/api/v1/tenants/bench-fed/notices/{nid}/publish",
                                             headers=headers, timeout=60).status_code
        except requests.RequestException as exc:
            answer["error"] = type(exc).__name__

    thread = threading.Thread(target=request)
    try:
        thread.start()
        try:
            poll(lambda: _waiting_on_lock(lock), 30, "the publish request to reach the database")
        except Aborted as exc:
            # Say where the request was instead: its answer if it came back, and what each session was doing.
            sessions = lock.activity("state, wait_event_type, wait_event, left(query, 60)")
            raise Aborted(f"{exc}; client: {answer}; sessions: {sessions}") from None
        killed = children(web.pid)
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
    finally:
        lock.release()
    thread.join(60)
    stage.check("client got an error, not a false success", "error" in answer or answer.get("status", 0) >= 500,
                f"{len(killed)} web workers killed; client saw {answer}")
    status = _status(nid)
    from federation.audit.chain import AuditEntry, verify
    from federation.extensions import db

    fresh()
    publishes = sum(1 for e in db.session.query(AuditEntry).filter(AuditEntry.kind == "notice.publish")
                    if json.loads(e.data).get("notice_id") == nid)
    stage.check("nothing half-written: still a draft, no publish entry, chain whole",
                status == "draft" and publishes == 0 and verify().ok, f"status {status}, {publishes} publish entries")
    wait_http(f"{base}/healthz")
    retry = requests.post(f"{base}/api/v1/tenants/bench-fed/notices/{nid}/publish", headers=headers, timeout=60)
    stage.check("the retried request succeeds", retry.status_code == 202, str(retry.status_code))
    outcome(stage, nid)
    return nid


def _waiting_on_lock(lock: RowLock) -> bool:
    return bool(lock.activity("pid", "wait_event_type = 'Lock'"))


# --- running them ----------------------------------------------------------------------------------------------------

@contextmanager
def staged(scenario: str, report: Report, target: Target) -> Iterator[Stage]:
    from devtools.benchmarks import pg
    from devtools.benchmarks.world import build
    from devtools.local_push import LocalPushService
    from federation.extensions import db
    from federation.push import vapid

    pg.ADMIN_URL, pg.REDIS_URL = target.database_url, target.redis_url
    with pg.scratch_app(f"musubi_fault_{scenario.replace('-', '_')}", redis=True) as scratch:
        from flask import current_app

        settings = current_app.config["MUSUBI"]
        vapid.forget()
        vapid.generate(settings.vapid_file)
        build(unions=UNIONS, members=MEMBERS, opted_in_share=0.7, progress=False)
        url = str(db.engine.url.render_as_string(hide_password=False))
        procs = Processes(scratch.tmp)
        try:
            with LocalPushService() as push:
                stage = Stage(scenario, report, url, target.redis_url, procs, push)
                _give_devices(stage)
                yield stage
        finally:
            procs.stop_all()
            db.session.remove()
            db.engine.dispose()
            vapid.forget()


def run_faults(scenarios: tuple[str, ...] = ()) -> int:
    names = SCENARIOS if not scenarios or "all" in scenarios else scenarios
    for name in names:
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; one of {', '.join(SCENARIOS)}")
    target = Target.from_env()
    _check_target(target)
    # Short waits so a drill recovers in seconds; the same code paths as the production defaults.
    os.environ.update(MUSUBI_CASCADE_CHUNK=str(CHUNK), MUSUBI_SCHEDULER_TICK_SECONDS="1",
                      MUSUBI_STUCK_CASCADE_SECONDS="3", MUSUBI_RESUME_CASCADE_SECONDS="8",
                      SECRET_KEY=os.environ.get("SECRET_KEY") or "fault-drill-secret-key-0123456789")
    report = Report()
    click.echo(f"fault drills on {_where(target.database_url)} and {_where(target.redis_url)}: "
               f"{UNIONS} unions, {MEMBERS:,} members, {DEVICES} devices, {CHUNK} unions per delivery job")
    started = time.monotonic()
    for name in names:
        click.echo(f"{name}:")
        t0 = time.monotonic()
        try:
            with staged(name, report, target) as stage:
                run = {"worker-kill": lambda: worker_kill(stage),
                       "redis-restart": lambda: redis_restart(stage, target),
                       "pg-restart": lambda: pg_restart(stage, target),
                       "scheduler": lambda: scheduler(stage),
                       "web-kill": lambda: web_kill(stage)}[name]
                run()
        except Aborted as exc:
            report.check(name, "scenario ran to the end", False, str(exc))
        except Exception as exc:  # noqa: BLE001 - one broken drill is a failed check, the others still run
            report.check(name, "scenario ran to the end", False, f"{type(exc).__name__}: {str(exc)[:300]}")
        click.echo(f"  ({time.monotonic() - t0:.0f} s)")
    passed = len(report.results) - report.failed
    click.echo(f"summary: {passed}/{len(report.results)} checks passed in {len(names)} scenarios "
               f"({time.monotonic() - started:.0f} s)" + (f"; {report.failed} FAILED" if report.failed else ""))
    return 1 if report.failed else 0


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.split('+')[0]}://{parts.hostname}:{parts.port}"


def _check_target(target: Target) -> None:
    import psycopg
    from redis import Redis

    try:
        with psycopg.connect(target.database_url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - reported as one line by the CLI
        raise ValueError(f"cannot reach PostgreSQL at {_where(target.database_url)}: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    try:
        Redis.from_url(target.redis_url, socket_connect_timeout=5).ping()
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"cannot reach Redis at {_where(target.redis_url)}: {exc}") from None
