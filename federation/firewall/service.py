"""The firewall service: the one path every endpoint and job takes to ask "may this subject do this here?".

Casbin (policies/model.conf + policies/roles.csv + the tenant links) is the source of truth and the explainer. The
hot path answers from a snapshot compiled from exactly the same lines, with a per-snapshot decision cache in front;
tests/test_firewall_parity.py holds the two to the same answers on large random samples.

A snapshot is immutable and swapped whole when the policy version moves (LIBRARIES: Casbin's load_policy clears live
role managers in place, so a reload under concurrent checks could deny wrongly; a swap cannot).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import casbin
from flask import g, has_app_context
from sqlalchemy import select

from federation.extensions import db
from federation.firewall.models import PolicyState
from federation.firewall.templates import DERIVED_ROLE, Rule, Templates

DECISION_CACHE_LIMIT = 500_000
LINK_AFFILIATED = "affiliated"
LINK_OPTED_IN = "opted_in"
# The policy files whose content the audit log keeps (F6): the Casbin model, the role templates, the assertions.
POLICY_FILES = ("model.conf", "roles.csv", "assertions.txt")


@dataclass(frozen=True)
class Subject:
    """Who is asking: a user, as loaded for this request or job (status read fresh, never cached)."""

    user_id: int
    tenant: str
    kind: str
    login_id: str
    active: bool = True

    @property
    def key(self) -> str:
        return f"user:{self.tenant}/{self.login_id}"


@dataclass(frozen=True)
class Grant:
    grant_id: int
    user_id: int
    tenant: str
    role: str
    unit_id: int | None


class Denied(Exception):
    """A firewall denial. `status` is 403 when the caller may know the object exists, 404 otherwise (F8)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass
class Snapshot:
    version: int
    templates: Templates
    grants: dict[int, tuple[Grant, ...]]
    links: dict[str, frozenset[str]]  # union slug -> {"fed:affiliated", "fed:opted_in"}
    decisions: dict[tuple[int, str, str, str], bool] = field(default_factory=dict)
    enforcer: casbin.Enforcer | None = field(default=None, repr=False)  # built on first explanation

    def roles_of(self, subject: Subject) -> tuple[str, ...]:
        if not subject.active:
            return ()
        roles = tuple(g.role for g in self.grants.get(subject.user_id, ()))
        derived = DERIVED_ROLE.get(subject.kind)
        return roles + (derived,) if derived else roles

    def role_allows(self, role: str, sdom: str, dom: str, obj: str, act: str) -> bool:
        links = self.templates.effective.get((role, obj, act))
        if not links:
            return False
        if "self" in links and sdom == dom:
            return True
        if "any" in links and sdom == "platform":
            return True
        tenant_links = self.links.get(dom)
        if tenant_links:
            for link in links:
                if f"{sdom}:{link}" in tenant_links:
                    return True
        return False

    def allowed(self, subject: Subject, dom: str, obj: str, act: str) -> bool:
        if not subject.active:
            return False
        key = (subject.user_id, dom, obj, act)
        hit = self.decisions.get(key)
        if hit is not None:
            return hit
        decision = any(self.role_allows(role, subject.tenant, dom, obj, act) for role in self.roles_of(subject))
        if len(self.decisions) >= DECISION_CACHE_LIMIT:
            self.decisions.clear()  # bounded memory; refilling costs a few µs per decision
        self.decisions[key] = decision
        return decision


class Firewall:
    """Per-process holder of the current snapshot; cheap to ask, reloaded when the policy version moves."""

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._policy_dir: Path | None = None
        self._templates: Templates | None = None
        self.policy_files: dict[str, str] = {}
        self._reload_lock = threading.Lock()
        self._casbin_lock = threading.Lock()

    def configure(self, policy_dir: Path) -> None:
        self._policy_dir = policy_dir
        # Read each file once: the templates in force are parsed from exactly the text the audit log records
        # (federation/audit/chain.py appends it as a `policy.files` entry when it differs from the last one).
        files = {name: (policy_dir / name).read_text(encoding="utf-8")
                 for name in POLICY_FILES if (policy_dir / name).exists()}
        self._templates = Templates.parse(files["roles.csv"], "roles.csv") if "roles.csv" in files \
            else Templates.load(policy_dir / "roles.csv")
        self.policy_files = files
        self._snapshot = None

    @property
    def templates(self) -> Templates:
        assert self._templates is not None, "firewall not configured"
        return self._templates

    @property
    def model_path(self) -> Path:
        assert self._policy_dir is not None
        return self._policy_dir / "model.conf"

    # --- staying current (F7) -------------------------------------------------------------------------------------

    def sync(self, version: int) -> Snapshot:
        """Make sure the snapshot is at `version` (read by the caller in its own query) and return it."""
        snap = self._snapshot
        if snap is not None and snap.version == version:
            return snap
        with self._reload_lock:
            snap = self._snapshot
            if snap is None or snap.version != version:
                snap = self._load()
                self._snapshot = snap
        return snap

    def current(self) -> Snapshot:
        """For jobs and the CLI: read the version now and sync to it."""
        version = db.session.execute(select(PolicyState.version).where(PolicyState.id == 1)).scalar_one_or_none()
        return self.sync(version or 0)

    def snapshot(self) -> Snapshot:
        """The snapshot this request or job decides with: synced once per app context (a request, a job, a CLI
        command), so one request never mixes two policy versions and the next one always sees the latest."""
        if not has_app_context():
            return self.current()
        snap = g.get("policy_snapshot")
        if snap is None:
            snap = self.current()
            g.policy_snapshot = snap
        return snap

    def pin(self, version: int) -> Snapshot:
        """Called by the request loader with the version it read alongside the session (no extra query)."""
        snap = self.sync(version)
        g.policy_snapshot = snap
        return snap

    def _load(self) -> Snapshot:
        from tenants.models import Affiliation, RoleGrant, Tenant, User

        session = db.session
        version = session.execute(select(PolicyState.version).where(PolicyState.id == 1)).scalar_one_or_none() or 0
        grants: dict[int, list[Grant]] = {}
        rows = session.execute(
            select(RoleGrant.id, RoleGrant.user_id, Tenant.slug, RoleGrant.role, RoleGrant.unit_id)
            .join(User, User.id == RoleGrant.user_id).join(Tenant, Tenant.id == RoleGrant.tenant_id)
        )
        for gid, uid, slug, role, unit_id in rows:
            grants.setdefault(uid, []).append(Grant(gid, uid, slug, role, unit_id or None))
        links: dict[str, set[str]] = {}
        fed = Tenant.__table__.alias("fed")
        uni = Tenant.__table__.alias("uni")
        rows = session.execute(
            select(uni.c.slug, fed.c.slug, Affiliation.cascade)
            .join(fed, fed.c.id == Affiliation.federation_id).join(uni, uni.c.id == Affiliation.union_id)
            .where(Affiliation.status == "active")
        )
        for union, federation, cascade in rows:
            links.setdefault(union, set()).add(f"{federation}:{LINK_AFFILIATED}")
            if cascade == "opted_in":
                links.setdefault(union, set()).add(f"{federation}:{LINK_OPTED_IN}")
        return Snapshot(version=version, templates=self.templates,
                        grants={k: tuple(v) for k, v in grants.items()},
                        links={k: frozenset(v) for k, v in links.items()})

    # --- asking ---------------------------------------------------------------------------------------------------

    def allowed(self, subject: Subject, dom: str, obj: str, act: str, *, snapshot: Snapshot | None = None) -> bool:
        snap = snapshot or self.snapshot()
        return snap.allowed(subject, dom, obj, act)

    def require(self, subject: Subject | None, dom: str, obj: str, act: str) -> None:
        """Raise Denied unless allowed. 403 only when the caller may know the object exists (F8): it is their own
        tenant, or they may read that kind of object there; otherwise 404, exactly as for a tenant that is not there."""
        if subject is None:
            raise Denied(401)
        snap = self.snapshot()
        if snap.allowed(subject, dom, obj, act):
            return
        knows = subject.tenant == dom or (act != "read" and snap.allowed(subject, dom, obj, "read"))
        raise Denied(403 if knows else 404)

    def grants_of(self, subject: Subject, role: str | None = None) -> tuple[Grant, ...]:
        snap = self.snapshot()
        return tuple(g for g in snap.grants.get(subject.user_id, ()) if role is None or g.role == role)

    def roles_of(self, subject: Subject) -> tuple[str, ...]:
        snap = self.snapshot()
        return snap.roles_of(subject)

    # --- Casbin, the reference and the explainer ------------------------------------------------------------------

    def enforcer(self, snapshot: Snapshot | None = None) -> casbin.Enforcer:
        """A Casbin enforcer holding the snapshot's lines: templates, role inheritance and tenant links. Built once
        per snapshot (explanations ask it many times) and dropped with it."""
        snap = snapshot or self.snapshot()
        with self._casbin_lock:
            if snap.enforcer is None:
                snap.enforcer = build_enforcer(self.model_path, snap)
            return snap.enforcer

    def casbin_allows(self, role: str, sdom: str, dom: str, obj: str, act: str,
                      *, snapshot: Snapshot | None = None) -> tuple[bool, list[str]]:
        enforcer = self.enforcer(snapshot)
        # pycasbin's enforcer is not safe under threads (LIBRARIES.md); it is off the hot path, so a lock is cheap.
        with self._casbin_lock:
            ok, rules = enforcer.enforce_ex(role, sdom, dom, obj, act)
        return bool(ok), list(rules)

    def explain(self, subject: Subject | None, role_subject: tuple[str, str] | None, dom: str, obj: str,
                act: str) -> dict[str, Any]:
        from federation.firewall.explain import explain

        return explain(self, subject, role_subject, dom, obj, act)


def build_enforcer(model_path: Path, snap: Snapshot) -> casbin.Enforcer:
    enforcer = casbin.Enforcer(str(model_path))
    rules: list[Rule] = list(snap.templates.rules)
    if rules:
        enforcer.add_policies([[r.role, r.link, r.obj, r.act] for r in rules])
    if snap.templates.inherits:
        enforcer.add_named_grouping_policies("g", [list(pair) for pair in snap.templates.inherits])
    link_lines = [[union, link] for union, links in snap.links.items() for link in sorted(links)]
    if link_lines:
        enforcer.add_named_grouping_policies("g2", link_lines)
    return enforcer


firewall = Firewall()
