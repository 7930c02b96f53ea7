"""GET /tenants/{slug}/notices for someone who is not an editor there: the tenant's notices that reached them, all
of them page by page, and nothing of another unit, another union or a draft."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from conftest import World
from sqlalchemy import insert, select

MANY = 1_050  # more than a member's first inbox pages ever held


def _bulk_notices(world: World, union: str, count: int, *, unit_path: str = "", status: str = "published") -> set[int]:
    """Published notices of `union` delivered to it, written in bulk (the services would take minutes for this)."""
    from federation.extensions import db
    from federation.notices.models import Delivery, Notice
    from tenants.models import Tenant, User

    with world.app.app_context():
        tenant_id = db.session.execute(select(Tenant.id).where(Tenant.slug == union)).scalar_one()
        author = db.session.execute(select(User.id).where(User.tenant_id == tenant_id,
                                                          User.login_id == f"{union[-1]}editor")).scalar_one()
        start = datetime.now(UTC) - timedelta(days=30)
        first = (db.session.execute(select(Notice.id).order_by(Notice.id.desc()).limit(1)).scalar() or 0) + 1
        db.session.execute(insert(Notice), [
            {"id": first + i, "tenant_id": tenant_id, "author_id": author, "title": f"{union} 連絡 {i}", "body": "本文",
             "body_html": "<p>本文</p>", "category": "general", "audience": '{"all": true}', "status": status,
             "published_at": start + timedelta(minutes=i) if status == "published" else None,
             "created_at": start, "updated_at": start} for i in range(count)])
        db.session.execute(insert(Delivery), [
            {"notice_id": first + i, "tenant_id": tenant_id, "unit_path": unit_path, "for_relay": False,
             "recipients": 5, "delivered_at": start + timedelta(minutes=i)} for i in range(count)])
        db.session.commit()
        return set(range(first, first + count))


def _all_pages(api, slug: str) -> list[int]:  # type: ignore[no-untyped-def]
    ids: list[int] = []
    cursor = None
    while True:
        r = api.get(f"/api/v1/tenants/{slug}/notices", query_string={"limit": 100, **({"cursor": cursor} if cursor
                                                                                       else {})})
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        ids += [n["id"] for n in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            return ids


def test_a_member_lists_every_notice_of_their_union_that_reached_them(world: World) -> None:
    from federation.extensions import db
    from tenants.models import OrgUnit

    with world.app.app_context():
        factory = db.session.get(OrgUnit, world.ids["union-a:branch2"]).path
    everyone = _bulk_notices(world, "union-a", MANY)
    factory_only = _bulk_notices(world, "union-a", 3, unit_path=factory)  # a1 is in the head office branch
    drafts = _bulk_notices(world, "union-a", 2, status="draft")
    neighbour = _bulk_notices(world, "union-b", 3)

    listed = _all_pages(world.as_("union-a", "a1"), "union-a")
    assert len(listed) == len(set(listed)) == MANY, "each notice once, all of them"
    assert set(listed) == everyone and listed == sorted(listed, reverse=True)
    # The factory branch's member sees those three as well; the union's editor sees every status.
    assert set(_all_pages(world.as_("union-a", "a2"), "union-a")) == everyone | factory_only
    assert drafts <= set(_all_pages(world.as_("union-a", "aeditor"), "union-a"))
    assert neighbour.isdisjoint(listed)
    # From union-b, union-a's list is not theirs to read at all.
    r = world.as_("union-b", "b1").get("/api/v1/tenants/union-a/notices")
    assert r.status_code in (403, 404)
