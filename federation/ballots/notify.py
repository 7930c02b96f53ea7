"""Pushes of a ballot: to the roll when it opens, and once to those who have not voted a day before it closes.

Both are jobs that read the roll again when they run and keep only members still active (F7) whom the firewall
still lets vote in that tenant: a member suspended or moved out since the opening gets nothing.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from federation.ballots.models import Ballot, BallotVoter
from federation.extensions import db, utcnow
from federation.jobs import enqueue_after_commit, job
from federation.push.messages import message_payload, send_to_users
from tenants.models import Tenant, User

TTL = 12 * 3600
REMIND_BEFORE = timedelta(hours=24)


def announce(ballot: Ballot) -> None:
    enqueue_after_commit(push_ballot, ballot.id, "opened", job_id=f"ballot-{ballot.id}-opened")


def _recipients(ballot: Ballot, tenant: Tenant, only_not_voted: bool) -> list[int]:
    from federation.auth.service import subject_of
    from federation.firewall import firewall

    q = (select(User).join(BallotVoter, BallotVoter.user_id == User.id)
         .where(BallotVoter.ballot_id == ballot.id, User.tenant_id == tenant.id, User.status == "active"))
    if only_not_voted:
        q = q.where(BallotVoter.voted.is_(False))
    return [u.id for u in db.session.execute(q).scalars()
            if firewall.allowed(subject_of(u), tenant.slug, "ballots", "vote")]


@job
def push_ballot(ballot_id: int, why: str) -> None:
    ballot = db.session.get(Ballot, ballot_id)
    if ballot is None or ballot.status != "open":
        return
    tenant = db.session.get(Tenant, ballot.tenant_id)
    if tenant is None:
        return
    users = _recipients(ballot, tenant, only_not_voted=why == "reminder")
    line = "投票が始まりました" if why == "opened" else "投票の締切が近づいています（まだ投票されていません）"
    payload = message_payload(f"ballot_{why}", ballot.title, line, f"/ballots/{ballot.id}", tenant.name)
    send_to_users(users, payload, topic=f"b{ballot.id}", ttl=TTL, job_key=f"b{ballot.id}-{why}")


def remind_due() -> list[int]:
    """The scheduler's part: one reminder per open ballot, a day before it closes."""
    now = utcnow()
    ballots = db.session.execute(select(Ballot).where(
        Ballot.status == "open", Ballot.reminded_at.is_(None), Ballot.closes_at <= now + REMIND_BEFORE,
        Ballot.closes_at > now)).scalars().all()
    for ballot in ballots:
        ballot.reminded_at = now
        enqueue_after_commit(push_ballot, ballot.id, "reminder", job_id=f"ballot-{ballot.id}-reminder")
    db.session.commit()
    return [b.id for b in ballots]
