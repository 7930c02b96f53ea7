"""load: 2,000 members read and react while the federation publishes, on PostgreSQL with gunicorn and RQ workers,
the members simulated by a second process. Reports throughput, p95 and errors, and proves nothing was lost: every
member ends up seeing every notice, and every stamp the clients saw accepted is in the database."""
from __future__ import annotations

import hashlib
import json
import secrets
import subprocess
import sys
import time
from datetime import timedelta

from federation.bench import SuiteResult
from federation.benchmarks import pg

NOTICES = 5
SECONDS = 20.0
CLIENT_THREADS = 16


def run(scale: float = 1.0) -> SuiteResult:
    from sqlalchemy import func, select

    from federation.auth.models import AuthSession
    from federation.benchmarks.world import build
    from federation.extensions import db, utcnow
    from federation.notices.models import Delivery, Receipt
    from tenants.models import User

    result = SuiteResult("load")
    members = max(100, int(2000 * scale))
    with pg.scratch_app("musubi_bench_load", redis=True) as scratch:
        world = build(unions=max(5, members // 10), members=members, opted_in_share=1.0, progress=False)
        # Sessions are written directly: signing 2,000 people in through Argon2 is not what this suite measures.
        users = db.session.execute(select(User.id, User.login_id).where(User.tenant_id.in_(world.union_ids))).all()
        tokens = []
        for uid, _login in users:
            token = secrets.token_urlsafe(32)
            db.session.add(AuthSession(token_hash=hashlib.sha256(token.encode()).hexdigest(), csrf_token="x",
                                       user_id=uid, expires_at=utcnow() + timedelta(hours=2)))
            tokens.append(token)
        staff = db.session.execute(select(User.id).where(User.tenant_id == world.federation_id,
                                                         User.login_id == "staff")).scalar_one()
        staff_token = secrets.token_urlsafe(32)
        db.session.add(AuthSession(token_hash=hashlib.sha256(staff_token.encode()).hexdigest(), csrf_token="x",
                                   user_id=staff, expires_at=utcnow() + timedelta(hours=2)))
        db.session.commit()
        for i in range(2):
            scratch.spawn(["cli.py", "worker"], f"worker{i}")
        port = scratch.gunicorn(2, 4)
        token_file = scratch.tmp / "tokens"
        token_file.write_text("\n".join(tokens))
        out = subprocess.run([sys.executable, "-m", "federation.benchmarks.load_client", "--port", str(port),
                              "--tokens", str(token_file), "--staff", staff_token, "--notices", str(NOTICES),
                              "--seconds", str(SECONDS), "--threads", str(CLIENT_THREADS)],
                             capture_output=True, text=True, check=True)
        report = json.loads(out.stdout)
        # Let the last cascade finish, then count what the database holds.
        deadline = time.time() + 60
        expected = NOTICES * len(world.union_ids)
        while time.time() < deadline:
            db.session.expire_all()
            done = db.session.execute(select(func.count()).select_from(Delivery)).scalar_one()
            if done >= expected:
                break
            time.sleep(0.2)
        deliveries = db.session.execute(select(func.count()).select_from(Delivery)).scalar_one()
        stamps = db.session.execute(select(func.count()).select_from(Receipt).where(
            Receipt.reaction.is_not(None))).scalar_one()
        reads = db.session.execute(select(func.count()).select_from(Receipt).where(
            Receipt.read_at.is_not(None))).scalar_one()
        result.add("requests per second (read, mark read, stamp)", report["rps"], "/s", "reported")
        result.add("p95 latency", report["p95_ms"], "ms", "reported")
        result.add("errors", float(report["errors"]), "", "0", None, report["errors"] == 0)
        result.add("deliveries written / expected", float(deliveries), "", f"= {expected}", float(expected),
                   deliveries == expected)
        result.add("stamps in the database / accepted by the server", float(stamps), "",
                   "= accepted", float(report["stamps_ok"]), stamps == report["stamps_ok"])
        result.notes.append(f"{len(tokens)} members in {len(world.union_ids)} unions, {CLIENT_THREADS} client "
                            f"threads for {SECONDS:.0f} s while the federation published {NOTICES} notices; "
                            f"{report['requests']} requests, reads marked {reads}, notices published "
                            f"{report['published']} (answers {report['publish_answers']})")
    return result
