"""Who may read and write which comments, questions and answers: the one path for the API and the pages alike.

Every call starts from the tenant in the path (after `access_tenant` let the caller reach `comments` there) and a
notice id, and decides the caller's *standing* towards that notice's threads:

- `officer`  an editor of the notice's own tenant who may see the notice (`reads.officer_notice`: a council
             officer only their own notices). On a union's notice: its union officers. On a federation's notice:
             its editors, who read every thread, with the names and unions of those who asked (F4: they asked
             to be named).
- `recipient` the notice is in the caller's inbox (`reads.in_inbox`, so another union's notice never leaks by id)
             and the path names the caller's own union. They read their own union's thread only.

Anyone else: 404, as for a notice that does not exist (F8). A thread is one union's (`Comment.tenant_id`); no query
here reads a thread of a union other than the caller's own, except for the federation editors of the notice.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from federation.access import tenant_by_slug
from federation.audit.chain import record
from federation.dbutil import get_row
from federation.errors import APIError, invalid
from federation.extensions import db, utcnow
from federation.firewall import Denied, Subject, firewall
from federation.jobs import enqueue_after_commit
from federation.notices import reads
from federation.notices.models import Delivery, Notice
from federation.twoway.models import Comment
from tenants.models import Tenant, User
from tenants.ordering import TENANT_ORDER

OFFICER, RECIPIENT = "officer", "recipient"


@dataclass
class Standing:
    notice: Notice
    tenant: Tenant  # the tenant in the path
    subject: Subject
    role: str  # OFFICER or RECIPIENT
    moderator: bool  # may hide comments in the threads they read

    @property
    def federation_notice(self) -> bool:
        return self.notice.tenant.kind == "federation"

    @property
    def mode(self) -> str:
        """What replying to this notice means: `comment` (a union's notice), `officer` (the officers' channel) or
        `question` (any other federation notice)."""
        if not self.federation_notice:
            return "comment"
        return "officer" if self.notice.officers_only else "question"


def standing(tenant: Tenant, caller: Any, subject: Subject, notice_id: int) -> Standing:
    """The caller's standing towards a notice's threads, or Denied(404)."""
    if firewall.allowed(subject, tenant.slug, "notices", "write"):
        try:
            notice = reads.officer_notice(tenant, subject, notice_id)
        except Denied:
            pass  # not theirs to edit: maybe it reached them as a recipient
        else:
            return Standing(notice, tenant, subject, OFFICER,
                            firewall.allowed(subject, tenant.slug, "comments", "manage"))
    if tenant.slug != subject.tenant or tenant.kind != "union":
        raise Denied(404)
    reads.in_inbox(caller, subject, notice_id)
    notice = db.session.get(Notice, notice_id)
    # A union's officers moderate their own union's thread of a notice they received (comments on their own
    # notices, their officers' channel thread); questions to the federation stay the federation's to manage.
    moderator = firewall.allowed(subject, tenant.slug, "comments", "manage")
    return Standing(notice, tenant, subject, RECIPIENT, moderator)


# --- reading --------------------------------------------------------------------------------------------------------

def _names(comments: list[Comment]) -> dict[int, User]:
    ids = {c.author_id for c in comments}
    return {u.id: u for u in db.session.execute(select(User).where(User.id.in_(ids))).scalars()} if ids else {}


def thread(st: Standing, caller: Any, *, union: str | None = None) -> list[dict[str, Any]]:
    """The comments the caller may read, oldest first, each with its answers.

    - A union notice: the union's thread (its officers also see hidden comments, marked).
    - The officers' channel: a union officer sees their union's thread; the federation's editors every union's,
      or the one named by `union`.
    - Questions: a member sees their own questions with every answer to them, and the questions the federation
      answered publicly, without the asker's name or union (the FAQ). The federation's editors see every question
      with the asker's name and union.
    """
    notice = st.notice
    stmt = select(Comment).where(Comment.notice_id == notice.id)
    if st.role == RECIPIENT:
        stmt = stmt.where(Comment.tenant_id == st.tenant.id)
    elif not st.federation_notice:
        stmt = stmt.where(Comment.tenant_id == notice.tenant_id)
    elif union is not None:
        target = tenant_by_slug(union)
        stmt = stmt.where(Comment.tenant_id == (target.id if target else -1))
    rows = list(db.session.execute(stmt.order_by(Comment.id)).scalars())
    if st.role == RECIPIENT and st.mode == "question":
        mine = {c.id for c in rows if c.kind == "question" and c.author_id == st.subject.user_id}
        rows = [c for c in rows if c.id in mine or (c.kind == "answer" and c.parent_id in mine)]
        rows += _public_faq(notice, exclude=mine)
        rows.sort(key=lambda c: c.id)
    if not (st.moderator or (st.role == OFFICER and st.federation_notice)):
        rows = [c for c in rows if c.hidden_at is None]
    return _shape(st, rows)


def _public_faq(notice: Notice, *, exclude: set[int]) -> list[Comment]:
    """Questions answered publicly, with their public answers: what every recipient of the notice sees."""
    answers = list(db.session.execute(select(Comment).where(
        Comment.notice_id == notice.id, Comment.kind == "answer", Comment.public.is_(True),
        Comment.hidden_at.is_(None))).scalars())
    asked = {a.parent_id for a in answers} - exclude
    if not asked:
        return []
    questions = list(db.session.execute(select(Comment).where(
        Comment.id.in_(asked), Comment.hidden_at.is_(None))).scalars())
    shown = {q.id for q in questions}
    return questions + [a for a in answers if a.parent_id in shown]


def _shape(st: Standing, rows: list[Comment]) -> list[dict[str, Any]]:
    users = _names(rows)
    unions = {t.id: t for t in db.session.execute(select(Tenant).where(
        Tenant.id.in_({c.tenant_id for c in rows}))).scalars()} if rows else {}
    by_parent: dict[int, list[dict[str, Any]]] = {}
    top: list[dict[str, Any]] = []
    for c in rows:
        item = _one(st, c, users.get(c.author_id), unions.get(c.tenant_id))
        if c.parent_id is not None:
            by_parent.setdefault(c.parent_id, []).append(item)
        else:
            top.append(item)
    for item in top:
        item["answers"] = by_parent.get(item["id"], [])
    return top


def _one(st: Standing, c: Comment, author: User | None, union: Tenant | None) -> dict[str, Any]:
    """One comment as this caller may see it. Names: on a union's notice and on the officers' channel everyone in
    the thread is named (they write in the open, to their own union and the federation); a question is named only
    to the asker and to the federation's editors (F4: the asker agreed to that, and to nothing more). The union a
    thread belongs to is shown only to the federation's editors: a recipient reads their own union's thread, and a
    published answer must not say which union asked."""
    own = c.author_id == st.subject.user_id
    fed_editor = st.role == OFFICER and st.federation_notice
    from_author_tenant = author is not None and st.federation_notice and author.tenant_id == st.notice.tenant_id
    named = own or fed_editor or from_author_tenant or c.kind != "question"
    visible_text = c.hidden_at is None or st.moderator or fed_editor
    out: dict[str, Any] = {
        "id": c.id, "kind": c.kind, "body": c.body if visible_text else None, "created_at": c.created_at,
        "public": c.public, "mine": own, "hidden": c.hidden_at is not None,
        "author": {"display_name": author.display_name, "name_kana": author.name_kana} if named and author else None,
        "union": union.slug if fed_editor and union is not None else None,
        "from_federation": from_author_tenant,
    }
    if c.parent_id is not None:
        out["parent_id"] = c.parent_id
    return out


def union_threads(st: Standing) -> list[dict[str, Any]]:
    """The federation's view of the officers' channel or the questions: per union, how many messages, in 50-on
    order of the union's reading. Only for the notice's own editors."""
    if st.role != OFFICER or not st.federation_notice:
        raise Denied(404)
    rows = db.session.execute(select(Tenant.slug, Tenant.name, Comment.id, Comment.kind, Comment.parent_id,
                                     User.tenant_id.label("author_tenant"), Comment.tenant_id)
                              .join(Tenant, Tenant.id == Comment.tenant_id).join(User, User.id == Comment.author_id)
                              .where(Comment.notice_id == st.notice.id).order_by(*TENANT_ORDER, Comment.id)).all()
    out: dict[str, dict[str, Any]] = {}
    answered = {r.parent_id for r in rows if r.kind == "answer"}
    for r in rows:
        entry = out.setdefault(r.slug, {"union": r.slug, "name": r.name, "messages": 0, "unanswered": 0})
        if r.kind != "answer" and r.author_tenant == r.tenant_id:  # written in the union, not the federation's own
            entry["messages"] += 1
            entry["unanswered"] += r.id not in answered
    return list(out.values())


# --- writing --------------------------------------------------------------------------------------------------------

def _require_open(notice: Notice) -> None:
    if notice.status != "published":
        raise APIError(409, "the notice is not published: nothing can be added to it",
                       fields={"notice": [notice.status]})


def post(st: Standing, caller: User, body: dict[str, Any]) -> Comment:
    """A comment, a question or an officers' channel message, by what the notice is (`Standing.mode`)."""
    firewall.require(st.subject, st.tenant.slug, "comments", "write")
    notice = st.notice
    _require_open(notice)
    mode = st.mode
    union_slug = body.get("union")
    if union_slug is not None and not (st.role == OFFICER and mode == "officer"):
        raise invalid("union", "only the federation's editors name a union, on the officers' channel")
    if body.get("consent") is not None and mode != "question":
        raise invalid("consent", "only a question to the federation asks for consent")
    if mode == "comment":
        if not notice.comments:
            raise APIError(409, "comments: this notice does not take comments", fields={"comments": ["closed"]})
        thread_union = notice.tenant
    elif mode == "question":
        if st.role == OFFICER:
            raise invalid("body", "the federation answers questions (POST .../comments/{id}/answer); it does not ask")
        if body.get("consent") is not True:
            raise invalid("consent", "a question goes to the federation with your name and union: "
                                     "send consent: true once you agree")
        thread_union = st.tenant
    elif st.role == OFFICER:
        if not union_slug:
            raise invalid("union", "name the union whose officers this message is for")
        thread_union = _reached_union(notice, union_slug)
    else:
        thread_union = st.tenant
    comment = Comment(notice_id=notice.id, tenant_id=thread_union.id, author_id=caller.id, kind=mode,
                      body=body["body"], public=False, created_at=utcnow(),
                      consent_at=utcnow() if mode == "question" else None)
    db.session.add(comment)
    db.session.flush()
    if st.federation_notice:
        # A question carries a member's name to the federation, an officers' message crosses between the two
        # tenants: both are cross-tenant writes (F6), audited without their text.
        record(f"comment.{mode}", actor=st.subject.key, tenant=st.subject.tenant,
               other_tenant=notice.tenant.slug if st.role == RECIPIENT else thread_union.slug,
               data={"notice_id": notice.id, "comment_id": comment.id})
    if st.role == OFFICER and mode == "officer":
        from federation.twoway import notify

        enqueue_after_commit(notify.push_comment, comment.id, "officer_message")
    db.session.commit()
    return comment


def _reached_union(notice: Notice, slug: str) -> Tenant:
    union = tenant_by_slug(slug)
    if union is None or union.kind != "union" or not reads.reached_union(union, notice):
        raise invalid("union", f"{slug} did not receive this notice")
    return union


def _comment_of(st: Standing, comment_id: int) -> Comment:
    """A comment of this notice in a thread the caller reads; 404 otherwise (F8)."""
    c = get_row(Comment, comment_id)
    if c is None or c.notice_id != st.notice.id:
        raise Denied(404)
    if st.role == RECIPIENT and c.tenant_id != st.tenant.id:
        raise Denied(404)
    if st.role == OFFICER and not st.federation_notice and c.tenant_id != st.notice.tenant_id:
        raise Denied(404)
    return c


def answer(st: Standing, caller: User, comment_id: int, body: dict[str, Any]) -> Comment:
    """An editor of a federation notice answers a question (privately, or publicly without the asker's name) or an
    officers' channel message (in that union's thread only)."""
    if st.role != OFFICER or not st.federation_notice:
        raise Denied(404 if st.role == RECIPIENT else 403)
    firewall.require(st.subject, st.tenant.slug, "comments", "answer")
    _require_open(st.notice)
    question = _comment_of(st, comment_id)
    if question.kind not in ("question", "officer") or question.parent_id is not None:
        raise invalid("comment_id", "only a question or an officers' message is answered")
    if question.hidden_at is not None:
        raise APIError(409, "comment_id: the comment is hidden", fields={"comment_id": ["hidden"]})
    if question.kind == "officer" and body["public"]:
        raise invalid("public", "the officers' channel stays between the federation and each union")
    reply = Comment(notice_id=st.notice.id, tenant_id=question.tenant_id, author_id=caller.id, kind="answer",
                    parent_id=question.id, public=body["public"], body=body["body"], created_at=utcnow())
    db.session.add(reply)
    db.session.flush()
    record("comment.answer", actor=st.subject.key, tenant=st.tenant.slug, other_tenant=question.tenant.slug,
           data={"notice_id": st.notice.id, "comment_id": question.id, "answer_id": reply.id,
                 "public": body["public"]})
    from federation.twoway import notify

    enqueue_after_commit(notify.push_comment, reply.id, "answered")
    db.session.commit()
    return reply


def hide(st: Standing, comment_id: int) -> Comment:
    """Hide a comment from the recipients. It stays stored, and the hide is in the audit trail, without its text."""
    if not st.moderator:
        raise Denied(403)
    c = _comment_of(st, comment_id)
    if st.role == RECIPIENT and (c.kind in ("question", "answer") or c.author.tenant_id != st.tenant.id):
        # Questions and the federation's answers are the federation's to manage; a union's officers moderate
        # what their own people wrote.
        raise Denied(403)
    if c.hidden_at is None:
        c.hidden_at, c.hidden_by_id = utcnow(), st.subject.user_id
        record("comment.hide", actor=st.subject.key, tenant=st.tenant.slug,
               other_tenant=c.tenant.slug if c.tenant_id != st.tenant.id else None,
               data={"notice_id": st.notice.id, "comment_id": c.id, "kind": c.kind,
                     "author": f"user:{c.author.tenant.slug}/{c.author.login_id}"})
        from federation.twoway import notify

        enqueue_after_commit(notify.push_comment, c.id, "hidden")
        db.session.commit()
    return c


def for_caller(st: Standing, c: Comment) -> dict[str, Any]:
    """One stored comment, shaped as the caller who wrote or answered it sees it."""
    return _one(st, c, db.session.get(User, c.author_id), db.session.get(Tenant, c.tenant_id))


def may_add(st: Standing) -> bool:
    """Whether the caller may add to the thread now (the pages show the form only then)."""
    if st.notice.status != "published" or not firewall.allowed(st.subject, st.tenant.slug, "comments", "write"):
        return False
    if st.mode == "comment":
        return st.notice.comments
    if st.mode == "question":
        return st.role == RECIPIENT
    return True


def view(st: Standing, caller: Any, *, union: str | None = None) -> dict[str, Any]:
    """The thread with what the caller may do with it: the API's answer and the page's content alike."""
    return {"mode": st.mode, "open": may_add(st), "items": thread(st, caller, union=union),
            "unions": union_threads(st) if st.role == OFFICER and st.federation_notice else []}


def reached_unions(st: Standing) -> list[tuple[str, str]]:
    """(slug, name) of the unions an officers' channel notice reached, in 50-on order: whom its editors can write
    to. Only for the notice's own editors."""
    if st.role != OFFICER or st.mode != "officer":
        return []
    return [(slug, name) for slug, name in db.session.execute(
        select(Tenant.slug, Tenant.name).where(Tenant.id.in_(
            select(Delivery.tenant_id).where(Delivery.notice_id == st.notice.id))).order_by(*TENANT_ORDER)).all()]
