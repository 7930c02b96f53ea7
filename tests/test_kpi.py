"""The KPI board: a union's officers see their own union's figures (per unit too); its federation sees each
affiliated union's counts with every figure about fewer than five people withheld; a council officer only the
unions of their council; members, other unions, the platform and other federations see nothing of it. Figures are
checked on a small known world, and the roster size is validated (422 naming the field, nothing stored)."""
from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import PW, World
from sqlalchemy import select, update

from federation import jobs

FED = "/api/v1/federations/fed/kpi"


def _union(slug: str) -> str:
    return f"/api/v1/tenants/{slug}/kpi"


# Union A: 7 active members, branch (aadmin, aeditor, a1) and branch2 (a2, a3, a4, a5); 4 of them registered two
# months ago, a5 a minute before this month began (Japan time), a3 and a4 this month. Its notice to all reaches the
# 7; 6 read it (not a5). Five applications decided after 10, 20, 30, 40 and 100 hours. Union B: 3 active members
# (b2, b3 suspended), 2 applications decided. Union D: in the Osaka council, outside the Tokyo council officer's
# reach.
HOURS_A = (10, 20, 30, 40, 100)
HOURS_B = (5, 7)


def _apps(tenant_id: int, applicant_id: int, hours: tuple[int, ...], now) -> None:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from federation.space.applications.models import Application, ApplicationStep, ApplicationType

    kind = ApplicationType(tenant_id=tenant_id, name="慶弔費申請", fields="[]", approver_role="union_admin",
                           created_by=applicant_id)
    db.session.add(kind)
    db.session.flush()
    for i, h in enumerate(hours):
        submitted = now - timedelta(days=20 + i)
        app = Application(tenant_id=tenant_id, type_id=kind.id, applicant_id=applicant_id, values="{}",
                          status="approved" if i % 2 == 0 else "rejected", submitted_at=submitted)
        db.session.add(app)
        db.session.flush()
        db.session.add(ApplicationStep(application_id=app.id, actor_id=applicant_id, from_status=None,
                                       to_status="pending", at=submitted))
        db.session.add(ApplicationStep(application_id=app.id, actor_id=applicant_id, from_status="pending",
                                       to_status=app.status, at=submitted + timedelta(hours=h)))
    # Still pending: not decided, so not in the turnaround.
    db.session.add(Application(tenant_id=tenant_id, type_id=kind.id, applicant_id=applicant_id, values="{}",
                               status="pending", submitted_at=now - timedelta(days=3)))
    db.session.commit()


@pytest.fixture
def kpi_world(world: World) -> World:
    from federation.auth.passwords import hash_password
    from federation.extensions import db, utcnow
    from tenants import service as ts
    from tenants.models import Tenant, User

    actor = "operator:test"
    now = utcnow()
    with world.app.app_context():
        t = {s: db.session.execute(select(Tenant).where(Tenant.slug == s)).scalar_one()
             for s in ("fed", "union-a", "union-b")}
        for login in ("a4", "a5"):
            ts.create_user(t["union-a"], login_id=login, display_name=f"A新人 {login}", name_kana="しんじん",
                           password=None, password_hash=hash_password(PW),
                           unit_id=world.ids["union-a:branch2"], actor=actor)
        old = now - timedelta(days=62)
        db.session.execute(update(User).where(User.tenant_id == t["union-a"].id,
                                              User.login_id.in_(["aadmin", "aeditor", "a1", "a2"]))
                           .values(created_at=old))
        # A minute before the month began in Japan: last month's.
        from federation.kpi.service import month_start

        db.session.execute(update(User).where(User.tenant_id == t["union-a"].id, User.login_id == "a5")
                           .values(created_at=month_start(now) - timedelta(minutes=1)))
        db.session.commit()
        for login in ("b2", "b3"):
            user = db.session.execute(select(User).where(User.tenant_id == t["union-b"].id,
                                                         User.login_id == login)).scalar_one()
            ts.set_user_status(t["union-b"], user, "suspended", actor=actor)
        d = ts.create_tenant("union-d", "D大阪労組", "union", actor=actor)
        ts.create_user(d, login_id="dadmin", display_name="D執行 委員長", name_kana="しっこう",
                       password=None, password_hash=hash_password(PW), actor=actor)
        ts.invite(t["fed"], "union-d", world.ids["council2"], actor=actor)
        ts.accept(d, actor=actor)
        admin_a = db.session.execute(select(User.id).where(User.tenant_id == t["union-a"].id,
                                                           User.login_id == "aadmin")).scalar_one()
        admin_b = db.session.execute(select(User.id).where(User.tenant_id == t["union-b"].id,
                                                           User.login_id == "badmin")).scalar_one()
        _apps(t["union-a"].id, admin_a, HOURS_A, now)
        _apps(t["union-b"].id, admin_b, HOURS_B, now)
    editor = world.as_("union-a", "aeditor")
    r = editor.post("/api/v1/tenants/union-a/notices", json={"title": "A労組 職場集会のお知らせ", "body": "本文",
                                                             "category": "meeting", "audience": {"all": True}})
    assert r.status_code == 201, r.get_json()
    notice = r.get_json()["id"]
    assert editor.post(f"/api/v1/tenants/union-a/notices/{notice}/publish").status_code in (200, 202)
    jobs.drain()
    for login in ("aadmin", "aeditor", "a1", "a2", "a3", "a4"):
        assert world.as_("union-a", login).post(f"/api/v1/me/inbox/{notice}/read").status_code in (200, 204)
    assert world.as_("union-a", "aadmin").put(f"{_union('union-a')}/roster", json={"roster_size": 10}) \
        .status_code == 200
    return world


def test_union_officers_see_their_figures(kpi_world: World) -> None:
    board = kpi_world.as_("union-a", "aeditor").get(_union("union-a"))
    assert board.status_code == 200, board.get_json()
    b = board.get_json()
    assert (b["registered"], b["roster"], b["coverage"]) == (7, 10, 70.0)
    assert b["new_this_month"] == 2  # a3 and a4; a5 registered a minute before the month began
    assert b["active_readers"] == 6
    assert b["read_rate"] == {"people": 7, "expected": 7, "read": 6, "rate": 85.7}
    units = {u["name"]: u for u in b["units"]}
    assert (units["a本社支部"]["members"], units["a本社支部"]["read"], units["a本社支部"]["rate"]) == (3, 3, 100.0)
    assert (units["a工場支部"]["members"], units["a工場支部"]["read"], units["a工場支部"]["rate"]) == (4, 3, 75.0)
    t = b["turnaround"]
    assert (t["decided"], t["median_hours"], t["p90_hours"]) == (5, 30.0, 100.0)
    assert [(f["name"], f["decided"]) for f in t["forms"]] == [("慶弔費申請", 5)]
    # Counts only: no member's name anywhere in the board.
    body = board.get_data(as_text=True)
    assert "渡辺" not in body and "A新人" not in body and "a5" not in body
    # The admin reads it too (union_admin inherits union_editor); union B's own board is its own figures.
    assert kpi_world.as_("union-a", "aadmin").get(_union("union-a")).get_json()["registered"] == 7
    bb = kpi_world.as_("union-b", "badmin").get(_union("union-b")).get_json()
    assert (bb["registered"], bb["roster"], bb["active_readers"]) == (3, None, 0)
    assert bb["turnaround"]["decided"] == 2 and bb["turnaround"]["median_hours"] == 6.0


def test_members_and_outsiders_see_no_union_board(kpi_world: World) -> None:
    w = kpi_world
    assert w.as_("union-a", "a1").get(_union("union-a")).status_code == 403
    assert w.as_("union-a", "a1").get(f"{_union('union-a')}/roster").status_code == 403
    for who in (("union-b", "badmin"), ("union-b", "b1"), ("fed", "staff"), ("fed", "fadmin"), ("fed", "tokyo"),
                ("fed2", "staff"), ("platform", "aud"), ("platform", "ops"), ("union-c", "cadmin")):
        for path in (_union("union-a"), f"{_union('union-a')}/roster"):
            r = w.as_(*who).get(path)
            assert r.status_code in (403, 404), (who, path, r.status_code)
            assert "A通信労組" not in r.get_data(as_text=True) and "70" not in r.get_data(as_text=True)
        r = w.as_(*who).put(f"{_union('union-a')}/roster", json={"roster_size": 1})
        assert r.status_code in (403, 404), (who, r.status_code)
    # The federation's staff may read union A's counts, but not through the union's own board (its per-unit
    # figures are union stats, F1): 404 as for any union's stats.
    assert w.as_("fed", "staff").get(_union("union-a")).status_code == 404
    # An editor of the union reads the board but does not set the roster.
    assert w.as_("union-a", "aeditor").put(f"{_union('union-a')}/roster", json={"roster_size": 1}) \
        .status_code == 403
    assert w.as_("union-a", "aeditor").get(f"{_union('union-a')}/roster").get_json()["roster_size"] == 10
    # Union A's board is reachable as union B's path only for union B's own people.
    assert w.as_("union-a", "aadmin").get(_union("union-b")).status_code == 404
    assert w.anonymous().get(_union("union-a")).status_code == 401
    assert w.anonymous().get(FED).status_code == 401


def test_federation_sees_counts_with_small_groups_withheld(kpi_world: World) -> None:
    r = kpi_world.as_("fed", "staff").get(FED)
    assert r.status_code == 200, r.get_json()
    data = r.get_json()
    assert data["small_group"] == 5
    rows = {u["union"]: u for u in data["unions"]}
    assert set(rows) == {"union-a", "union-b", "union-d"}  # union-c is not affiliated
    a = rows["union-a"]
    assert (a["registered"], a["roster"], a["coverage"]) == (7, 10, 70.0)
    assert a["new_this_month"] is None and "new_this_month" in a["withheld"]  # 2 people: fewer than 5
    assert (a["active_readers"], a["read_rate"]) == (6, 85.7)
    assert (a["turnaround_decided"], a["turnaround_median_hours"], a["turnaround_p90_hours"]) == (5, 30.0, 100.0)
    assert "units" not in a
    b = rows["union-b"]
    assert b["registered"] is None and {"registered", "new_this_month", "turnaround_decided",
                                        "turnaround_median_hours"} <= set(b["withheld"])
    assert b["turnaround_median_hours"] is None and b["turnaround_p90_hours"] is None
    assert b["active_readers"] == 0 and b["read_rate"] is None  # nothing reached: no figure, nobody singled out
    d = rows["union-d"]
    assert d["registered"] is None and d["council"] == "大阪県協"
    body = r.get_data(as_text=True)
    for secret in ("渡辺", "A新人", "a本社支部", "a工場支部", "慶弔費申請", "執行"):
        assert secret not in body, secret
    # The federation admin inherits the editor's board.
    assert {u["union"] for u in kpi_world.as_("fed", "fadmin").get(FED).get_json()["unions"]} == set(rows)


def test_council_officer_sees_only_their_council(kpi_world: World) -> None:
    r = kpi_world.as_("fed", "tokyo").get(FED)
    assert r.status_code == 200
    assert [u["union"] for u in r.get_json()["unions"]] == ["union-a", "union-b"]
    assert "D大阪労組" not in r.get_data(as_text=True)


def test_others_see_no_federation_board(kpi_world: World) -> None:
    w = kpi_world
    for who, status in ((("fed2", "staff"), 404), (("union-a", "aadmin"), 404), (("union-a", "a1"), 404),
                        (("platform", "aud"), 404), (("platform", "ops"), 404), (("fed", "nobody"), None)):
        if who == ("fed", "nobody"):
            continue
        r = w.as_(*who).get(FED)
        assert r.status_code == status, (who, r.status_code)
        assert "A通信労組" not in r.get_data(as_text=True)
    # A union slug in the federation's path is a 404, like a federation that does not exist.
    assert w.as_("union-a", "aadmin").get("/api/v1/federations/union-a/kpi").status_code == 404


def test_ended_affiliation_takes_the_union_off_the_board(kpi_world: World) -> None:
    from federation.extensions import db
    from tenants import service as ts
    from tenants.models import Affiliation, Tenant

    with kpi_world.app.app_context():
        union = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        aff = db.session.execute(select(Affiliation).where(Affiliation.union_id == union.id,
                                                           Affiliation.status == "active")).scalar_one()
        ts.end_affiliation(aff, actor="operator:test", side="union")
    rows = kpi_world.as_("fed", "staff").get(FED).get_json()["unions"]
    assert "union-a" not in {u["union"] for u in rows}
    # The union's own board is unaffected.
    assert kpi_world.as_("union-a", "aeditor").get(_union("union-a")).get_json()["registered"] == 7


@pytest.mark.parametrize("body", [
    {"roster_size": "abc"}, {"roster_size": -1}, {"roster_size": 1.5}, {"roster_size": True},
    {"roster_size": 10_000_001}, {"roster_size": "12"}, {}, {"roster_size": 5, "extra": 1}])
def test_roster_validation(world: World, body: dict) -> None:
    admin = world.as_("union-a", "aadmin")
    r = admin.put(f"{_union('union-a')}/roster", json=body)
    assert r.status_code == 422, (body, r.status_code)
    fields = r.get_json()["error"]["fields"]
    assert ("extra" if "extra" in body else "roster_size") in fields, fields
    assert admin.get(f"{_union('union-a')}/roster").get_json()["roster_size"] is None


def test_roster_set_and_cleared(world: World) -> None:
    admin = world.as_("union-a", "aadmin")
    assert admin.put(f"{_union('union-a')}/roster", json={"roster_size": 0}).get_json()["roster_size"] == 0
    assert admin.get(_union("union-a")).get_json()["coverage"] is None  # no roster to measure against
    assert admin.put(f"{_union('union-a')}/roster", json={"roster_size": 20}).get_json()["roster_size"] == 20
    assert admin.get(_union("union-a")).get_json()["coverage"] == 25.0  # 5 of 20
    assert admin.put(f"{_union('union-a')}/roster", json={"roster_size": None}).get_json()["roster_size"] is None
    # Each change is in the audit chain, with the numbers and who made it.
    entries = world.as_("platform", "aud").get("/api/v1/audit/log?tenant=union-a").get_json()["items"]
    changes = [e for e in entries if e["kind"] == "kpi.roster"]
    assert [(e["data"]["from"], e["data"]["to"]) for e in changes][-3:] in (
        [(None, 0), (0, 20), (20, None)], [(20, None), (0, 20), (None, 0)])
    assert {e["actor"] for e in changes} == {"user:union-a/aadmin"}


# --- the pages -----------------------------------------------------------------------------------------------------

def test_union_page_charts_and_roster_form(kpi_world: World) -> None:
    from web_support import Browser

    admin = Browser(kpi_world.app, "union-a", "aadmin")
    page = admin.text("/t/union-a/kpi")
    assert page.count("<svg class=\"chart\"") == 2 and "<title id=\"kpi-reg-title\">" in page
    assert "<desc id=\"kpi-units-desc\">" in page and "a工場支部" in page and "75.0%" in page
    assert "roster_size" in page and 'name="csrf_token"' in page
    assert "30時間" in page and "4.2日" in page  # median 30 hours; the 90th percentile, 100 hours, in days
    assert "/t/union-a/kpi" in page  # in the menu
    r = admin.post("/t/union-a/kpi/roster", {"roster_size": "１２"})  # full-width digits, as phones type them
    assert r.status_code == 302, r.status_code
    assert kpi_world.as_("union-a", "aadmin").get(f"{_union('union-a')}/roster").get_json()["roster_size"] == 12
    r = admin.post("/t/union-a/kpi/roster", {"roster_size": "たくさん"})
    assert r.status_code == 422 and 'aria-invalid="true"' in r.get_data(as_text=True)
    assert kpi_world.as_("union-a", "aadmin").get(f"{_union('union-a')}/roster").get_json()["roster_size"] == 12
    assert admin.post("/t/union-a/kpi/roster", {"roster_size": "5"}, token=False).status_code in (400, 403)
    # The editor sees the board without the form, and cannot post it.
    editor = Browser(kpi_world.app, "union-a", "aeditor")
    page = editor.text("/t/union-a/kpi")
    assert "<svg class=\"chart\"" in page and 'name="roster_size"' not in page
    assert editor.post("/t/union-a/kpi/roster", {"roster_size": "5"}).status_code == 403


def test_federation_page_and_who_may_open_which(kpi_world: World) -> None:
    from web_support import Browser

    page = Browser(kpi_world.app, "fed", "staff").text("/t/fed/kpi")
    assert "A通信労組" in page and "D大阪労組" in page and "<svg class=\"chart\"" in page
    assert "a工場支部" not in page and "渡辺" not in page and "/t/fed/kpi" in page
    tokyo = Browser(kpi_world.app, "fed", "tokyo").text("/t/fed/kpi")
    assert "A通信労組" in tokyo and "D大阪労組" not in tokyo
    for who, path in ((("union-a", "a1"), "/t/union-a/kpi"), (("union-b", "badmin"), "/t/union-a/kpi"),
                      (("fed", "staff"), "/t/union-a/kpi"), (("union-a", "aadmin"), "/t/fed/kpi"),
                      (("platform", "aud"), "/t/union-a/kpi"), (("fed2", "staff"), "/t/fed/kpi")):
        r = Browser(kpi_world.app, *who).get(path)
        assert r.status_code in (403, 404), (who, path, r.status_code)
        assert "a工場支部" not in r.get_data(as_text=True)
    # A plain member has no such menu item.
    assert "/t/union-a/kpi" not in Browser(kpi_world.app, "union-a", "a1").text("/inbox")


def test_month_starts_in_japan_time_and_percentiles_by_nearest_rank() -> None:
    from datetime import UTC, datetime

    from federation.kpi.service import month_start, turnaround_of

    # 00:30 on 1 December in Japan is still 30 November in UTC: the month has begun.
    start = month_start(datetime(2026, 11, 30, 15, 30, tzinfo=UTC))
    assert start.astimezone(UTC) == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert month_start(datetime(2026, 11, 30, 14, 59, tzinfo=UTC)).astimezone(UTC) \
        == datetime(2026, 10, 31, 15, 0, tzinfo=UTC)
    assert turnaround_of([float(h) for h in range(1, 11)]) == {"decided": 10, "median_hours": 5.5, "p90_hours": 9.0}
    assert turnaround_of([3.0]) == {"decided": 1, "median_hours": 3.0, "p90_hours": 3.0}
    assert turnaround_of([]) == {"decided": 0, "median_hours": None, "p90_hours": None}
