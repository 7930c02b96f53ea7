"""push: one federation notice to 200,000 subscriptions at the local push service, end to end through RQ workers.

Measured: from the publish call to the moment the local push service accepted the last push of the notice (its own
clock stamps each push it answers 201), with the jobs run by real `musubi worker` processes on Redis: the cascade
writes the deliveries, push_deliveries queues the batches, send_batch encrypts and posts. Once with one worker and
once with two, against the floor of pywebpush's encryption of the same payload for every subscription, on one core,
in the same run. The push service runs in its own process (its CPU is not counted, but it shares the machine);
nothing is lost: the pushes the service accepted, the sends recorded in the database and the subscriptions are
counted and compared.

Database: a scratch SQLite file, or a scratch PostgreSQL database when MUSUBI_BENCH_DATABASE_URL is set (as the
other suites); Redis: MUSUBI_BENCH_REDIS_URL (default db 14, flushed). MUSUBI_BENCH_PUSH_PROFILE=1 (or a file name to
keep the profile in) adds a third, unscored run with one worker under cProfile and notes where its time went.
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devtools.bench import SuiteResult
from devtools.benchmarks import pg

SUBSCRIPTIONS = 200_000
DEVICES_PER_MEMBER = 2
MEMBERS_PER_UNION = 200
WAIT_LIMIT = 600.0  # seconds without the last push arriving: the run has failed


class PushService:
    """The local push service in a process of its own, asked for its tally over a pipe."""

    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "devtools.local_push", "--no-decrypt", "--asyncio",
                                      "--quiet", "--control", "--subscriptions", str(count)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=Path(__file__).resolve().parents[2])
        self.count = count
        assert self.proc.stdout is not None
        self.origin = self.proc.stdout.readline().strip()

    def subscriptions(self) -> list[dict[str, Any]]:
        assert self.proc.stdout is not None
        return [json.loads(self.proc.stdout.readline()) for _ in range(self.count)]

    def ask(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@contextlib.contextmanager
def _scratch() -> Iterator[pg.Scratch]:
    """PostgreSQL when the bench is pointed at one, else a SQLite file (the embedded default); Redis either way."""
    if os.environ.get("MUSUBI_BENCH_DATABASE_URL"):
        with pg.scratch_app("musubi_bench_push", redis=True) as scratch:
            yield scratch
        return
    from devtools.bench import scratch_env

    scratch: pg.Scratch | None = None
    with tempfile.TemporaryDirectory(prefix="musubi-bench-") as tmp:
        try:
            scratch_env(Path(tmp), None, pg.REDIS_URL)
            pg.flush_redis()
            import sqlite3

            # Two workers write their sends while others read: WAL lets the readers go on (a property of the file).
            with contextlib.closing(sqlite3.connect(Path(tmp) / "bench.db")) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
            from federation import create_app
            from federation.database import upgrade

            app = create_app()
            scratch = pg.Scratch(Path(tmp))
            with app.app_context():
                upgrade()
                yield scratch
                from federation.extensions import db

                db.session.remove()
                db.engine.dispose()
        finally:
            if scratch is not None:
                pg.stop(scratch.procs)


def run(scale: float = 1.0) -> SuiteResult:
    result = SuiteResult("push")
    count = max(40, int(SUBSCRIPTIONS * scale))
    members = max(20, count // DEVICES_PER_MEMBER)
    unions = max(2, members // MEMBERS_PER_UNION)
    count = members // unions * unions * DEVICES_PER_MEMBER  # every member of every union has the same devices
    service = PushService(count)  # generates its subscriptions while the world is written
    try:
        with _scratch() as scratch:
            _run(result, scratch, service, unions, members, count)
    finally:
        service.stop()
    return result


def _run(result: SuiteResult, scratch: pg.Scratch, service: PushService, unions: int, members: int,
         count: int) -> None:
    from flask import current_app

    from devtools.benchmarks.world import build
    from federation.extensions import db
    from federation.push import vapid

    engine = db.engine.dialect.name
    t0 = time.perf_counter()
    world = build(unions=unions, members=members, opted_in_share=1.0)
    vapid.generate(current_app.config["MUSUBI"].vapid_file)
    subs = service.subscriptions()
    _seed(world, subs)
    if engine == "postgresql":
        from devtools.benchmarks.cascade import _vacuum

        _vacuum()
    result.notes.append(f"world: {unions} unions, {members:,} members, {count:,} subscriptions "
                        f"({DEVICES_PER_MEMBER} per member), {engine}, written in {time.perf_counter() - t0:.1f} s")

    notices = {k: _draft(world, f"一斉連絡 ({k})") for k in ("w1", "w2", "profile")}
    from federation.notices.models import Notice
    from federation.push.sender import payload

    body = payload(db.session.get(Notice, notices["w1"]), "notice")
    floor = _encryption_floor(subs, body)
    result.notes.append(f"floor: pywebpush encryption of the {len(body)}-byte payload for each of the {count:,} "
                        f"subscriptions, one core, {floor:,.0f} per CPU-second")

    aio, ours = _http_costs(service, subs[:4000], body)
    result.add("HTTP alone: aiohttp posts per CPU-second", aio, "/s", "reported", floor, None)
    result.add("HTTP alone: the sender's client (push/http.py) posts per CPU-second", ours, "/s", "reported", floor,
               None)
    result.notes.append(f"HTTP alone, {min(count, 4000):,} pre-encrypted pushes over 32 keep-alive connections in this "
                        f"process: aiohttp {1e6 / aio:.0f} µs each, the sender's client {1e6 / ours:.0f} µs "
                        f"(against the encryption's {1e6 / floor:.0f} µs)")

    runs: dict[int, dict[str, Any]] = {}
    for workers, key in ((1, "w1"), (2, "w2")):
        runs[workers] = _phase(scratch, service, world, workers, notices[key], count)
    for workers, r in runs.items():
        per_core_wall = r["rate"] / workers
        result.add(f"{workers} worker{'s' if workers > 1 else ''}: pushes/s publish → last accepted",
                   r["rate"], "/s", "reported", None, None)
        result.add(f"{workers} worker{'s' if workers > 1 else ''}: per worker core (wall)", per_core_wall, "/s",
                   "≥ 0.7x floor", floor, per_core_wall >= 0.7 * floor)
        result.add(f"{workers} worker{'s' if workers > 1 else ''}: per worker CPU-second", r["per_cpu"], "/s",
                   "≥ 0.7x floor", floor, r["per_cpu"] >= 0.7 * floor)
        result.notes.append(f"{workers} worker{'s' if workers > 1 else ''}: {r['summary']}")
        result.notes.append(f"{workers} worker{'s' if workers > 1 else ''}: CPU {r['cpu']}")
    scaling = runs[2]["rate"] / runs[1]["rate"]
    result.add("2 workers against 1 (pushes/s)", scaling, "x", "≥ 1.8x", None, scaling >= 1.8)
    lost = sum(r["lost"] for r in runs.values())
    result.add("pushes lost (subscriptions − accepted, both runs)", lost, "", "0", None, lost == 0)
    if os.environ.get("MUSUBI_BENCH_PUSH_PROFILE"):
        profiled = _phase(scratch, service, world, 1, notices["profile"], count, profile=True)
        result.notes.append(f"profiled run (1 worker under cProfile, not scored): {profiled['summary']}")
        result.notes.append("profile of that worker: " + profiled["profile"])


# --- the world ------------------------------------------------------------------------------------------------------

def _seed(world, subs: list[dict[str, Any]]) -> None:  # type: ignore[no-untyped-def]
    """Every member of every union gets DEVICES_PER_MEMBER of the service's subscriptions, as if they had
    subscribed from their browsers (bulk insert: the API would take hours)."""
    from sqlalchemy import insert, select

    from federation.extensions import db, utcnow
    from federation.push.records import PushSubscription
    from tenants.models import User

    users = db.session.execute(select(User.id, User.tenant_id).where(User.tenant_id.in_(world.union_ids))
                               .order_by(User.id)).all()
    now = utcnow()
    rows = []
    for i, sub in enumerate(subs):
        user_id, tenant_id = users[i // DEVICES_PER_MEMBER]
        rows.append({"user_id": user_id, "tenant_id": tenant_id, "endpoint": sub["endpoint"],
                     "p256dh": sub["keys"]["p256dh"], "auth": sub["keys"]["auth"], "created_at": now})
        if len(rows) >= 20_000:
            db.session.execute(insert(PushSubscription), rows)
            rows = []
    if rows:
        db.session.execute(insert(PushSubscription), rows)
    db.session.commit()


def _staff(world):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from federation.auth.service import subject_of
    from federation.extensions import db
    from tenants.models import Tenant, User

    fed = db.session.get(Tenant, world.federation_id)
    staff = db.session.execute(select(User).where(User.tenant_id == fed.id, User.login_id == "staff")).scalar_one()
    return fed, staff, subject_of(staff)


def _draft(world, title: str, unions: list[str] | None = None) -> int:  # type: ignore[no-untyped-def]
    from federation.notices import service as ns

    fed, staff, subject = _staff(world)
    audience = {"unions": unions} if unions else {"all": True}
    notice = ns.create_notice(fed, staff, subject, {
        "title": title, "body": "組合員の皆さんへ。本日の団体交渉の結果をお知らせします。" * 3,
        "category": "urgent", "audience": audience})
    return notice.id


def _publish(world, notice_id: int) -> None:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from federation.notices import service as ns
    from federation.notices.models import Notice

    _, _, subject = _staff(world)
    ns.publish_now(db.session.get(Notice, notice_id), subject)


# --- the floor ------------------------------------------------------------------------------------------------------

def _encryption_floor(subs: list[dict[str, Any]], body: bytes) -> float:
    """pywebpush's encryption of the payload for every subscription (a fresh ephemeral key each, RFC 8291), per
    CPU-second of this one thread."""
    from pywebpush import WebPusher

    c0 = time.thread_time()
    for sub in subs:
        WebPusher(sub).encode(body, "aes128gcm")
    return len(subs) / (time.thread_time() - c0)


def _http_costs(service: PushService, subs: list[dict[str, Any]], body: bytes) -> tuple[float, float]:
    """Posts per CPU-second of this thread for the HTTP part alone (bodies encrypted beforehand), through aiohttp as
    the sender used to post, and through the sender's own client (push/http.py): how much of a push the HTTP
    part costs against its encryption."""
    import asyncio
    import tempfile
    from urllib.parse import urlsplit

    import aiohttp
    from pywebpush import WebPusher

    from federation.push import vapid

    with tempfile.TemporaryDirectory() as tmp:
        vapid.generate(Path(tmp) / "vapid.json")
        keys = vapid.VapidKeys.load(Path(tmp) / "vapid.json", "mailto:bench@musubi.invalid")
    bodies = [WebPusher(sub).encode(body, "aes128gcm")["body"] for sub in subs]
    headers = {"TTL": "3600", "Urgency": "high", "Topic": "http",
               "Authorization": keys.authorization_for(service.origin), "Content-Encoding": "aes128gcm",
               "Content-Type": "application/octet-stream"}
    origin = urlsplit(service.origin)

    async def with_aiohttp() -> float:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
            gate = asyncio.Semaphore(32)

            async def one(i: int) -> None:
                async with gate, session.post(subs[i]["endpoint"], data=bodies[i], headers=headers,
                                              allow_redirects=False) as resp:
                    await resp.read()

            c0 = time.thread_time()
            await asyncio.gather(*(one(i) for i in range(len(subs))))
            return len(subs) / (time.thread_time() - c0)

    async def ours() -> float:
        from federation.push.addresses import parse_networks
        from federation.push.http import Origin, PushHTTP, request_head, request_path

        client = PushHTTP(30, parse_networks("127.0.0.1"))
        where = Origin.of(origin)
        head = request_head(where, headers)
        targets = [request_path(urlsplit(sub["endpoint"]).path, "") for sub in subs]
        todo = iter(range(len(subs)))

        async def lane() -> None:
            for i in todo:
                await client.post(where, targets[i], head, bodies[i])

        c0 = time.thread_time()
        await asyncio.gather(*(lane() for _ in range(32)))
        spent = time.thread_time() - c0
        await client.close()
        return len(subs) / spent

    return asyncio.run(with_aiohttp()), asyncio.run(ours())


# --- one run --------------------------------------------------------------------------------------------------------

def _phase(scratch: pg.Scratch, service: PushService, world, workers: int, notice_id: int,  # type: ignore[no-untyped-def]
           count: int, profile: bool = False) -> dict[str, Any]:
    from devtools.benchmarks.cascade import _wait_for_workers

    procs = []
    connections_before = service.ask("stats")["connections"]["accepted"]
    prof_file = scratch.tmp / f"worker-{notice_id}.prof"
    for i in range(workers):
        args = ["cli.py", "worker"]
        if profile:
            args = ["-m", "devtools.benchmarks.profiled_worker", str(prof_file)]
        procs.append(scratch.spawn(args, f"worker{workers}-{i}"))
    try:
        _wait_for_workers(workers)
        # Workers in production have been running a while (policy loaded, connections open): a small notice to
        # two unions per worker first, through the same path.
        _warm(world, service, workers)
        service.ask("reset")
        cpu0 = _cpu(procs, service)
        w0 = time.time()
        _publish(world, notice_id)
        stats = _wait_for(service, f"n{notice_id}", count)
        cpu1 = _cpu(procs, service)
        wall_end = time.time()
    finally:
        pg.stop(procs)
        for p in procs:
            scratch.procs.remove(p)
    topic = stats["topics"].get(f"n{notice_id}", {"accepted": 0, "devices": 0, "last": w0, "first": w0})
    elapsed = (topic["last"] or wall_end) - w0
    sent = _sends_recorded(notice_id)
    worker_cpu = sum(cpu1["workers"][i] - cpu0["workers"][i] for i in range(workers))
    split = {k: cpu1[k] - cpu0[k] for k in cpu1 if k != "workers"}
    busy = split.pop("machine")
    window = wall_end - w0
    cores = os.cpu_count() or 1
    postgres = f", PostgreSQL (every backend on the host) {split['postgres']:.2f} s" if "postgres" in split else ""
    cpu = (f"over {window:.2f} s wall ({cores * window:.2f} core-seconds on this host): workers {worker_cpu:.2f} s, "
           f"push service {split['service']:.2f} s, Redis {split['redis']:.2f} s, bench process "
           f"{split['bench']:.2f} s{postgres}; the whole host was busy {busy:.2f} core-seconds (other users "
           "included)")
    out = {"rate": topic["devices"] / elapsed if elapsed > 0 else 0.0,
           "per_cpu": topic["devices"] / worker_cpu if worker_cpu > 0 else 0.0,
           "lost": count - topic["devices"], "cpu": cpu,
           "summary": (f"{topic['devices']:,} of {count:,} subscriptions accepted by the push service "
                       f"({topic['accepted']:,} pushes, none twice: {topic['accepted'] == topic['devices']}), "
                       f"{sent:,} sends recorded; publish → first accepted {(topic['first'] or w0) - w0:.2f} s, → "
                       f"last {elapsed:.2f} s; rejected {stats['rejected'] or 'none'}; connections the workers opened "
                       f"{stats['connections']['accepted'] - connections_before} (warm-up included); "
                       + _job_phases())}
    if profile:
        out["profile"] = _profile_summary(prof_file)
        kept = os.environ["MUSUBI_BENCH_PUSH_PROFILE"]
        if kept not in ("1", "yes", "true"):
            import shutil

            shutil.copy(prof_file, kept)  # a path: keep the profile for pstats or snakeviz
    return out


def _warm(world, service: PushService, workers: int) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from federation.extensions import db
    from tenants.models import Tenant

    slugs = list(db.session.execute(select(Tenant.slug).where(Tenant.id.in_(world.union_ids[:2 * workers])))
                 .scalars())
    warm = _draft(world, "接続確認", unions=slugs)
    _publish(world, warm)
    expected = len(slugs) * len(_members_of(world.union_ids[0])) * DEVICES_PER_MEMBER
    _wait_for(service, f"n{warm}", expected, limit=120)
    _wait_idle()
    _clear_finished()


def _wait_idle(timeout: float = 60) -> None:
    """Until the queue is empty and no job runs (the warm-up's last batch records its sends after its pushes)."""
    from redis import Redis
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from federation.jobs import QUEUE_NAME

    queue = Queue(QUEUE_NAME, connection=Redis.from_url(pg.REDIS_URL))
    end = time.monotonic() + timeout
    while time.monotonic() < end and (queue.count or len(StartedJobRegistry(queue=queue))):
        time.sleep(0.02)


def _members_of(union_id: int) -> list[int]:
    from sqlalchemy import select

    from federation.extensions import db
    from tenants.models import User

    return list(db.session.execute(select(User.id).where(User.tenant_id == union_id)).scalars())


def _wait_for(service: PushService, topic: str, expected: int, limit: float = WAIT_LIMIT) -> dict[str, Any]:
    """Poll the push service until `expected` devices have the topic; stop when nothing arrives for `limit` s."""
    last_progress, seen = time.monotonic(), -1
    while True:
        stats = service.ask("stats")
        got = stats["topics"].get(topic, {}).get("devices", 0)
        if got >= expected:
            return stats
        if got != seen:
            seen, last_progress = got, time.monotonic()
        elif time.monotonic() - last_progress > limit:
            return stats  # reported as lost
        time.sleep(0.02)


def _sends_recorded(notice_id: int) -> int:
    from sqlalchemy import func, select

    from federation.extensions import db
    from federation.push.records import PushSend

    db.session.rollback()
    return db.session.execute(select(func.count()).select_from(PushSend).where(
        PushSend.notice_id == notice_id, PushSend.kind == "notice")).scalar_one()


def _clear_finished() -> None:
    from devtools.benchmarks.cascade import _clear_finished as clear

    clear()


def _job_phases() -> str:
    """RQ's own stamps on the finished jobs of the run: how long they waited and ran."""
    from redis import Redis
    from rq import Queue
    from rq.registry import FailedJobRegistry, FinishedJobRegistry

    from federation.jobs import QUEUE_NAME

    conn = Redis.from_url(pg.REDIS_URL)
    queue = Queue(QUEUE_NAME, connection=conn)
    jobs = [j for j in queue.job_class.fetch_many(FinishedJobRegistry(queue=queue).get_job_ids(), connection=conn)
            if j is not None and j.started_at and j.ended_at and j.enqueued_at]
    parts = []
    for kind in ("start_cascade", "deliver_chunk", "push_deliveries", "send_batch"):
        mine = [j for j in jobs if j.func_name.endswith(kind)]
        if not mine:
            continue
        run = [(j.ended_at - j.started_at).total_seconds() for j in mine]
        wait = [(j.started_at - j.enqueued_at).total_seconds() for j in mine]
        parts.append(f"{kind} ×{len(mine)} ran {min(run):.3f}-{max(run):.3f} s (sum {sum(run):.2f} s), "
                     f"waited up to {max(wait):.2f} s")
    failed = len(FailedJobRegistry(queue=queue))
    _clear_finished()
    return "jobs: " + "; ".join(parts) + f"; failed jobs {failed}"


# --- CPU accounting -------------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def _cpu(procs: list[subprocess.Popen], service: PushService) -> dict[str, Any]:
    from redis import Redis

    info = Redis.from_url(pg.REDIS_URL).info("cpu")
    out: dict[str, Any] = {"workers": [_proc_cpu(p.pid) for p in procs], "service": _proc_cpu(service.proc.pid),
                           "redis": float(info["used_cpu_user"]) + float(info["used_cpu_sys"]),
                           "bench": time.process_time()}
    if os.environ.get("MUSUBI_BENCH_DATABASE_URL"):
        out["postgres"] = sum(_proc_cpu(int(d.name)) for d in Path("/proc").iterdir()
                              if d.name.isdigit() and _comm(d) == "postgres")
    stat = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    out["machine"] = (sum(int(v) for v in stat) - int(stat[3]) - int(stat[4])) / _TICK  # all but idle and iowait
    return out


def _comm(d: Path) -> str:
    try:
        return (d / "comm").read_text().strip()
    except OSError:
        return ""


def _profile_summary(path: Path, top: int = 14) -> str:
    import pstats

    if not path.exists():
        return "no profile written"
    stats = pstats.Stats(str(path))
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    return f"{total:.2f} s in all; by own time: " + ", ".join(
        f"{Path(fn).name}:{line} {name} {tt:.2f} s" for (fn, line, name), (_, _, tt, _, _) in rows)
