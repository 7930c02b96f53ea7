"""The KPI board: counts about a union, for its own officers and, per union and with the small-group rule, for its
federation (docs/kpi.md). Figures are counts and durations only: no query here returns a name.

Union side (the tenant is the union `access_tenant` returned): its registered members against the roster its admin
set, members registered this calendar month (Japan time), monthly active readers, the read rate overall and per
org unit, and how long its applications took from submission to decision.

Federation side (the tenant is the federation): the same figures, without the per-unit breakdown, for each union
that is actively affiliated now and that the firewall lets the caller read (`kpi read` through the `affiliated`
link); a council officer (unit_editor) only for the unions attached inside their unit, as for reports. A figure
about fewer than SMALL_GROUP people is withheld (None) and named in the row's `withheld`.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select

from federation.audit.chain import record
from federation.errors import invalid
from federation.extensions import db, utcnow
from federation.firewall import Subject, firewall
from federation.notices import audience as aud
from federation.notices.models import Delivery, Notice, Receipt
from federation.privacy import SMALL_GROUP, too_small
from federation.space.applications.models import Application, ApplicationStep, ApplicationType
from tenants.models import OrgUnit, Tenant, User

JST = timezone(timedelta(hours=9), "JST")
# A reader is "active" when they opened a notice in the last READ_WINDOW_DAYS; the read rate covers the notices
# delivered in the same window.
READ_WINDOW_DAYS = 30
# Turnaround covers the applications decided in the last TURNAROUND_DAYS.
TURNAROUND_DAYS = 365
DECIDED = ("approved", "rejected")
MAX_ROSTER = 1_000_000


def month_start(now: datetime | None = None) -> datetime:
    """The first instant of the current calendar month in Japan, as an aware datetime."""
    local = (now or utcnow()).astimezone(JST)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _percent(part: int, whole: int | None) -> float | None:
    if not whole:
        return None
    return round(100.0 * part / whole, 1)


# --- the figures, for a set of unions at once --------------------------------------------------------------------

def _registered(ids: list[int]) -> dict[int, int]:
    rows = db.session.execute(select(User.tenant_id, func.count()).where(
        User.tenant_id.in_(ids), User.status == "active").group_by(User.tenant_id)).all()
    return {t: n for t, n in rows}


def _new_this_month(ids: list[int], since: datetime) -> dict[int, int]:
    rows = db.session.execute(select(User.tenant_id, func.count()).where(
        User.tenant_id.in_(ids), User.status == "active", User.created_at >= since).group_by(User.tenant_id)).all()
    return {t: n for t, n in rows}


def _active_readers(ids: list[int], since: datetime) -> dict[int, int]:
    rows = db.session.execute(
        select(Receipt.tenant_id, func.count(func.distinct(Receipt.user_id)))
        .join(User, User.id == Receipt.user_id)
        .where(Receipt.tenant_id.in_(ids), Receipt.read_at >= since, User.tenant_id == Receipt.tenant_id,
               User.status == "active")
        .group_by(Receipt.tenant_id)).all()
    return {t: n for t, n in rows}


@dataclass
class Reads:
    """Reads against what was delivered: `expected` is member × notice pairs (a notice counted once per member it
    reached), `read` the pairs the member opened, `people` the members anything reached."""

    people: int = 0
    expected: int = 0
    read: int = 0

    def add(self, expected: int, read: int) -> None:
        if expected:
            self.people += 1
        self.expected += expected
        self.read += read

    def out(self) -> dict[str, Any]:
        return {"people": self.people, "expected": self.expected, "read": self.read,
                "rate": _percent(self.read, self.expected)}


def _reads(ids: list[int], since: datetime) -> dict[int, tuple[Reads, dict[int | None, Reads]]]:
    """Per union: the overall read figures and those per member's unit (None: members in no unit).

    A notice reaches a member when one of its deliveries to their union in the window is for the members (not for
    relay) and its scope is the whole union or the member's unit or one above it: the rule the inbox shows by.
    """
    deliveries: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for tenant_id, notice_id, path in db.session.execute(
            select(Delivery.tenant_id, Delivery.notice_id, Delivery.unit_path)
            .join(Notice, Notice.id == Delivery.notice_id)
            .where(Delivery.tenant_id.in_(ids), Delivery.for_relay.is_(False), Delivery.delivered_at >= since,
                   Notice.status == "published")).all():
        deliveries[tenant_id].append((notice_id, path or ""))
    opened: dict[int, set[int]] = defaultdict(set)
    if deliveries:
        notice_ids = sorted({n for rows in deliveries.values() for n, _ in rows})
        for user_id, notice_id in db.session.execute(
                select(Receipt.user_id, Receipt.notice_id).where(
                    Receipt.tenant_id.in_(list(deliveries)), Receipt.read_at.is_not(None),
                    Receipt.notice_id.in_(notice_ids))).all():
            opened[user_id].add(notice_id)
    out: dict[int, tuple[Reads, dict[int | None, Reads]]] = {t: (Reads(), {}) for t in ids}
    members = db.session.execute(
        select(User.id, User.tenant_id, User.unit_id, OrgUnit.path)
        .outerjoin(OrgUnit, (OrgUnit.id == User.unit_id) & (OrgUnit.tenant_id == User.tenant_id))
        .where(User.tenant_id.in_(ids), User.status == "active")).all()
    for user_id, tenant_id, unit_id, path in members:
        total, by_unit = out[tenant_id]
        reached = {n for n, scope in deliveries.get(tenant_id, ()) if not scope or (path or "").startswith(scope)}
        read = len(reached & opened.get(user_id, set()))
        total.add(len(reached), read)
        by_unit.setdefault(unit_id if path else None, Reads()).add(len(reached), read)
    return out


def _hours(submitted: datetime, decided: datetime) -> float:
    if submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=UTC)
    if decided.tzinfo is None:
        decided = decided.replace(tzinfo=UTC)
    return max(0.0, (decided - submitted).total_seconds() / 3600)


def turnaround_of(hours: list[float]) -> dict[str, Any]:
    """Median and 90th percentile (nearest rank) of the hours, rounded to a tenth of an hour."""
    if not hours:
        return {"decided": 0, "median_hours": None, "p90_hours": None}
    ordered = sorted(hours)
    p90 = ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
    return {"decided": len(ordered), "median_hours": round(statistics.median(ordered), 1),
            "p90_hours": round(p90, 1)}


def _turnaround(ids: list[int], since: datetime) -> dict[int, list[tuple[int, float]]]:
    """Per union: (form type id, hours from submission to decision) of each application decided in the window."""
    rows = db.session.execute(
        select(Application.tenant_id, Application.type_id, Application.submitted_at, func.max(ApplicationStep.at))
        .join(ApplicationStep, ApplicationStep.application_id == Application.id)
        .where(Application.tenant_id.in_(ids), ApplicationStep.to_status.in_(DECIDED), ApplicationStep.at >= since)
        .group_by(Application.id, Application.tenant_id, Application.type_id, Application.submitted_at)).all()
    out: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for tenant_id, type_id, submitted, decided in rows:
        out[tenant_id].append((type_id, _hours(submitted, decided)))
    return out


@dataclass
class Figures:
    registered: int
    roster: int | None
    new_this_month: int
    active_readers: int
    reads: Reads
    by_unit: dict[int | None, Reads]
    decisions: list[tuple[int, float]]


def figures(unions: list[Tenant], now: datetime | None = None) -> dict[int, Figures]:
    now = now or utcnow()
    ids = [u.id for u in unions]
    if not ids:
        return {}
    window = now - timedelta(days=READ_WINDOW_DAYS)
    registered = _registered(ids)
    new = _new_this_month(ids, month_start(now))
    readers = _active_readers(ids, window)
    reads = _reads(ids, window)
    decisions = _turnaround(ids, now - timedelta(days=TURNAROUND_DAYS))
    return {u.id: Figures(registered.get(u.id, 0), u.roster_size, new.get(u.id, 0), readers.get(u.id, 0),
                          reads[u.id][0], reads[u.id][1], decisions.get(u.id, [])) for u in unions}


def _about() -> dict[str, Any]:
    now = utcnow()
    return {"computed_at": now, "month_start": month_start(now), "read_window_days": READ_WINDOW_DAYS,
            "turnaround_days": TURNAROUND_DAYS}


# --- the union's own board ---------------------------------------------------------------------------------------

def union_board(union: Tenant) -> dict[str, Any]:
    """The union's figures as its officers see them: with the read rate per org unit and turnaround per form."""
    f = figures([union])[union.id]
    units = db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == union.id)
                               .order_by(OrgUnit.path)).scalars().all()
    members_per_unit = dict(db.session.execute(
        select(User.unit_id, func.count()).where(User.tenant_id == union.id, User.status == "active")
        .group_by(User.unit_id)).all())
    known = {u.id for u in units}
    rows = []
    for u in units:
        r = f.by_unit.get(u.id, Reads())
        rows.append({"unit_id": u.id, "name": u.name, "kind": u.kind,
                     "depth": max(0, len([p for p in u.path.split("/") if p]) - 1),
                     "members": members_per_unit.get(u.id, 0), **r.out()})
    outside = sum(n for unit_id, n in members_per_unit.items() if unit_id not in known)
    if outside:
        r = f.by_unit.get(None, Reads())
        rows.append({"unit_id": None, "name": None, "kind": None, "depth": 0, "members": outside, **r.out()})
    type_names = dict(db.session.execute(select(ApplicationType.id, ApplicationType.name)
                                         .where(ApplicationType.tenant_id == union.id)).all())
    per_type: dict[int, list[float]] = defaultdict(list)
    for type_id, hours in f.decisions:
        per_type[type_id].append(hours)
    forms = sorted(({"type_id": t, "name": type_names.get(t, ""), **turnaround_of(h)}
                    for t, h in per_type.items()), key=lambda x: (-x["decided"], x["name"]))
    return {"union": union.slug, "name": union.name, "registered": f.registered, "roster": f.roster,
            "coverage": _percent(f.registered, f.roster), "new_this_month": f.new_this_month,
            "active_readers": f.active_readers, "read_rate": f.reads.out(), "units": rows,
            "turnaround": {**turnaround_of([h for _, h in f.decisions]), "forms": forms}, **_about()}


def set_roster(union: Tenant, subject: Subject, value: Any) -> Tenant:
    """The union admin's roster size: a whole number from 0 to MAX_ROSTER, or None to clear it. Audited (the
    federation sees it), with the old and new number."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 0 <= value <= MAX_ROSTER):
        raise invalid("roster_size", f"a whole number from 0 to {MAX_ROSTER}, or null")
    before = union.roster_size
    if before != value:
        union.roster_size = value
        record("kpi.roster", actor=subject.key, tenant=union.slug, data={"from": before, "to": value})
    db.session.commit()
    return union


# --- the federation's board --------------------------------------------------------------------------------------

def attached_unions(federation: Tenant, subject: Subject) -> list[aud.AttachedUnion]:
    """The unions the caller may read figures of: those affiliated now (a council officer: inside their unit), each
    only if the firewall allows `kpi read` there."""
    snap = firewall.current()
    return [a for a in aud.attached_unions(federation, subject) if snap.allowed(subject, a.slug, "kpi", "read")]


def _guarded(row: dict[str, Any], withheld: list[str], key: str, people: int) -> None:
    if too_small(people):
        row[key] = None
        withheld.append(key)


def federation_row(a: aud.AttachedUnion, f: Figures) -> dict[str, Any]:
    """One union's figures for its federation: counts only, each figure about fewer than SMALL_GROUP people
    withheld."""
    withheld: list[str] = []
    reads = f.reads.out()
    turnaround = turnaround_of([h for _, h in f.decisions])
    row: dict[str, Any] = {"union": a.union.slug, "name": a.union.name, "council": a.council, "block": a.block,
                           "registered": f.registered, "roster": f.roster,
                           "coverage": _percent(f.registered, f.roster), "new_this_month": f.new_this_month,
                           "active_readers": f.active_readers, "read_rate": reads["rate"],
                           "turnaround_decided": turnaround["decided"],
                           "turnaround_median_hours": turnaround["median_hours"],
                           "turnaround_p90_hours": turnaround["p90_hours"]}
    _guarded(row, withheld, "registered", f.registered)
    if "registered" in withheld and row["coverage"] is not None:
        row["coverage"] = None
        withheld.append("coverage")
    _guarded(row, withheld, "new_this_month", f.new_this_month)
    _guarded(row, withheld, "active_readers", f.active_readers)
    _guarded(row, withheld, "read_rate", reads["people"])
    if too_small(turnaround["decided"]):
        for key in ("turnaround_decided", "turnaround_median_hours", "turnaround_p90_hours"):
            row[key] = None
            withheld.append(key)
    row["withheld"] = withheld
    return row


def federation_board(federation: Tenant, subject: Subject) -> dict[str, Any]:
    targets = attached_unions(federation, subject)
    found = figures([a.union for a in targets])
    return {"federation": federation.slug, "small_group": SMALL_GROUP,
            "unions": [federation_row(a, found[a.union.id]) for a in targets], **_about()}
