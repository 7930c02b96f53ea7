"""The role templates of policies/roles.csv, parsed once: the p and g lines that Casbin loads and that the compiled
decision index is derived from."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

OBJECTS = ("tenant", "units", "members", "roles", "affiliation", "cascade", "notices", "receipts", "stats",
           "documents", "surveys", "applications", "invitations", "policy", "audit", "ballots",
           "comments", "reports", "kpi")
ACTIONS = ("read", "write", "publish", "deliver", "relay", "approve", "manage", "vote", "answer")
LINKS = ("self", "any", "affiliated", "opted_in")
# Which roles a tenant of each kind can grant. `member` is never granted: every active user of a union holds it.
GRANTABLE = {
    "platform": ("platform_admin", "auditor"),
    "federation": ("fed_admin", "fed_editor", "unit_editor", "fed_election_officer"),
    "union": ("union_admin", "union_editor", "election_officer"),
}
DERIVED_ROLE = {"union": "member"}
# Roles whose grant names an org unit (a block or council officer); the audience check keeps them inside it.
UNIT_SCOPED = ("unit_editor",)


class PolicyFileError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    role: str
    link: str
    obj: str
    act: str

    def as_line(self) -> str:
        return f"p, {self.role}, {self.link}, {self.obj}, {self.act}"


@dataclass(frozen=True)
class Templates:
    rules: tuple[Rule, ...]
    inherits: tuple[tuple[str, str], ...]  # (role, inherited role)

    @classmethod
    def load(cls, path: Path) -> Templates:
        return cls.parse(path.read_text(encoding="utf-8"), path.name)

    @classmethod
    def parse(cls, text: str, name: str = "roles.csv") -> Templates:
        """The templates from the text of a roles.csv (the file, or a copy recorded in the audit log)."""
        rules: list[Rule] = []
        inherits: list[tuple[str, str]] = []
        known_roles = {r for roles in GRANTABLE.values() for r in roles} | set(DERIVED_ROLE.values())
        for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
            cells = [c.strip() for c in row]
            if not cells or not cells[0] or cells[0].startswith("#"):
                continue
            where = f"{name}:{lineno}"
            if cells[0] == "p" and len(cells) == 5:
                rule = Rule(*cells[1:])
                if rule.role not in known_roles:
                    raise PolicyFileError(f"{where}: unknown role {rule.role!r}")
                if rule.link not in LINKS:
                    raise PolicyFileError(f"{where}: unknown link {rule.link!r}")
                if rule.obj not in OBJECTS or rule.act not in ACTIONS:
                    raise PolicyFileError(f"{where}: unknown object or action {rule.obj}/{rule.act}")
                rules.append(rule)
            elif cells[0] == "g" and len(cells) == 3:
                if cells[1] not in known_roles or cells[2] not in known_roles:
                    raise PolicyFileError(f"{where}: unknown role in {cells[1]} -> {cells[2]}")
                inherits.append((cells[1], cells[2]))
            else:
                raise PolicyFileError(f"{where}: expected 'p, role, link, object, action' or 'g, role, role'")
        return cls(tuple(rules), tuple(inherits))

    @cached_property
    def roles(self) -> frozenset[str]:
        return frozenset({r.role for r in self.rules} | {a for pair in self.inherits for a in pair})

    def closure(self, role: str) -> frozenset[str]:
        """The role and every role it inherits, transitively."""
        seen, todo = {role}, [role]
        while todo:
            current = todo.pop()
            for child, parent in self.inherits:
                if child == current and parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return frozenset(seen)

    def chain(self, role: str, target: str) -> list[str]:
        """The inheritance path from `role` to `target` (for explanations), or [] if none."""
        paths = [[role]]
        while paths:
            path = paths.pop(0)
            if path[-1] == target:
                return path
            for child, parent in self.inherits:
                if child == path[-1] and parent not in path:
                    paths.append(path + [parent])
        return []

    @cached_property
    def effective(self) -> dict[tuple[str, str, str], frozenset[str]]:
        """(role, object, action) -> the links through which the role (or one it inherits) holds it."""
        out: dict[tuple[str, str, str], set[str]] = {}
        for role in self.roles:
            for inherited in self.closure(role):
                for rule in self.rules:
                    if rule.role == inherited:
                        out.setdefault((role, rule.obj, rule.act), set()).add(rule.link)
        return {k: frozenset(v) for k, v in out.items()}
