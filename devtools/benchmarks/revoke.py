"""revoke: a role revoked (or a user suspended) in this process, then the very next request to a gunicorn process
must be denied (F7). The web processes run with the caller cache on, as shipped, so they answer signed-in
requests from memory and the change must reach them before its commit returns; reported: how long a change's
announcement waited for the web processes, and the sign-in query each request would cost without the cache
(with and without the policy-version subquery folded into it)."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from devtools.bench import SuiteResult, percentile
from devtools.benchmarks import pg

ROUNDS = 40


def _get(port: int, path: str, token: str) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _login(port: int, tenant: str, login: str, password: str) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/auth/login", method="POST",
                                 data=json.dumps({"tenant": tenant, "login_id": login, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["token"]


def run(scale: float = 1.0) -> SuiteResult:
    from sqlalchemy import select

    from devtools.benchmarks.world import PASSWORD, build
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Tenant

    result = SuiteResult("revoke")
    with pg.scratch_app("musubi_bench_revoke", caller_cache=True) as scratch:
        build(unions=max(5, int(50 * scale)), members=max(500, int(5000 * scale)), progress=False)
        union = db.session.execute(select(Tenant).where(Tenant.slug == "bench-u0001")).scalar_one()
        editor = ts.user_in(union, "100001")
        port = scratch.gunicorn()
        token = _login(port, union.slug, "100001", PASSWORD)
        path = f"/api/v1/tenants/{union.slug}/members?limit=1"
        right = 0
        from flask import current_app

        bus = current_app.extensions.get("musubi_callers")  # None with MUSUBI_BENCH_CALLER_CACHE=0
        waits: list[float] = []
        if bus is not None:
            announcing = bus.announce

            def timed(keys):  # type: ignore[no-untyped-def]
                t0 = time.perf_counter()
                announcing(keys)
                waits.append((time.perf_counter() - t0) * 1000)

            bus.announce = timed
        _get(port, path, token)  # remembered by a web process before the first change
        for i in range(ROUNDS):
            if i % 2 == 0:
                ts.revoke_role(union, editor, "union_editor", None, actor="operator:bench")
                right += _get(port, path, token) == 403
            else:
                ts.grant_role(union, editor, "union_editor", None, actor="operator:bench")
                right += _get(port, path, token) == 200
        result.add("next request after a grant or revoke, right answer", 100.0 * right / ROUNDS, "%",
                   "100 %", None, right == ROUNDS)
        if waits:
            result.add("a change's announcement, until every web process dropped it, p50", percentile(waits, 50),
                       "ms", "reported", None)
            result.add("a change's announcement, p99", percentile(waits, 99), "ms", "reported", None)
        member_token = _login(port, union.slug, "100007", PASSWORD)
        before = _get(port, "/api/v1/me", member_token)
        ts.set_user_status(union, ts.user_in(union, "100007"), "suspended", actor="operator:bench")
        after = _get(port, "/api/v1/me", member_token)
        result.add("next request after a suspension is 401", 100.0 if (before, after) == (200, 401) else 0.0,
                   "%", "100 %", None, (before, after) == (200, 401))
        _staying_current_cost(result)
        if bus is not None:
            _remembered_cost(result, token)
        result.notes.append(f"caller cache {pg.caller_cache_state()} in this process and the web processes")
    return result


def _remembered_cost(result: SuiteResult, token: str) -> None:
    """What a request pays to know its caller when its process holds the lease: load_caller from memory, in this
    process, against the same call asking the database (the lease withheld)."""
    from flask import current_app

    from federation.auth.service import load_caller

    bus = current_app.extensions["musubi_callers"]
    bus.start()  # this process only announces; its own listener is needed to hold a lease here
    end = time.monotonic() + 10
    while not bus.usable() and time.monotonic() < end:
        time.sleep(0.05)
    memory, database = [], []
    with current_app.test_request_context("/api/v1/me", headers={"Authorization": f"Bearer {token}"}):
        for _ in range(50):
            load_caller()
        for _ in range(2000):
            t0 = time.perf_counter_ns()
            load_caller()
            memory.append((time.perf_counter_ns() - t0) / 1000)
        bus.usable = lambda: False  # as a process without its lease: the database is asked
        for _ in range(2000):
            t0 = time.perf_counter_ns()
            load_caller()
            database.append((time.perf_counter_ns() - t0) / 1000)
        del bus.usable
    bus.stop()
    result.add("knowing the caller from memory (lease held), p50", percentile(memory, 50), "µs", "reported",
               percentile(database, 50))


def _staying_current_cost(result: SuiteResult) -> None:
    """The sign-in query with and without the policy-version subquery, alternating, on the same connection."""
    from sqlalchemy import select

    from federation.auth.models import AuthSession
    from federation.auth.service import _caller_statement
    from federation.extensions import db, utcnow

    # The statement every request runs, and the same statement without the policy version's column.
    with_version = _caller_statement()
    base = with_version.with_only_columns(*(c for c in with_version.selected_columns if c.key != "policy_version"))
    params = {"token_hash": db.session.execute(select(AuthSession.token_hash).limit(1)).scalar_one(),
              "now": utcnow()}
    plain, current = [], []
    for _ in range(50):
        db.session.execute(base, params).first()
        db.session.execute(with_version, params).first()
    for _ in range(2000):
        t0 = time.perf_counter_ns()
        db.session.execute(base, params).first()
        t1 = time.perf_counter_ns()
        db.session.execute(with_version, params).first()
        t2 = time.perf_counter_ns()
        plain.append((t1 - t0) / 1000)
        current.append((t2 - t1) / 1000)
    p50_plain, p50_current = percentile(plain, 50), percentile(current, 50)
    result.add("sign-in query with the policy version, p50", p50_current, "µs", "", p50_plain)
    result.notes.append(f"without the caller cache every signed-in request pays this query; the policy version in "
                        f"it adds {p50_current - p50_plain:.1f} µs at the median. With the cache a web process "
                        f"holding its lease answers from memory, and each change pays the announcement above")
