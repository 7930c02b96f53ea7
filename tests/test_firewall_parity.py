"""The compiled decision path the service answers from (Snapshot.allowed / role_allows, with its decision cache)
gives Casbin's answer, on thousands of random requests over a generated world, before and after the policy changes
through tenants.service; the cache never answers from a stale snapshot; `policy test` passes and fails as it should.

Casbin here is the reference: an enforcer built in this file from policies/model.conf, the p and g lines of
policies/roles.csv, and g2 lines for the tenant links as this test itself recorded them while building the world.
"""
from __future__ import annotations

import csv
import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import casbin
import pytest
from conftest import World
from flask import Flask

PROJECT = Path(__file__).resolve().parent.parent
POLICIES = PROJECT / "policies"
SEED = 20261124
# The SPEC's vocabulary, written out rather than imported from the code under test.
OBJECTS = ("tenant", "units", "members", "roles", "affiliation", "cascade", "notices", "receipts", "stats",
           "documents", "surveys", "applications", "invitations", "policy", "audit")
ACTIONS = ("read", "write", "publish", "deliver", "relay", "approve", "manage")
ROLES = ("platform_admin", "auditor", "fed_admin", "fed_editor", "unit_editor", "union_admin", "union_editor",
         "member")
ACTOR = "operator:parity"


# --- the reference ---------------------------------------------------------------------------------------------

def _policy_lines() -> tuple[list[list[str]], list[list[str]]]:
    p_lines, g_lines = [], []
    with (POLICIES / "roles.csv").open(encoding="utf-8") as fh:
        for row in csv.reader(fh):
            cells = [c.strip() for c in row]
            if not cells or not cells[0] or cells[0].startswith("#"):
                continue
            (p_lines if cells[0] == "p" else g_lines).append(cells[1:])
    return p_lines, g_lines


class Reference:
    """Casbin over the links this test recorded; answers memoised (Casbin takes hundreds of µs a call)."""

    def __init__(self, links: dict[str, set[str]]) -> None:
        p_lines, g_lines = _policy_lines()
        self.enforcer = casbin.Enforcer(str(POLICIES / "model.conf"))
        self.enforcer.add_policies(p_lines)
        self.enforcer.add_named_grouping_policies("g", g_lines)
        g2 = [[union, link] for union, held in links.items() for link in sorted(held)]
        if g2:
            self.enforcer.add_named_grouping_policies("g2", g2)
        self.rule_pairs = sorted({(obj, act) for _, _, obj, act in p_lines})
        self._inherits = g_lines
        self._rules = p_lines
        self._memo: dict[tuple[str, str, str, str, str], bool] = {}

    def role_allows(self, role: str, sdom: str, dom: str, obj: str, act: str) -> bool:
        key = (role, sdom, dom, obj, act)
        if key not in self._memo:
            ok, _ = self.enforcer.enforce_ex(role, sdom, dom, obj, act)
            self._memo[key] = bool(ok)
        return self._memo[key]

    def pairs_for(self, roles: set[str]) -> list[tuple[str, str]]:
        """(object, action) pairs some rule gives to one of these roles or a role they inherit."""
        held, todo = set(roles), list(roles)
        while todo:
            current = todo.pop()
            for child, parent in self._inherits:
                if child == current and parent not in held:
                    held.add(parent)
                    todo.append(parent)
        return sorted({(obj, act) for role, _, obj, act in self._rules if role in held})

    def allows(self, person: Person, dom: str, obj: str, act: str) -> bool:
        return any(self.role_allows(role, person.tenant, dom, obj, act) for role in person.roles())


# --- the generated world, and this test's own record of it ------------------------------------------------------

@dataclass
class Person:
    user_id: int
    tenant: str
    kind: str
    login_id: str
    active: bool = True
    granted: list[tuple[str, int | None]] = field(default_factory=list)

    def roles(self) -> set[str]:
        if not self.active:
            return set()
        held = {role for role, _ in self.granted}
        return held | ({"member"} if self.kind == "union" else set())

    def subject(self):  # type: ignore[no-untyped-def]
        from federation.firewall import Subject

        return Subject(self.user_id, self.tenant, self.kind, self.login_id, self.active)


@dataclass
class Generated:
    app: Flask
    rng: random.Random
    kinds: dict[str, str] = field(default_factory=dict)
    councils: dict[str, list[int]] = field(default_factory=dict)
    people: list[Person] = field(default_factory=list)
    affiliations: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # union -> (fed, status, cascade)

    def links(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for union, (fed, status, cascade) in self.affiliations.items():
            if status == "active":
                out.setdefault(union, set()).add(f"{fed}:affiliated")
                if cascade == "opted_in":
                    out[union].add(f"{fed}:opted_in")
        return out

    def tenant(self, slug: str):  # type: ignore[no-untyped-def]
        from sqlalchemy import select

        from federation.extensions import db
        from tenants.models import Tenant

        return db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one()

    def user(self, person: Person):  # type: ignore[no-untyped-def]
        from federation.extensions import db
        from tenants.models import User

        return db.session.get(User, person.user_id)


def _grantable(kind: str) -> tuple[str, ...]:
    return {"platform": ("platform_admin", "auditor"), "federation": ("fed_admin", "fed_editor", "unit_editor"),
            "union": ("union_admin", "union_editor")}[kind]


def generate(app: Flask, rng: random.Random, federations: int = 3, unions: int = 30) -> Generated:
    from federation.auth.passwords import hash_password
    from federation.extensions import db
    from tenants import service as ts

    gen = Generated(app, rng)
    pw = hash_password("Parity-pass-1")
    # Building the world is setup, not the subject: one transaction instead of a commit per service call.
    with app.app_context(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(db.session, "commit", db.session.flush)
        def person(slug: str, login: str, roles: list[str], *, unit_id: int | None = None,
                   suspended: bool = False) -> Person:
            tenant = gen.tenant(slug)
            user = ts.create_user(tenant, login_id=login, display_name=f"{login} さん", name_kana="てすと",
                                  password=None, password_hash=pw, unit_id=unit_id, actor=ACTOR)
            p = Person(user.id, slug, tenant.kind, login)
            for role in roles:
                scope = rng.choice(gen.councils[slug]) if role == "unit_editor" else None
                ts.grant_role(tenant, user, role, scope, actor=ACTOR)
                p.granted.append((role, scope))
            if suspended:
                ts.set_user_status(tenant, user, "suspended", actor=ACTOR)
                p.active = False
            gen.people.append(p)
            return p

        gen.kinds["platform"] = "platform"
        person("platform", "p-aud", ["auditor"])
        person("platform", "p-ops", ["platform_admin"])
        person("platform", "p-none", [])
        person("platform", "p-gone", ["auditor"], suspended=True)
        feds = [f"fed-{i}" for i in range(federations)]
        for slug in feds:
            tenant = ts.create_tenant(slug, f"連合{slug}", "federation", actor=ACTOR)
            gen.kinds[slug] = "federation"
            gen.councils[slug] = []
            for b in range(2):
                block = ts.create_unit(tenant, name=f"block{b}", kind="block", parent_id=None, prefecture=None,
                                       actor=ACTOR)
                for c in range(2):
                    council = ts.create_unit(tenant, name=f"council{b}{c}", kind="council", parent_id=block.id,
                                             prefecture=f"{rng.randint(1, 47):02d}", actor=ACTOR)
                    gen.councils[slug].append(council.id)
            person(slug, "admin", ["fed_admin"])
            person(slug, "editor", ["fed_editor"])
            person(slug, "council", ["unit_editor"])
            person(slug, "both", ["fed_editor", "unit_editor"])
            person(slug, "nobody", [])
            person(slug, "gone", ["fed_editor"], suspended=True)
        for i in range(unions):
            slug = f"union-{i:02d}"
            tenant = ts.create_tenant(slug, f"労組{i}", "union", actor=ACTOR)
            gen.kinds[slug] = "union"
            branch = ts.create_unit(tenant, name="本部", kind="branch", parent_id=None, prefecture=None, actor=ACTOR)
            person(slug, "admin", ["union_admin"], unit_id=branch.id)
            person(slug, "editor", ["union_editor"], unit_id=branch.id)
            person(slug, "m1", [], unit_id=branch.id)
            person(slug, "m2", [], unit_id=branch.id, suspended=rng.random() < 0.5)
            if rng.random() < 0.3:
                person(slug, "gone", [rng.choice(["union_admin", "union_editor"])], suspended=True)
            fate = rng.random()
            if fate < 0.15:
                continue  # runs on its own
            fed = rng.choice(feds)
            ts.invite(gen.tenant(fed), slug, rng.choice(gen.councils[fed]), actor=ACTOR)
            if fate < 0.25:
                gen.affiliations[slug] = (fed, "pending", "opted_out")
                continue
            aff = ts.accept(tenant, actor=ACTOR)
            cascade = "opted_in" if fate > 0.55 else "opted_out"
            if cascade == "opted_in":
                ts.set_cascade(tenant, "opted_in", actor=ACTOR)
            gen.affiliations[slug] = (fed, "active", cascade)
            if fate > 0.9:
                ts.end_affiliation(aff, actor=ACTOR, side=rng.choice(["union", "federation"]))
                gen.affiliations[slug] = (fed, "ended", cascade)
        mp.undo()
        db.session.commit()
    return gen


def change_policy(gen: Generated) -> list[str]:
    """Grants, revocations, cascade flips, ended and new affiliations, suspensions: all through tenants.service."""
    from tenants import service as ts

    rng, done = gen.rng, []
    with gen.app.app_context():
        active = [p for p in gen.people if p.active]
        for p in rng.sample([p for p in active if not p.granted and p.kind != "platform"], 6):
            role = rng.choice(_grantable(p.kind))
            scope = rng.choice(gen.councils[p.tenant]) if role == "unit_editor" else None
            ts.grant_role(gen.tenant(p.tenant), gen.user(p), role, scope, actor=ACTOR)
            p.granted.append((role, scope))
            done.append(f"grant {role} to {p.tenant}/{p.login_id}")
        revocable = [(p, g) for p in active for g in p.granted if g[0] in ("fed_editor", "unit_editor",
                                                                          "union_editor", "auditor")]
        for p, (role, scope) in rng.sample(revocable, 6):
            assert ts.revoke_role(gen.tenant(p.tenant), gen.user(p), role, scope, actor=ACTOR)
            p.granted.remove((role, scope))
            done.append(f"revoke {role} from {p.tenant}/{p.login_id}")
        live = sorted(u for u, (_, status, _) in gen.affiliations.items() if status == "active")
        flipped = rng.sample(live, 6)
        for union in flipped:
            fed, status, cascade = gen.affiliations[union]
            new = "opted_out" if cascade == "opted_in" else "opted_in"
            ts.set_cascade(gen.tenant(union), new, actor=ACTOR)
            gen.affiliations[union] = (fed, status, new)
            done.append(f"{union} {new}")
        for union in rng.sample([u for u in live if u not in flipped], 4):
            fed, _, cascade = gen.affiliations[union]
            aff = ts.live_affiliation(gen.tenant(union))
            ts.end_affiliation(aff, actor=ACTOR, side=rng.choice(["union", "federation"]))
            gen.affiliations[union] = (fed, "ended", cascade)
            done.append(f"{union} left {fed}")
        pending = sorted(u for u, (_, status, _) in gen.affiliations.items() if status == "pending")
        for union in pending[:2]:
            fed = gen.affiliations[union][0]
            ts.accept(gen.tenant(union), actor=ACTOR)
            gen.affiliations[union] = (fed, "active", "opted_out")
            done.append(f"{union} joined {fed}")
        for p in rng.sample([p for p in active if p.granted or p.kind == "union"], 3):
            ts.set_user_status(gen.tenant(p.tenant), gen.user(p), "suspended", actor=ACTOR)
            p.active = False
            done.append(f"suspend {p.tenant}/{p.login_id}")
        back = next(p for p in gen.people if not p.active and p.login_id == "gone")
        ts.set_user_status(gen.tenant(back.tenant), gen.user(back), "active", actor=ACTOR)
        back.active = True
        done.append(f"reactivate {back.tenant}/{back.login_id}")
    return done


def sample_requests(gen: Generated, ref: Reference, n: int) -> list[tuple[Person, str, str, str]]:
    """Random requests, biased towards the ones that matter: own tenant, linked unions, rules that exist."""
    rng = gen.rng
    tenants = sorted(gen.kinds)
    linked: dict[str, list[str]] = {}
    for union, (fed, _, _) in gen.affiliations.items():
        linked.setdefault(fed, []).append(union)
    # People grouped by what they hold, each group equally likely: there are many plain members and few officers.
    groups: dict[tuple[str, frozenset[str], bool], list[Person]] = {}
    for person in gen.people:
        groups.setdefault((person.kind, frozenset(r for r, _ in person.granted), person.active), []).append(person)
    keys = sorted(groups, key=repr)
    out = []
    for _ in range(n):
        p = rng.choice(groups[rng.choice(keys)])
        roll = rng.random()
        if roll < 0.35:
            dom = p.tenant
        elif roll < 0.6 and linked.get(p.tenant):
            dom = rng.choice(linked[p.tenant])
        elif roll < 0.7:
            dom = "platform"
        else:
            dom = rng.choice(tenants)
        own_pairs = ref.pairs_for(p.roles())
        if own_pairs and rng.random() < 0.5:
            obj, act = rng.choice(own_pairs)
        elif rng.random() < 0.6:
            obj, act = rng.choice(ref.rule_pairs)
        else:
            obj, act = rng.choice(OBJECTS), rng.choice(ACTIONS)
        out.append((p, dom, obj, act))
    return out


def _check_parity(gen: Generated, n_requests: int, n_roles: int,
                  earlier: list[tuple[Person, str, str, str]] | None = None):  # type: ignore[no-untyped-def]
    from federation.firewall import firewall

    ref = Reference(gen.links())
    with gen.app.app_context():
        snap = firewall.current()
        assert {u: set(v) for u, v in snap.links.items()} == gen.links()
        requests = sample_requests(gen, ref, n_requests) + (earlier or [])
        mismatches, allowed = [], 0
        for person, dom, obj, act in requests:
            subject = person.subject()
            assert set(snap.roles_of(subject)) == person.roles(), person
            expected = ref.allows(person, dom, obj, act)
            first = snap.allowed(subject, dom, obj, act)
            again = snap.allowed(subject, dom, obj, act)  # from the decision cache now
            if first != expected or again != expected:
                mismatches.append(f"{person.tenant}/{person.login_id} {dom} {obj} {act}: compiled {first}/{again},"
                                  f" casbin {expected}")
            allowed += expected
        roles_checked = 0
        tenants = sorted(gen.kinds)
        for _ in range(n_roles):
            role, sdom, dom = gen.rng.choice(ROLES), gen.rng.choice(tenants), gen.rng.choice(tenants)
            obj, act = gen.rng.choice(ref.rule_pairs) if gen.rng.random() < 0.7 else (gen.rng.choice(OBJECTS),
                                                                                   gen.rng.choice(ACTIONS))
            expected = ref.role_allows(role, sdom, dom, obj, act)
            if snap.role_allows(role, sdom, dom, obj, act) != expected:
                mismatches.append(f"role {role}@{sdom} {dom} {obj} {act}: casbin {expected}")
            if roles_checked < 100:  # the service's own Casbin path agrees too
                assert firewall.casbin_allows(role, sdom, dom, obj, act, snapshot=snap)[0] == expected
                roles_checked += 1
        # Every federation role, from every federation, into every union, for what crosses the boundary.
        unions = [t for t, kind in gen.kinds.items() if kind == "union"]
        feds = [t for t, kind in gen.kinds.items() if kind == "federation"]
        for role in ("fed_admin", "fed_editor", "unit_editor"):
            for sdom in feds:
                for dom in unions:
                    for obj, act in (("notices", "deliver"), ("notices", "relay"), ("notices", "read"),
                                     ("members", "read")):
                        expected = ref.role_allows(role, sdom, dom, obj, act)
                        if snap.role_allows(role, sdom, dom, obj, act) != expected:
                            mismatches.append(f"role {role}@{sdom} {dom} {obj} {act}: casbin {expected}")
    assert not mismatches, "\n".join(mismatches[:20])
    # A sample of nothing but denials (or nothing but allows) would prove little. The lower bound follows the
    # vocabulary: each new object's rules (comments, reports) are pairs most roles do not hold.
    assert 0.10 * len(requests) < allowed < 0.85 * len(requests), allowed
    return snap, requests


@pytest.fixture
def generated(app: Flask) -> Iterator[Generated]:
    yield generate(app, random.Random(SEED))


def test_compiled_firewall_agrees_with_casbin_before_and_after_policy_changes(generated: Generated) -> None:
    # The sample is only as good as the variety of the world: every link state, suspended users, every role.
    states = {(status, cascade) for _, status, cascade in generated.affiliations.values()}
    assert {("active", "opted_in"), ("active", "opted_out"), ("pending", "opted_out")} <= states
    assert any(status == "ended" for _, status, _ in generated.affiliations.values())
    assert len(generated.affiliations) < 30  # some unions run on their own
    assert any(not p.active for p in generated.people)
    assert {r for p in generated.people for r, _ in p.granted} == set(ROLES) - {"member"}

    before, asked = _check_parity(generated, n_requests=2000, n_roles=600)
    changes = change_policy(generated)
    assert len(changes) >= 20
    # The same requests again, on the new snapshot, plus fresh ones: an answer cached before must not come back.
    after, _ = _check_parity(generated, n_requests=2000, n_roles=600, earlier=asked)
    assert after is not before and after.version > before.version


# --- the decision cache and policy versions ----------------------------------------------------------------------

def _tenant(slug: str):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from federation.extensions import db
    from tenants.models import Tenant

    return db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one()


def _subject(app: Flask, tenant: str, login_id: str):  # type: ignore[no-untyped-def]
    from federation.auth.service import subject_of
    from tenants.service import user_in

    with app.app_context():
        return subject_of(user_in(_tenant(tenant), login_id))


def _in_new_context(app: Flask, fn):  # type: ignore[no-untyped-def]
    with app.app_context():
        return fn()


def test_decision_cache_never_answers_from_a_stale_snapshot(world: World) -> None:
    from federation.firewall import firewall
    from tenants import service as ts

    app = world.app
    staff = _subject(app, "fed", "staff")
    questions = [(staff, "union-a", "notices", "deliver"), (staff, "union-b", "notices", "relay"),
                 (staff, "fed", "notices", "write")]

    def ask() -> tuple[int, list[bool]]:
        snap = firewall.snapshot()
        return snap.version, [firewall.allowed(*q) for q in questions]

    version, answers = _in_new_context(app, ask)
    assert answers == [True, True, True]
    assert _in_new_context(app, ask) == (version, answers)  # warm: answered from the cache

    with app.app_context():
        ts.set_cascade(_tenant("union-a"), "opted_out", actor=ACTOR)
    v1, answers = _in_new_context(app, ask)
    assert v1 > version and answers == [False, True, True]

    with app.app_context():
        ts.end_affiliation(ts.live_affiliation(_tenant("union-b")), actor=ACTOR, side="federation")
    v2, answers = _in_new_context(app, ask)
    assert v2 > v1 and answers == [False, False, True]

    with app.app_context():
        fed = _tenant("fed")
        ts.revoke_role(fed, ts.user_in(fed, "staff"), "fed_editor", None, actor=ACTOR)
    v3, answers = _in_new_context(app, ask)
    assert v3 > v2 and answers == [False, False, False]

    with app.app_context():
        ts.set_cascade(_tenant("union-a"), "opted_in", actor=ACTOR)
        fed = _tenant("fed")
        ts.grant_role(fed, ts.user_in(fed, "staff"), "fed_editor", None, actor=ACTOR)
    assert _in_new_context(app, ask)[1] == [True, False, True]


def test_a_snapshot_is_one_version_for_a_whole_request_and_the_next_request_sees_the_change(world: World) -> None:
    """Within one app context (one request or job) the answers do not change under it; the next one is current."""
    from federation.firewall import firewall
    from tenants import service as ts

    app = world.app
    staff = _subject(app, "fed", "staff")
    with app.app_context():
        pinned = firewall.snapshot()
        assert pinned.allowed(staff, "union-a", "notices", "deliver")
        with app.app_context():  # another process's change, as far as this request can tell
            ts.set_cascade(_tenant("union-a"), "opted_out", actor=ACTOR)
        assert firewall.snapshot() is pinned
    with app.app_context():
        fresh = firewall.snapshot()
        assert fresh.version > pinned.version
        assert not firewall.allowed(staff, "union-a", "notices", "deliver")
        assert pinned.decisions[(staff.user_id, "union-a", "notices", "deliver")] is True  # the old one, untouched


def test_a_suspended_subject_is_denied_even_with_a_cached_allow(world: World) -> None:
    from dataclasses import replace

    from federation.firewall import firewall

    staff = _subject(world.app, "fed", "staff")
    with world.app.app_context():
        snap = firewall.snapshot()
        assert snap.allowed(staff, "fed", "notices", "write")
        assert not snap.allowed(replace(staff, active=False), "fed", "notices", "write")


# --- policy test ---------------------------------------------------------------------------------------------------

def _case_lines() -> list[str]:
    return [line for line in (POLICIES / "assertions.txt").read_text(encoding="utf-8").splitlines()
            if line.split(" ", 1)[0] in ("allow", "deny")]


def test_policy_assertions_all_pass_in_both_the_compiled_firewall_and_casbin() -> None:
    from federation.firewall.assertions import run_assertions

    report = run_assertions()
    assert report.ok, "\n".join(c.line() for c in report.cases if not c.ok)
    assert len(report.cases) == len(_case_lines()) > 50
    assert all(c.compiled == c.casbin == c.expect for c in report.cases)
    assert report.summary() == f"{len(report.cases)} passed, 0 failed"


def _wrong_file(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    world_lines = [line for line in (POLICIES / "assertions.txt").read_text(encoding="utf-8").splitlines()
                   if line.split(" ", 1)[0] in ("tenant", "affiliation", "user", "suspended")]
    cases = [
        "allow user:fed/staff union-a notices deliver      -- right: union-a opted in",
        "allow user:fed/staff union-b notices deliver      -- wrong on purpose: union-b opted out",
        "deny  user:union-a/a1 union-a notices read        -- wrong on purpose: a member reads their own notices",
        "deny  user:platform/aud union-a documents read    -- right: F1",
    ]
    path = tmp_path / "wrong-assertions.txt"
    path.write_text("\n".join(world_lines + cases) + "\n", encoding="utf-8")
    first = len(world_lines) + 1
    return path, {"union-b notices deliver": first + 1, "union-a notices read": first + 2}


def test_a_wrong_assertion_fails_and_names_the_case(tmp_path: Path) -> None:
    from federation.firewall.assertions import run_assertions

    path, wrong = _wrong_file(tmp_path)
    report = run_assertions(path)
    assert not report.ok
    failed = [c for c in report.cases if not c.ok]
    assert {(c.tenant, c.obj, c.act, c.lineno) for c in failed} == {
        ("union-b", "notices", "deliver", wrong["union-b notices deliver"]),
        ("union-a", "notices", "read", wrong["union-a notices read"])}
    assert all(c.line().startswith("FAIL") for c in failed)
    assert sum(c.ok for c in report.cases) == 2
    assert report.summary() == "2 passed, 2 failed"


def test_policy_test_cli_exits_zero_on_the_real_file_and_non_zero_naming_the_wrong_case(tmp_path: Path) -> None:
    good = subprocess.Popen([sys.executable, "cli.py", "policy", "test", "--quiet"], cwd=PROJECT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    path, _ = _wrong_file(tmp_path)
    bad = subprocess.Popen([sys.executable, "cli.py", "policy", "test", "--quiet", "--file", str(path)],
                           cwd=PROJECT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = good.communicate(timeout=60)
    assert good.returncode == 0, err
    assert out.strip().endswith("passed, 0 failed")
    out, err = bad.communicate(timeout=60)
    assert bad.returncode != 0
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2
    assert any("user:fed/staff union-b notices deliver" in line for line in fails)
    assert any("user:union-a/a1 union-a notices read" in line for line in fails)
