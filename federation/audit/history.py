"""What could each tenant do on a given date? The tenant links and role grants are replayed from the audit chain
(every change to them is an entry, F6), so an auditor can ask about the past without trusting today's tables, and
compare two dates.

Replayed kinds: affiliation.invite / accept / end, cascade.set, role.grant / revoke, user.status, and policy.files:
the role templates are those of the last `policy.files` entry at that time (the content of policies/roles.csv then
in force). A time before the first `policy.files` entry (a chain begun before they were recorded) falls back to
today's templates, and the answer says so."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from federation.audit.chain import iter_entries


@dataclass
class Affiliation:
    id: int
    federation: str
    union: str
    status: str = "pending"
    cascade: str = "opted_out"
    cascade_changed_at: str | None = None
    cascade_changed_by: str | None = None


@dataclass
class World:
    """The policy-relevant state at one moment."""

    at: str | None
    affiliations: dict[int, Affiliation] = field(default_factory=dict)
    grants: set[tuple[str, str, int | None]] = field(default_factory=set)  # (subject, role, unit)
    suspended: set[str] = field(default_factory=set)
    entries: int = 0
    policy_files: dict[str, str] | None = None  # file name -> content, as last recorded by then
    policy_seq: int | None = None
    policy_at: str | None = None

    def links(self) -> dict[str, frozenset[str]]:
        out: dict[str, set[str]] = {}
        for aff in self.affiliations.values():
            if aff.status != "active":
                continue
            out.setdefault(aff.union, set()).add(f"{aff.federation}:affiliated")
            if aff.cascade == "opted_in":
                out[aff.union].add(f"{aff.federation}:opted_in")
        return {k: frozenset(v) for k, v in out.items()}

    def live_affiliation(self, union: str) -> Affiliation | None:
        live = [a for a in self.affiliations.values() if a.union == union and a.status != "ended"]
        return live[-1] if live else None


def replay(entries: Iterable[dict[str, Any]], until: datetime | None = None) -> World:
    world = World(at=None)
    for e in entries:
        if until is not None and datetime.fromisoformat(e["at"].replace("Z", "+00:00")) > until:
            break
        world.at = e["at"]
        world.entries += 1
        kind, data = e["kind"], e["data"]
        if kind == "affiliation.invite":
            world.affiliations[data["affiliation_id"]] = Affiliation(data["affiliation_id"], e["tenant"],
                                                                     e["other_tenant"])
        elif kind in ("affiliation.accept", "affiliation.end", "cascade.set"):
            aff = world.affiliations.get(data["affiliation_id"])
            if aff is None:  # a chain that starts after the invitation: take what the entry says
                aff = world.affiliations.setdefault(data["affiliation_id"], Affiliation(
                    data["affiliation_id"], e["other_tenant"], e["tenant"]))
            if kind == "affiliation.accept":
                aff.status = "active"
                aff.cascade = data.get("cascade", aff.cascade)
            elif kind == "affiliation.end":
                aff.status = "ended"
            else:
                aff.cascade = data["to"]
                aff.cascade_changed_at, aff.cascade_changed_by = e["at"], e["actor"]
        elif kind == "role.grant":
            world.grants.add((data["subject"], data["role"], data.get("unit_id")))
        elif kind == "role.revoke":
            world.grants.discard((data["subject"], data["role"], data.get("unit_id")))
        elif kind == "policy.files":
            world.policy_files = {name: f["content"] for name, f in data.get("files", {}).items()}
            world.policy_seq, world.policy_at = e["seq"], e["at"]
        elif kind == "user.status":
            subject = f"user:{e['tenant']}/{data['login_id']}"
            if data["to"] == "suspended":
                world.suspended.add(subject)
            else:
                world.suspended.discard(subject)
    return world


def world_at(until: datetime | None) -> World:
    return replay(iter_entries(), until)
