"""`python cli.py policy test`: the allow/deny cases of policies/assertions.txt, each checked twice, by the compiled
firewall the service answers from and by Casbin itself, in a small world the file describes. No database needed."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from federation.config import PROJECT_ROOT
from federation.firewall.service import LINK_AFFILIATED, LINK_OPTED_IN, Grant, Snapshot, Subject, build_enforcer
from federation.firewall.templates import GRANTABLE, Templates

DEFAULT_FILE = PROJECT_ROOT / "policies" / "assertions.txt"


@dataclass
class Case:
    expect: bool
    subject: str
    tenant: str
    obj: str
    act: str
    why: str
    lineno: int
    compiled: bool | None = None
    casbin: bool | None = None
    rule: str = ""

    @property
    def ok(self) -> bool:
        return self.compiled == self.expect and self.casbin == self.expect

    def line(self) -> str:
        verdict = "pass" if self.ok else "FAIL"
        got = "allow" if self.compiled else "deny"
        detail = f"matched {self.rule}" if self.rule else "no rule matched"
        mismatch = "" if self.compiled == self.casbin else f" [casbin says {'allow' if self.casbin else 'deny'}]"
        return (f"{verdict}  {'allow' if self.expect else 'deny '} {self.subject} {self.tenant} {self.obj} {self.act}"
                f"  -> {got}{mismatch}; {detail}  ({self.why})")


@dataclass
class Report:
    cases: list[Case] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.ok for c in self.cases)

    def summary(self) -> str:
        failed = sum(1 for c in self.cases if not c.ok)
        return f"{len(self.cases) - failed} passed, {failed} failed"


@dataclass
class World:
    kinds: dict[str, str] = field(default_factory=dict)
    users: dict[str, Subject] = field(default_factory=dict)
    grants: dict[int, list[Grant]] = field(default_factory=dict)
    links: dict[str, set[str]] = field(default_factory=dict)


def parse(path: Path) -> tuple[World, list[Case]]:
    world, cases = World(), []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text, _, why = raw.partition("--")
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        words = shlex.split(text)
        where = f"{path.name}:{lineno}"
        head = words[0]
        if head == "tenant" and len(words) == 3:
            world.kinds[words[1]] = words[2]
        elif head == "affiliation" and len(words) == 4:
            union, fed, cascade = words[1:]
            world.links.setdefault(union, set()).add(f"{fed}:{LINK_AFFILIATED}")
            if cascade == "opted_in":
                world.links[union].add(f"{fed}:{LINK_OPTED_IN}")
            elif cascade != "opted_out":
                raise ValueError(f"{where}: cascade must be opted_in or opted_out")
        elif head in ("user", "suspended") and len(words) >= 2:
            tenant, _, login = words[1].partition("/")
            if tenant not in world.kinds:
                raise ValueError(f"{where}: declare tenant {tenant} first")
            uid = len(world.users) + 1
            world.users[words[1]] = Subject(uid, tenant, world.kinds[tenant], login, active=head == "user")
            for n, role in enumerate(words[2:]):
                if role not in GRANTABLE.get(world.kinds[tenant], ()):
                    raise ValueError(f"{where}: {role} cannot be granted in a {world.kinds[tenant]}")
                world.grants.setdefault(uid, []).append(Grant(uid * 100 + n, uid, tenant, role, None))
        elif head in ("allow", "deny") and len(words) == 5:
            cases.append(Case(head == "allow", words[1], words[2], words[3], words[4], why.strip(), lineno))
        else:
            raise ValueError(f"{where}: cannot read {raw.strip()!r}")
    return world, cases


def run_assertions(path: str | Path | None = None, policy_dir: Path | None = None) -> Report:
    path = Path(path) if path else DEFAULT_FILE
    policy_dir = policy_dir or PROJECT_ROOT / "policies"
    world, cases = parse(path)
    templates = Templates.load(policy_dir / "roles.csv")
    snap = Snapshot(version=0, templates=templates, grants={k: tuple(v) for k, v in world.grants.items()},
                    links={k: frozenset(v) for k, v in world.links.items()})
    enforcer = build_enforcer(policy_dir / "model.conf", snap)
    for case in cases:
        if case.subject.startswith("user:"):
            subject = world.users.get(case.subject[5:])
            if subject is None:
                raise ValueError(f"{path.name}:{case.lineno}: no user {case.subject} in the world")
            case.compiled = snap.allowed(subject, case.tenant, case.obj, case.act)
            roles = snap.roles_of(subject)
            sdom = subject.tenant
        elif case.subject.startswith("role:") and "@" in case.subject:
            role, _, sdom = case.subject[5:].partition("@")
            roles = (role,)
            case.compiled = snap.role_allows(role, sdom, case.tenant, case.obj, case.act)
        else:
            raise ValueError(f"{path.name}:{case.lineno}: subject must be user:TENANT/LOGIN or role:ROLE@TENANT")
        case.casbin = False
        for role in roles:
            ok, rule = enforcer.enforce_ex(role, sdom, case.tenant, case.obj, case.act)
            if ok:
                case.casbin, case.rule = True, f"p, {', '.join(rule)} (as {role})"
                break
    return Report(cases)


