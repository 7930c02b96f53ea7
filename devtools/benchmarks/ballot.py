"""ballot: 10,000 voters cast on one ballot with 5 options through gunicorn on PostgreSQL (50 at a time), then the
close, the trustees' decryption, the tally, and `ballot verify` of the whole board on one core.

The floor is the group arithmetic itself: the cost of one variable-base and one fixed-base scalar multiplication
on Ed25519 (libsodium), measured in the same run, times the number of each that checking the board's proofs needs.
"""
from __future__ import annotations

import http.client
import json
import secrets
import threading
import time
from datetime import timedelta

from devtools.bench import SuiteResult, percentile
from devtools.benchmarks import pg

CONCURRENCY = 50
PACED_RATE = 100  # casts per second, all voters together
OPTIONS = 5


def _floor_us(n: int = 2000) -> tuple[float, float]:
    from federation.ballots import crypto

    s = crypto.random_scalar()
    p = crypto.base(crypto.random_scalar())
    t0 = time.perf_counter()
    for _ in range(n):
        crypto.mul(s, p)
    var = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        crypto.base(s)
    fixed = (time.perf_counter() - t0) / n * 1e6
    return var, fixed


def _cast_all(port: int, path: str, tokens: list[str], choices: list[int],
              interval: float = 0.0) -> tuple[list[float], int]:
    """Every token casts once, CONCURRENCY voters at a time; with `interval`, each voter sends at most one cast per
    interval (an open-loop pace), else back to back (the server's saturation)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    work = iter(range(len(tokens)))
    rng = secrets.SystemRandom()

    def voter() -> None:
        nonlocal errors
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        bad = 0
        next_at = time.perf_counter() + rng.random() * interval
        while True:
            if interval:
                time.sleep(max(0.0, next_at - time.perf_counter()))
                next_at += interval
            with lock:
                i = next(work, None)
            if i is None:
                break
            body = json.dumps({"choices": [choices[i]]})
            t0 = time.perf_counter()
            conn.request("POST", path, body=body, headers={"Authorization": f"Bearer {tokens[i]}",
                                                           "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            mine.append((time.perf_counter() - t0) * 1000)
            bad += resp.status != 201
        conn.close()
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=voter) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors


def run(scale: float = 1.0) -> SuiteResult:
    from sqlalchemy import insert, select

    from devtools.benchmarks.world import build
    from federation.auth.models import AuthSession
    from federation.auth.service import token_hash
    from federation.ballots import crypto, service
    from federation.ballots.verify import verify_board
    from federation.extensions import db, utcnow
    from tenants import service as ts
    from tenants.models import Tenant, User

    voters = max(200, int(10_000 * scale))
    result = SuiteResult("ballot")
    with pg.scratch_app("musubi_bench_ballot") as scratch:
        build(unions=1, members=voters, progress=False)
        union = db.session.execute(select(Tenant).where(Tenant.slug == "bench-u0000")).scalar_one()
        officer = ts.user_in(union, "100000")
        ts.grant_role(union, officer, "election_officer", None, actor="operator:bench")
        now = utcnow()
        ballot = service.create(union, officer, {
            "title": "ベンチ役員選挙", "kind": "election", "options": [{"label": f"候補{i}"} for i in range(OPTIONS)],
            "choose": {"min": 1, "max": 1}, "electorate": {"all": True}, "opens_at": now,
            "closes_at": now + timedelta(days=1)})
        keys = [crypto.new_trustee_key() for _ in range(2)]
        for i, key in enumerate(keys):
            service.add_trustee(ballot, union, "operator:bench", f"trustee{i}", crypto.hx(key.public),
                                crypto.prove_key(key, service.key_context(ballot, union)))
        t0 = time.perf_counter()
        service.open_ballot(ballot, union, officer)
        result.add("open: freeze the roll", time.perf_counter() - t0, "s")
        users = list(db.session.execute(select(User.id).where(User.tenant_id == union.id).order_by(User.id))
                     .scalars())
        tokens = [secrets.token_urlsafe(24) for _ in users]
        db.session.execute(insert(AuthSession), [
            {"token_hash": token_hash(t), "csrf_token": "bench", "user_id": uid, "created_at": now,
             "expires_at": now + timedelta(hours=6)} for t, uid in zip(tokens, users, strict=True)])
        db.session.commit()
        rng = secrets.SystemRandom()
        choices = [rng.randint(1, OPTIONS) for _ in tokens]
        port = scratch.gunicorn(workers=2, threads=8)
        path = f"/api/v1/tenants/{union.slug}/ballots/{ballot.id}/votes"
        half = len(tokens) // 2
        # Half the voters at a pace of one cast per voter every 0.5 s (100 casts/s from 50 voters), half back to
        # back: the first is the latency a voter sees, the second the throughput the server has.
        paced, paced_errors = _cast_all(port, path, tokens[:half], choices[:half], interval=CONCURRENCY / PACED_RATE)
        result.add(f"cast p95, {CONCURRENCY} voters at {PACED_RATE} casts/s", percentile(paced, 95), "ms",
                   "<= 100 ms", None, percentile(paced, 95) <= 100)
        result.add("cast p50, paced", percentile(paced, 50), "ms")
        t0 = time.perf_counter()
        latencies, errors = _cast_all(port, path, tokens[half:], choices[half:])
        wall = time.perf_counter() - t0
        result.add(f"cast p95, {CONCURRENCY} voters back to back", percentile(latencies, 95), "ms")
        result.add("casts per second, back to back", len(latencies) / wall, "/s")
        result.add("cast errors", errors + paced_errors, "", "0", None, errors + paced_errors == 0)
        db.session.expire_all()
        ballot = service.by_slug(union.slug, ballot.id)[1]
        t0 = time.perf_counter()
        service.close(ballot, union, "operator:bench")
        result.add("close: the encrypted tally", time.perf_counter() - t0, "s")
        t0 = time.perf_counter()
        for i, key in enumerate(keys):
            service.add_decryption(ballot, union, "operator:bench", f"trustee{i}",
                                   crypto.partial_decryption(key, service.sums_of(ballot), ballot.fingerprint))
        service.tally(ballot, union, "operator:bench")
        result.add("decrypt and tally", time.perf_counter() - t0, "s")
        counts = service.result(ballot)["options"]
        expected = [choices.count(i) for i in range(1, OPTIONS + 1)]
        result.add("tally matches the choices sent", 100.0 * ([o["votes"] for o in counts] == expected), "%",
                   "100 %", None, [o["votes"] for o in counts] == expected)
        board = service.board(ballot, union)
        var_us, fixed_us = _floor_us()
        t0 = time.perf_counter()
        report = verify_board(board)
        verify_s = time.perf_counter() - t0
        # Checking one ballot: per option, 2 branches of (3 variable-base + 2 fixed-base) multiplications; the
        # overall proof, 1 branch (choose 1..1) of the same. Plus the decryption proofs (negligible: per option).
        branches = len(report.counts or []) * 2 + 1
        floor_s = len(board["items"]) * branches * (3 * var_us + 2 * fixed_us) / 1e6
        result.add(f"verify {len(board['items']):,} ballots (one core)", verify_s, "s", "<= 60 s at 10,000",
                   floor_s, report.ok and (verify_s <= 60 or voters < 10_000))
        result.notes.append(f"{voters:,} voters, {OPTIONS} options; scalar multiplication {var_us:.1f} µs "
                            f"(variable base), {fixed_us:.1f} µs (fixed base); verify ok: {report.ok}")
    return result
