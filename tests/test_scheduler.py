"""The scheduler: the database is the source of truth, so a due notice is published exactly once, by whichever
scheduler ticks first, however late; event reminders go once to those who have not reacted."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PG_URL
from sqlalchemy import func, select, update

from devtools.local_push import LocalPushService
from federation import jobs

PROJECT = Path(__file__).resolve().parent.parent


def iso(at: datetime) -> str:
    return at.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


def create(api, slug, **extra) -> int:  # type: ignore[no-untyped-def]
    body = {"title": "定期大会", "body": "会場: 本部会議室", "category": "meeting", "audience": {"all": True}, **extra}
    r = api.post(f"/api/v1/tenants/{slug}/notices", json=body)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["id"]


def tick(app) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    from federation.scheduler.notices import tick as run_tick

    with app.app_context():
        out = run_tick()
    jobs.drain()
    return out


def set_column(app, notice_id: int, **values) -> None:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from federation.notices.models import Notice

    with app.app_context():
        db.session.execute(update(Notice).where(Notice.id == notice_id).values(**values))
        db.session.commit()


def status(app, notice_id: int) -> str:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from federation.notices.models import Notice

    with app.app_context():
        return db.session.execute(select(Notice.status).where(Notice.id == notice_id)).scalar_one()


def inbox_ids(api) -> list[int]:  # type: ignore[no-untyped-def]
    return [i["notice"]["id"] for i in api.get("/api/v1/me/inbox", query_string={"limit": 100}).get_json()["items"]]


def audit_kinds(app, kind: str) -> Counter:  # type: ignore[no-untyped-def]
    """notice id -> how many audit entries of `kind` name it."""
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    with app.app_context():
        rows = db.session.execute(select(AuditEntry.data).where(AuditEntry.kind == kind)).scalars()
        return Counter(json.loads(d)["notice_id"] for d in rows)


def test_tick_publishes_a_scheduled_notice_once_it_falls_due_and_only_once(world):
    staff = world.as_("fed", "staff")
    due_at = now() + timedelta(seconds=1.2)
    nid = create(staff, "fed", publish_at=iso(due_at))
    later = create(staff, "fed", publish_at=iso(now() + timedelta(days=1)))
    unscheduled = create(staff, "fed", publish_at=iso(now() + timedelta(seconds=1)))
    r = staff.patch(f"/api/v1/tenants/fed/notices/{unscheduled}", json={"publish_at": None})
    assert r.status_code == 200 and r.get_json()["status"] == "draft"
    a1 = world.as_("union-a", "a1")

    assert tick(world.app)["published"] == []
    assert status(world.app, nid) == "scheduled" and inbox_ids(a1) == []
    time.sleep(max(0.0, (due_at - now()).total_seconds()) + 0.05)
    assert tick(world.app)["published"] == [nid]
    assert inbox_ids(a1) == [nid]
    assert tick(world.app)["published"] == []
    assert inbox_ids(a1) == [nid]
    assert status(world.app, later) == "scheduled" and status(world.app, unscheduled) == "draft"

    published = staff.get(f"/api/v1/tenants/fed/notices/{nid}").get_json()
    assert published["status"] == "published" and published["published_at"] >= published["publish_at"]
    assert audit_kinds(world.app, "notice.publish") == Counter({nid: 1})
    assert audit_kinds(world.app, "notice.deliver") == Counter({nid: 2})  # union-a and union-b, once each
    progress = staff.get(f"/api/v1/tenants/fed/notices/{nid}/stats").get_json()["progress"]
    assert progress["done"] is True and progress["jobs"] == progress["jobs_done"] == 1


@pytest.fixture
def embedded_scheduler(app) -> Iterator[None]:  # type: ignore[no-untyped-def]
    from federation.scheduler import runner as scheduling

    yield
    started = scheduling._embedded
    if started is not None:
        started.shutdown(wait=True)
        scheduling._embedded = None


def test_a_scheduler_started_after_publish_at_has_passed_still_publishes(world, embedded_scheduler):
    from federation.scheduler import runner as scheduling

    editor = world.as_("union-a", "aeditor")
    staff = world.as_("fed", "staff")
    ids = [create(editor, "union-a", publish_at=iso(now() + timedelta(hours=1))),
           create(staff, "fed", publish_at=iso(now() + timedelta(hours=1)))]
    # The scheduler was down while these fell due, one of them a whole day ago.
    set_column(world.app, ids[0], publish_at=now() - timedelta(days=1))
    set_column(world.app, ids[1], publish_at=now() - timedelta(minutes=5))

    scheduling.start_embedded(world.app)
    deadline = time.monotonic() + 15
    while any(status(world.app, n) != "published" for n in ids):
        assert time.monotonic() < deadline, "the scheduler did not publish what fell due while it was down"
        time.sleep(0.05)
    jobs.drain()
    assert sorted(inbox_ids(world.as_("union-a", "a1"))) == sorted(ids)
    assert inbox_ids(world.as_("union-b", "badmin")) == [ids[1]]
    assert audit_kinds(world.app, "notice.publish") == Counter({n: 1 for n in ids})


def test_a_cascade_whose_start_job_was_lost_is_started_again_by_the_scheduler(world):
    staff = world.as_("fed", "staff")
    lost = create(staff, "fed")
    recent = create(staff, "fed")
    # Both were published (committed) but their start jobs never ran: a process died between commit and enqueue.
    set_column(world.app, lost, status="published", published_at=now() - timedelta(minutes=10))
    set_column(world.app, recent, status="published", published_at=now())
    a1 = world.as_("union-a", "a1")
    assert inbox_ids(a1) == []

    assert tick(world.app)["requeued"] == [lost]  # the recent one may still have its job on the way
    assert inbox_ids(a1) == [lost]
    assert tick(world.app)["requeued"] == []
    assert audit_kinds(world.app, "notice.deliver") == Counter({lost: 2})
    progress = staff.get(f"/api/v1/tenants/fed/notices/{lost}/stats").get_json()["progress"]
    assert progress["done"] is True


@pytest.fixture
def push(app) -> Iterator[LocalPushService]:  # type: ignore[no-untyped-def]
    from federation.push import vapid

    vapid.forget()
    vapid.generate(app.config["MUSUBI"].vapid_file)
    with LocalPushService() as service:
        yield service
    vapid.forget()


def test_reminders_go_once_to_recipients_who_have_not_reacted(world, push):
    from tenants import service as ts
    from tenants.models import Tenant

    with world.app.app_context():
        from federation.extensions import db

        union_b = db.session.execute(select(Tenant).where(Tenant.slug == "union-b")).scalar_one()
        # A second officer of the opted-out union, so that both an officer who reacted and one who did not exist.
        ts.grant_role(union_b, ts.user_in(union_b, "b1"), "union_admin", None, actor="operator:test")

    devices = {}
    for tenant, login_id in (("union-a", "a1"), ("union-a", "a2"), ("union-a", "a3"), ("union-b", "badmin"),
                             ("union-b", "b1"), ("union-b", "b2"), ("union-c", "c1")):
        sub = push.new_subscription()
        assert world.as_(tenant, login_id).post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
        devices[login_id] = sub["endpoint"]
    staff = world.as_("fed", "staff")
    starts = now() + timedelta(hours=3)
    nid = create(staff, "fed", category="seminar", event={"starts_at": iso(starts), "place": "本部"},
                 reminder_lead_minutes=60)
    assert staff.post(f"/api/v1/tenants/fed/notices/{nid}/publish").status_code == 202
    jobs.drain()
    notified = {m.endpoint for m in push.messages()}
    assert notified == {devices[u] for u in ("a1", "a2", "a3", "badmin", "b1")}

    world.as_("union-a", "a1").put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "attend"})
    world.as_("union-a", "a2").post(f"/api/v1/me/inbox/{nid}/read")  # read, but has not said whether they come
    world.as_("union-b", "badmin").put(f"/api/v1/me/inbox/{nid}/reaction", json={"stamp": "absent"})

    def reminders() -> Counter:
        return Counter(m.endpoint for m in push.messages() if json.loads(m.payload)["kind"] == "reminder")

    assert tick(world.app)["reminded"] == []  # two hours before it is due
    assert reminders() == Counter()
    # Time moves on: the reminder (an hour before the start) is now due.
    set_column(world.app, nid, reminder_at=now() - timedelta(seconds=1))
    assert tick(world.app)["reminded"] == [nid]
    assert reminders() == Counter({devices["a2"]: 1, devices["a3"]: 1, devices["b1"]: 1})
    for m in push.messages():
        if json.loads(m.payload)["kind"] == "reminder":
            assert m.topic == f"r{nid}" and m.ttl > 0 and json.loads(m.payload)["notice_id"] == nid

    # Only once: neither a later tick nor the reminder job run again sends another.
    assert tick(world.app)["reminded"] == []
    from federation.push.sender import push_reminder

    with world.app.app_context():
        push_reminder(nid)
    jobs.drain()
    assert reminders() == Counter({devices["a2"]: 1, devices["a3"]: 1, devices["b1"]: 1})


def test_no_reminder_for_a_retracted_notice_or_an_event_already_started(world, push):
    sub = push.new_subscription()
    world.as_("union-a", "a1").post("/api/v1/me/push-subscriptions", json=sub)
    editor = world.as_("union-a", "aeditor")
    event = {"starts_at": iso(now() + timedelta(hours=2))}
    retracted = create(editor, "union-a", event=event)
    started = create(editor, "union-a", event=event)
    for nid in (retracted, started):
        assert editor.post(f"/api/v1/tenants/union-a/notices/{nid}/publish").status_code == 202
    jobs.drain()
    editor.delete(f"/api/v1/tenants/union-a/notices/{retracted}")
    set_column(world.app, retracted, reminder_at=now() - timedelta(minutes=1))
    set_column(world.app, started, reminder_at=now() - timedelta(hours=1), event_starts_at=now() - timedelta(minutes=1))
    assert tick(world.app)["reminded"] == []
    assert not [m for m in push.messages() if json.loads(m.payload)["kind"] == "reminder"]


# --- reminders ask the firewall again when they go (F2, F7) ------------------------------------------------------

def _seminar_with_devices(world, push) -> tuple[int, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A federation seminar with a reminder, published to union-a (opted in) and union-b (opted out), every
    recipient and a neighbour with one device."""
    devices = {}
    for tenant, login_id in (("union-a", "aadmin"), ("union-a", "a1"), ("union-a", "a2"), ("union-b", "badmin"),
                             ("union-b", "b1"), ("union-c", "c1")):
        sub = push.new_subscription()
        assert world.as_(tenant, login_id).post("/api/v1/me/push-subscriptions", json=sub).status_code == 201
        devices[login_id] = sub["endpoint"]
    staff = world.as_("fed", "staff")
    nid = create(staff, "fed", category="seminar", event={"starts_at": iso(now() + timedelta(hours=3))},
                 reminder_lead_minutes=60)
    assert staff.post(f"/api/v1/tenants/fed/notices/{nid}/publish").status_code == 202
    jobs.drain()
    assert {m.endpoint for m in push.messages()} == {devices[u] for u in ("aadmin", "a1", "a2", "badmin")}
    return nid, devices


def _reminded(push) -> set[str]:  # type: ignore[no-untyped-def]
    return {m.endpoint for m in push.messages() if json.loads(m.payload)["kind"] == "reminder"}


def _change(app, what) -> None:  # type: ignore[no-untyped-def]
    from tenants import service as ts
    from tenants.models import Tenant

    with app.app_context():
        from federation.extensions import db

        def tenant(slug):  # type: ignore[no-untyped-def]
            return db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one()

        what(ts, tenant)


def test_a_reminder_goes_only_where_the_firewall_lets_the_notice_go_now(world, push):
    nid, devices = _seminar_with_devices(world, push)

    def between_publish_and_reminder(ts, tenant):  # type: ignore[no-untyped-def]
        union_a, union_b = tenant("union-a"), tenant("union-b")
        ts.set_cascade(union_a, "opted_out", actor="operator:test")  # only its officers for relay from now on
        ts.end_affiliation(ts.live_affiliation(union_b), actor="operator:test", side="union")  # nobody there
        ts.set_user_status(union_a, ts.user_in(union_a, "a2"), "suspended", actor="operator:test")

    _change(world.app, between_publish_and_reminder)
    set_column(world.app, nid, reminder_at=now() - timedelta(seconds=1))
    assert tick(world.app)["reminded"] == [nid]
    assert _reminded(push) == {devices["aadmin"]}


def test_a_reminder_still_reaches_an_opted_in_union_and_an_opted_out_unions_officers(world, push):
    nid, devices = _seminar_with_devices(world, push)
    set_column(world.app, nid, reminder_at=now() - timedelta(seconds=1))
    assert tick(world.app)["reminded"] == [nid]
    assert _reminded(push) == {devices[u] for u in ("aadmin", "a1", "a2", "badmin")}


@pytest.mark.parametrize("lost", ["role revoked", "suspended"])
def test_no_reminder_once_the_author_may_no_longer_publish(world, push, lost):
    nid, _ = _seminar_with_devices(world, push)

    def author_loses_it(ts, tenant):  # type: ignore[no-untyped-def]
        fed = tenant("fed")
        staff = ts.user_in(fed, "staff")
        if lost == "suspended":
            ts.set_user_status(fed, staff, "suspended", actor="operator:test")
        else:
            ts.revoke_role(fed, staff, "fed_editor", None, actor="operator:test")

    _change(world.app, author_loses_it)
    set_column(world.app, nid, reminder_at=now() - timedelta(seconds=1))
    assert tick(world.app)["reminded"] == [nid]
    assert _reminded(push) == set()


SCHEDULER_PROCESS = """
import json, sys, time
from federation import create_app, jobs
from federation.extensions import db
from federation.scheduler.notices import tick

app = create_app()
start, stop = float(sys.argv[1]), float(sys.argv[2])
published, errors = [], []
with app.app_context():
    db.session.execute(db.text("SELECT 1"))  # connect before the start line
while time.time() < start:
    time.sleep(0.0005)
while time.time() < stop:
    with app.app_context():
        try:
            published += tick()["published"]
        except Exception as exc:
            errors.append(repr(exc))
            db.session.rollback()
jobs.drain(120)
runner = jobs._backend
print(json.dumps({"published": published, "errors": errors,
                  "failed_jobs": [repr(f) for f in getattr(runner, "failures", [])]}))
"""


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="two scheduler processes need a shared PostgreSQL (MUSUBI_TEST_DATABASE_URL)")
def test_two_scheduler_processes_publish_each_due_notice_exactly_once(world, tmp_path):
    from federation.audit.chain import verify
    from federation.auth.service import subject_of
    from federation.extensions import db
    from federation.notices import service
    from federation.notices.models import Delivery, Notice
    from tenants.models import Tenant, User

    app = world.app
    with app.app_context():
        fed = db.session.execute(select(Tenant).where(Tenant.slug == "fed")).scalar_one()
        union_a = db.session.execute(select(Tenant).where(Tenant.slug == "union-a")).scalar_one()
        authors = [(fed, db.session.execute(select(User).where(User.tenant_id == fed.id, User.login_id == "staff"))
                    .scalar_one()),
                   (union_a, db.session.execute(select(User).where(User.tenant_id == union_a.id,
                                                                   User.login_id == "aeditor")).scalar_one())]
        ids = []
        for n in range(120):
            tenant, author = authors[n % 2]
            ids.append(service.create_notice(tenant, author, subject_of(author), {
                "title": f"一斉通知 {n}", "body": "本文", "category": "general", "audience": {"all": True},
                "publish_at": now() + timedelta(hours=1)}).id)
        # A third are due when both start ticking on the same instant; the rest fall due in waves while they tick,
        # so that the two race for rows again and again, not only once.
        start = time.time() + 3  # time for both processes to import and connect first
        for n, notice_id in enumerate(ids):
            due = datetime.fromtimestamp(start, UTC) + timedelta(seconds=max(0, n - 40) // 5 * 0.1 - 0.5)
            db.session.execute(update(Notice).where(Notice.id == notice_id).values(publish_at=due))
        db.session.commit()

    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env.update(DATABASE_URL=PG_URL, MUSUBI_INSTANCE=str(tmp_path), SECRET_KEY="test-secret-key-0123456789abcdef")
    procs = [subprocess.Popen([sys.executable, "-c", SCHEDULER_PROCESS, str(start), str(start + 3)], cwd=PROJECT,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    claimed = [r["published"] for r in results]
    assert sorted(claimed[0] + claimed[1]) == sorted(ids), "each due notice claimed by exactly one scheduler"
    assert not set(claimed[0]) & set(claimed[1])
    assert all(r["failed_jobs"] == [] for r in results), results
    assert audit_kinds(app, "notice.publish") == Counter({n: 1 for n in ids})
    fed_ids = ids[0::2]
    assert audit_kinds(app, "notice.deliver") == Counter({n: 2 for n in fed_ids})
    with app.app_context():
        per_scope = db.session.execute(select(Delivery.notice_id, Delivery.tenant_id, func.count())
                                       .where(Delivery.notice_id.in_(ids))
                                       .group_by(Delivery.notice_id, Delivery.tenant_id)).all()
        assert len(per_scope) == len(fed_ids) * 2 + len(ids[1::2]) and {c for *_, c in per_scope} == {1}
        assert db.session.execute(select(func.count()).select_from(Notice).where(
            Notice.id.in_(ids), Notice.cascade_done_at.is_(None))).scalar_one() == 0
        assert verify().ok
    a1, seen, cursor = world.as_("union-a", "a1"), [], None
    while True:
        page = a1.get("/api/v1/me/inbox", query_string={"limit": 100, **({"cursor": cursor} if cursor else {})})
        seen += [i["notice"]["id"] for i in page.get_json()["items"]]
        cursor = page.get_json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)


def test_a_cascade_whose_delivery_job_was_lost_is_finished_by_the_scheduler(world, app):
    """A delivery job lost for good (retries exhausted, Redis emptied) leaves a union without the notice; after
    ten minutes the tick delivers what is missing, deciding F2 again, and marks the cascade done."""
    from federation.extensions import db
    from federation.notices.models import Delivery, Notice
    from tenants.models import Tenant

    staff = world.as_("fed", "staff")
    nid = create(staff, "fed", title="賃金実態調査のお願い")
    assert staff.post(f"/api/v1/tenants/fed/notices/{nid}/publish").status_code == 202
    jobs.drain()
    member = world.as_("union-a", "a1")
    assert nid in inbox_ids(member)
    with app.app_context():
        union_a = db.session.execute(select(Tenant.id).where(Tenant.slug == "union-a")).scalar_one()
        # What a lost job looks like: union-a never got its delivery and the cascade never finished.
        db.session.execute(Delivery.__table__.delete().where(Delivery.notice_id == nid,
                                                             Delivery.tenant_id == union_a))
        db.session.execute(update(Tenant).where(Tenant.id == union_a).values(inbox_version=Tenant.inbox_version + 1))
        db.session.commit()
    set_column(app, nid, cascade_done_at=None, published_at=now() - timedelta(minutes=11))
    assert nid not in inbox_ids(member)
    out = tick(app)
    assert out["resumed"] == [nid]
    assert nid in inbox_ids(member)
    with app.app_context():
        notice = db.session.get(Notice, nid)
        assert notice.cascade_done_at is not None
        deliveries = db.session.execute(select(func.count()).select_from(Delivery).where(
            Delivery.notice_id == nid, Delivery.tenant_id == union_a)).scalar_one()
    assert deliveries == 1
    assert audit_kinds(app, "notice.resume")[nid] == 1
    assert tick(app)["resumed"] == []  # done: not resumed again
