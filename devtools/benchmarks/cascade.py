"""cascade: one federation notice to 200,000 members in 500 unions, on PostgreSQL with real RQ workers on Redis.

Measured: from the publish call to the moment every member can see the notice in their inbox (every union's
delivery written, checked with the inbox query itself for a sample of members in every union), against the floor of
a raw COPY of 200,000 inbox-sized rows into PostgreSQL in the same run."""
from __future__ import annotations

import io
import random
import time

from devtools.bench import SuiteResult
from devtools.benchmarks import pg

WORKERS = 2


def run(scale: float = 1.0) -> SuiteResult:
    from devtools.benchmarks.world import build

    result = SuiteResult("cascade")
    with pg.scratch_app("musubi_bench_cascade", redis=True) as scratch:
        unions, members = max(5, int(500 * scale)), int(200_000 * scale)
        t0 = time.perf_counter()
        world = build(unions=unions, members=members, opted_in_share=1.0)
        result.notes.append(f"world: {unions} unions, {members:,} members, written in "
                            f"{time.perf_counter() - t0:.1f} s")
        floor = _copy_floor(members)
        for i in range(WORKERS):
            scratch.spawn(["cli.py", "worker"], f"worker{i}")
        time.sleep(2.0)  # let the workers connect before the clock starts
        elapsed, checked = _publish_and_wait(world, members)
        result.add("publish → every member sees it", elapsed, "s", "< 2 s", floor, elapsed < 2)
        result.notes.append(f"floor: COPY of {members:,} rows took {floor:.3f} s; {WORKERS} RQ workers; "
                            f"inbox checked for {checked} members across every union")
    return result


def _copy_floor(rows: int) -> float:
    from federation.extensions import db

    conn = db.engine.raw_connection()
    try:
        cur = conn.cursor()
        cur.execute("CREATE TEMP TABLE copy_floor (notice_id int, user_id int, delivered_at timestamptz)")
        buf = io.StringIO("".join(f"1\t{i}\t2026-01-01 00:00:00+00\n" for i in range(rows)))
        t0 = time.perf_counter()
        with cur.copy("COPY copy_floor (notice_id, user_id, delivered_at) FROM STDIN") as copy:
            copy.write(buf.getvalue())
        conn.commit()
        return time.perf_counter() - t0
    finally:
        conn.close()


def _publish_and_wait(world, members: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from federation.auth.service import subject_of
    from federation.extensions import db
    from federation.notices import inbox
    from federation.notices import service as ns
    from federation.notices.models import Delivery, Notice
    from tenants.models import Tenant, User

    fed = db.session.get(Tenant, world.federation_id)
    staff = db.session.execute(select(User).where(User.tenant_id == fed.id, User.login_id == "staff")).scalar_one()
    subject = subject_of(staff)
    notice = ns.create_notice(fed, staff, subject, {"title": "全組合員への緊急連絡", "body": "本文",
                                                    "category": "urgent", "audience": {"all": True}})
    t0 = time.perf_counter()
    ns.publish_now(notice, subject)
    deadline = t0 + 120
    while time.perf_counter() < deadline:
        db.session.expire_all()
        reached = db.session.execute(select(func.coalesce(func.sum(Delivery.recipients), 0)).where(
            Delivery.notice_id == notice.id, Delivery.for_relay.is_(False))).scalar_one()
        if reached >= members:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    # Proof, not assumption: the inbox query of sampled members in every union returns the notice.
    rng = random.Random(3)
    checked = 0
    for union_id in world.union_ids:
        uid = db.session.execute(select(User.id).where(User.tenant_id == union_id).limit(1)
                                 .offset(rng.randint(0, 50))).scalar_one()
        user = db.session.get(User, uid)
        if inbox.receipt_target(user, subject_of(user), notice.id) is None:
            raise RuntimeError(f"member {uid} of union {union_id} does not see the notice")
        checked += 1
    db.session.get(Notice, notice.id)
    return elapsed, checked
