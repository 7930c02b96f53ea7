"""Pushes of the two-way threads: an answer to the one who asked, a hidden comment to its author, a message of the
federation's editors to the officers of the union whose thread it is.

Each job reloads what it sends about and asks the firewall, as it runs, whether each person may still read the
thread (F7): a member suspended or an officer whose role was taken away since gets nothing.
"""
from __future__ import annotations

from federation.auth.service import subject_of
from federation.extensions import db
from federation.firewall import firewall
from federation.jobs import job
from federation.notices.cascade import recipients_now
from federation.notices.models import Notice
from federation.push.messages import message_payload, send_to_users
from federation.twoway.models import Comment
from tenants.models import User

TTL = 24 * 3600
LINES = {
    "answered": "あなたの質問に回答が届きました",
    "hidden": "あなたのコメントは役員により非表示になりました",
    "officer_message": "役員連絡に産別からのメッセージが届きました",
}


def _may_read(user: User | None) -> bool:
    if user is None or user.status != "active":
        return False
    return firewall.allowed(subject_of(user), user.tenant.slug, "comments", "read")


@job
def push_comment(comment_id: int, kind: str) -> None:
    comment = db.session.get(Comment, comment_id)
    if comment is None:
        return
    notice = db.session.get(Notice, comment.notice_id)
    if notice is None or notice.status != "published":
        return
    if kind == "officer_message":
        # The union admins the notice reaches right now in this union: the cascade's own firewall path.
        reach = recipients_now(notice, unions=[comment.tenant_id])
        users = [] if reach is None else [u for u in db.session.execute(reach).scalars()]
    else:
        target_id = comment.author_id
        if kind == "answered":
            parent = db.session.get(Comment, comment.parent_id) if comment.parent_id else None
            if parent is None or parent.hidden_at is not None:
                return
            target_id = parent.author_id
        target = db.session.get(User, target_id)
        users = [target.id] if target is not None and _may_read(target) else []
    if not users:
        return
    payload = message_payload(kind, notice.title, LINES[kind], f"/notices/{notice.id}#comments", notice.tenant.name)
    send_to_users(users, payload, topic=f"c{comment.id}", ttl=TTL, job_key=f"c{comment.id}{kind[0]}")
