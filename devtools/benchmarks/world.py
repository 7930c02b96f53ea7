"""A large synthetic federation for the benchmarks, written with bulk inserts (the services would audit every row,
which is right for real changes and far too slow for 200,000 generated ones)."""
from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import insert, select

from federation.auth.passwords import hash_password
from federation.extensions import db, utcnow
from federation.firewall.models import bump_policy_version
from tenants.kana import kana_sort_key
from tenants.models import Affiliation, OrgUnit, RoleGrant, Tenant, User

PASSWORD = "bench-pass-2026"


@dataclass
class BigWorld:
    federation_id: int
    union_ids: list[int]
    council_id: int
    big_union_id: int | None


def build(*, unions: int, members: int, big_union_members: int = 0, opted_in_share: float = 0.67,
          seed: int = 7, progress: bool = True) -> BigWorld:
    import click

    rng = random.Random(seed)
    pw = hash_password(PASSWORD)
    now = utcnow()
    fed = Tenant(slug="bench-fed", name="ベンチ連合会", kind="federation")
    db.session.add(fed)
    db.session.flush()
    block = OrgUnit(tenant_id=fed.id, name="全国ブロック", kind="block", path="/")
    db.session.add(block)
    db.session.flush()
    block.path = f"/{block.id}/"
    council = OrgUnit(tenant_id=fed.id, parent_id=block.id, name="東京県協", kind="council", prefecture="13")
    db.session.add(council)
    db.session.flush()
    council.path = f"{block.path}{council.id}/"
    staff = User(tenant_id=fed.id, login_id="staff", display_name="書記局", name_kana="しょききょく",
                 kana_key=kana_sort_key("しょききょく"), password_hash=pw, status="active")
    db.session.add(staff)
    db.session.flush()
    db.session.add(RoleGrant(tenant_id=fed.id, user_id=staff.id, role="fed_editor", unit_id=0, granted_by="bench"))
    tenant_rows = [{"slug": f"bench-u{i:04d}", "name": f"ベンチ労組{i}", "kind": "union", "created_at": now}
                   for i in range(unions)]
    db.session.execute(insert(Tenant), tenant_rows)
    union_ids = list(db.session.execute(select(Tenant.id).where(Tenant.slug.like("bench-u%"))
                                        .order_by(Tenant.id)).scalars())
    db.session.execute(insert(Affiliation), [
        {"federation_id": fed.id, "union_id": uid, "council_id": council.id, "status": "active",
         "cascade": "opted_in" if rng.random() < opted_in_share else "opted_out", "invited_by": "bench",
         "invited_at": now, "accepted_at": now} for uid in union_ids])
    per_union = members // max(1, unions)
    sizes = {uid: per_union for uid in union_ids}
    big = None
    if big_union_members:
        big = union_ids[0]
        sizes[big] = big_union_members
    bar = click.progressbar(union_ids, label=f"writing {sum(sizes.values()):,} members", file=None) \
        if progress else None
    items = bar if bar is not None else union_ids
    if bar is not None:
        bar.__enter__()
    try:
        batch: list[dict] = []
        for uid in items:
            for i in range(sizes[uid]):
                kana = f"めんばー {i:05d}"
                batch.append({"tenant_id": uid, "login_id": str(100000 + i), "login_key": str(100000 + i),
                              "display_name": f"組合員{i}",
                              "name_kana": kana, "kana_key": kana_sort_key(kana), "password_hash": pw,
                              "status": "active", "created_at": now})
            if len(batch) >= 20000:
                db.session.execute(insert(User), batch)
                batch = []
        if batch:
            db.session.execute(insert(User), batch)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    # Officers: the first member of each union is its admin, the second an editor (the g-lines that stay explicit).
    firsts = db.session.execute(select(User.id, User.tenant_id, User.login_id).where(
        User.tenant_id.in_(union_ids), User.login_id.in_(["100000", "100001"]))).all()
    db.session.execute(insert(RoleGrant), [
        {"tenant_id": t, "user_id": u, "role": "union_admin" if login == "100000" else "union_editor", "unit_id": 0,
         "granted_by": "bench", "granted_at": now} for u, t, login in firsts])
    bump_policy_version()
    db.session.commit()
    return BigWorld(fed.id, union_ids, council.id, big)
