"""authz: a permission check with 200,000 users and 500 tenants, in process, cache cold and warm, against a plain
dict lookup of the same keys; plus the auditor's exposure (500 unions) and who-can (a 20,000-member union)."""
from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from devtools.bench import SuiteResult, percentile, scratch_env, timed_ns
from federation.firewall.templates import ACTIONS, OBJECTS


def run(scale: float = 1.0) -> SuiteResult:
    result = SuiteResult("authz")
    with tempfile.TemporaryDirectory(prefix="musubi-bench-") as tmp:
        scratch_env(Path(tmp))
        from federation import create_app
        from federation.database import upgrade

        app = create_app()
        with app.app_context():
            upgrade()
            _measure(result, scale)
    return result


def _measure(result: SuiteResult, scale: float) -> None:
    from devtools.benchmarks.world import build
    from federation.audit.queries import exposure, who_can
    from federation.extensions import db
    from federation.firewall import Subject, firewall
    from federation.firewall.models import bump_policy_version
    from tenants.models import Tenant, User

    unions = max(10, int(499 * scale))
    members = int(200_000 * scale)
    big = max(100, int(20_000 * scale))
    t0 = time.perf_counter()
    build(unions=unions, members=members - big, big_union_members=big)
    result.notes.append(f"world: {unions} unions + federation + platform, {members:,} members "
                        f"(one union of {big:,}), built in {time.perf_counter() - t0:.1f} s")
    rng = random.Random(11)
    tenants = [(s, k) for s, k in db.session.execute(select(Tenant.slug, Tenant.kind))]
    slugs = [s for s, _ in tenants]
    users = db.session.execute(select(User.id, User.tenant_id, User.login_id)
                               .order_by(User.id).limit(200_000)).all()
    by_id = {t.id: (t.slug, t.kind) for t in db.session.execute(select(Tenant)).scalars()}
    sample = rng.sample(users, min(20_000, len(users)))
    requests = []
    for uid, tid, login in sample:
        slug, kind = by_id[tid]
        subject = Subject(uid, slug, kind, login, True)
        r = rng.random()
        dom = slug if r < 0.7 else ("bench-fed" if r < 0.85 else rng.choice(slugs))
        requests.append((subject, dom, rng.choice(OBJECTS), rng.choice(ACTIONS)))
    t0 = time.perf_counter()
    bump_policy_version()
    db.session.commit()
    snap = firewall.current()
    load_ms = (time.perf_counter() - t0) * 1000
    result.notes.append(f"policy snapshot load after a change: {load_ms:.1f} ms "
                        f"({sum(len(v) for v in snap.grants.values())} grants, {len(snap.links)} linked unions)")
    it = iter(requests)
    cold = timed_ns(lambda: snap.allowed(*next(it)), len(requests))
    it = iter(requests)
    warm = timed_ns(lambda: snap.allowed(*next(it)), len(requests))
    floor_map = {(s.user_id, d, o, a): True for s, d, o, a in requests}
    keys = list(floor_map)
    it2 = iter(keys)
    floor = timed_ns(lambda: floor_map.get(next(it2)), len(keys))
    f50, f99 = percentile(floor, 50), percentile(floor, 99)
    result.add("warm check p50", percentile(warm, 50), "µs", "", f50)
    result.add("warm check p99", percentile(warm, 99), "µs", "< 20 µs", f99, percentile(warm, 99) < 20)
    result.add("cold check p50", percentile(cold, 50), "µs", "", f50)
    result.add("cold check p99", percentile(cold, 99), "µs", "< 200 µs", f99, percentile(cold, 99) < 200)
    # Casbin itself, per role, for scale: the explainer, not the hot path.
    casbin_sample = requests[:2000]
    mismatches = 0
    casbin_times = []
    for subject, dom, obj, act in casbin_sample:
        roles = snap.roles_of(subject)
        t = time.perf_counter_ns()
        verdict = any(firewall.casbin_allows(role, subject.tenant, dom, obj, act, snapshot=snap)[0]
                      for role in roles)
        casbin_times.append((time.perf_counter_ns() - t) / 1000)
        mismatches += verdict != snap.allowed(subject, dom, obj, act)
    result.add("casbin enforce_ex (all roles) p50", percentile(casbin_times, 50), "µs", "reference", f50)
    result.add("casbin enforce_ex (all roles) p99", percentile(casbin_times, 99), "µs", "reference", f99)
    result.notes.append(f"compiled vs casbin on {len(casbin_sample)} requests: {mismatches} mismatches")
    t0 = time.perf_counter()
    exp = exposure()
    result.add("audit exposure (all unions)", time.perf_counter() - t0, "s", "< 2 s", None,
               time.perf_counter() - t0 < 2)
    result.notes.append(f"exposure: {len(exp['unions'])} unions, {len(exp['crossings'])} crossings")
    big_slug = db.session.execute(select(Tenant.slug).where(Tenant.slug == "bench-u0000")).scalar_one()
    t0 = time.perf_counter()
    who = who_can(big_slug, "notices", "read")
    elapsed = time.perf_counter() - t0
    result.add(f"audit who-can ({big:,}-member union)", elapsed, "s", "< 2 s", None, elapsed < 2)
    result.notes.append(f"who-can: {len(who['users'])} named users, groups {[g['count'] for g in who['groups']]}")
