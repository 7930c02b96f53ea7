"""Read marks and stamps: the first read time stays, a stamp implies read, F4's sharing follows the stamp, and taps
that arrive at the same moment (two phones, a double tap) each get an answer and leave one receipt."""
from __future__ import annotations

import threading

from sqlalchemy import select
from test_web_pages import publish


def _receipts(app, notice_id: int) -> list[tuple]:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from federation.notices.models import Receipt

    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            select(Receipt.user_id, Receipt.read_at, Receipt.reaction, Receipt.shared_with_organizer)
            .where(Receipt.notice_id == notice_id)).all()]


def test_first_read_time_stays_and_a_stamp_implies_read(world, app):
    seminar = publish(world, "fed", "staff", {"all": True})
    a1 = world.as_("union-a", "a1")
    first = a1.post(f"/api/v1/me/inbox/{seminar}/read").get_json()
    assert first["read_at"] is not None and first["reaction"] is None and first["shared_with_organizer"] is False
    again = a1.post(f"/api/v1/me/inbox/{seminar}/read").get_json()
    assert again == first
    attend = a1.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "attend"}).get_json()
    # F4: attending the federation's seminar is the one thing shared with the organizer.
    assert attend["read_at"] == first["read_at"] and attend["reaction"] == "attend" and attend["shared_with_organizer"]
    absent = a1.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "absent"}).get_json()
    assert absent["reaction"] == "absent" and absent["shared_with_organizer"] is False
    cleared = a1.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": None}).get_json()
    assert cleared["reaction"] is None and cleared["read_at"] == first["read_at"]
    assert len(_receipts(app, seminar)) == 1
    # A stamp on an unread notice marks it read in the same write.
    meeting = publish(world, "union-a", "aeditor", {"all": True}, title="職場集会", category="meeting", event=False)
    stamped = a1.put(f"/api/v1/me/inbox/{meeting}/reaction", json={"stamp": "read"}).get_json()
    assert stamped["read_at"] is not None and stamped["shared_with_organizer"] is False
    assert a1.get("/api/v1/me/inbox").get_json()["unread"] == 0


def test_outside_the_inbox_nothing_is_written(world, app):
    seminar = publish(world, "fed", "staff", {"all": True})
    # union-b did not opt in: its members do not have the notice, and their tap is a 404 that writes nothing.
    b1 = world.as_("union-b", "b1")
    assert b1.post(f"/api/v1/me/inbox/{seminar}/read").status_code == 404
    assert b1.put(f"/api/v1/me/inbox/{seminar}/reaction", json={"stamp": "attend"}).status_code == 404
    assert _receipts(app, seminar) == []


def test_taps_at_the_same_moment_each_get_an_answer_and_leave_one_receipt(world, app):
    seminar = publish(world, "fed", "staff", {"all": True})
    a1 = world.as_("union-a", "a1")
    headers = {"Authorization": f"Bearer {a1.token}"}
    barrier = threading.Barrier(6)
    answers: list[int] = []

    def tap(i: int) -> None:
        client = app.test_client()
        barrier.wait()
        if i % 2:
            r = client.post(f"/api/v1/me/inbox/{seminar}/read", headers=headers)
        else:
            r = client.put(f"/api/v1/me/inbox/{seminar}/reaction", headers=headers, json={"stamp": "attend"})
        answers.append(r.status_code)

    threads = [threading.Thread(target=tap, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(answers) == [200] * 6
    rows = _receipts(app, seminar)
    assert len(rows) == 1 and rows[0][1] is not None and rows[0][2] == "attend"


def test_opening_the_notice_page_marks_it_read_once_and_again_writes_nothing(world, app):
    from web_support import Browser

    from federation.extensions import db
    from tenants.models import User

    seminar = publish(world, "fed", "staff", {"all": True})
    page = Browser(app, "union-a", "a1")

    def version() -> int:
        with app.app_context():
            return db.session.execute(select(User.inbox_version).where(User.login_id == "a1")).scalar_one()

    start = version()
    assert page.get(f"/notices/{seminar}").status_code == 200
    first = _receipts(app, seminar)
    assert len(first) == 1 and first[0][1] is not None and version() == start + 1
    assert page.get(f"/notices/{seminar}").status_code == 200
    assert _receipts(app, seminar) == first and version() == start + 1
