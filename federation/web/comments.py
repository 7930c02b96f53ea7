"""Comments, questions and the officers' channel on the pages: the thread under a notice a member opened, and the
officers' page of a notice's threads. The same service and firewall path as the API (federation/twoway)."""
from __future__ import annotations

from typing import Any

from flask import g, redirect, render_template, request, url_for
from marshmallow import ValidationError

from federation.access import access_tenant
from federation.auth.service import require_caller
from federation.errors import APIError
from federation.firewall import Denied
from federation.twoway import service
from federation.twoway.schemas import CommentAnswerIn, CommentIn
from federation.web import bp


def _error(exc: APIError | ValidationError) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        fields = exc.messages if isinstance(exc.messages, dict) else {"body": exc.messages}
        return {"fields": fields, "message": "; ".join(f"{k}: {v}" for k, v in fields.items())}
    return {"fields": exc.fields or {}, "message": exc.message}


def member_thread(notice_id: int) -> dict[str, Any] | None:
    """What the member's notice page shows under the notice: the thread of their union, or None where the notice
    takes no comments and has none."""
    tenant, subject = access_tenant(require_caller().tenant, "comments", "read")
    st = service.standing(tenant, g.caller, subject, notice_id)
    found = service.view(st, g.caller)
    if st.mode == "comment" and not st.notice.comments and not found["items"]:
        return None
    return {**found, "moderator": st.moderator, "notice_tenant": st.notice.tenant}


def _member_form() -> dict[str, Any]:
    form = request.form
    return {"body": form.get("body", "").strip(), **({"consent": True} if form.get("consent") else {})}


@bp.route("/notices/<int:notice_id>/comments", methods=["POST"])
def member_comment(notice_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(require_caller().tenant, "comments", "write")
    st = service.standing(tenant, g.caller, subject, notice_id)
    raw = _member_form()
    try:
        body = CommentIn().load(raw)
        if st.mode == "question" and "consent" not in raw:
            body["consent"] = False
        service.post(st, g.user, body)
    except (APIError, ValidationError) as exc:
        from federation.web.member import notice_page

        return notice_page(notice_id, comment_error=_error(exc), comment_body=raw["body"]), 422
    return redirect(url_for("web.notice", notice_id=notice_id, commented=1) + "#comments")


@bp.route("/notices/<int:notice_id>/comments/<int:comment_id>/hide", methods=["POST"])
def member_hide(notice_id: int, comment_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(require_caller().tenant, "comments", "manage")
    service.hide(service.standing(tenant, g.caller, subject, notice_id), comment_id)
    return redirect(url_for("web.notice", notice_id=notice_id) + "#comments")


# --- the officers' page of a notice's threads --------------------------------------------------------------------

def _officer_standing(slug: str, notice_id: int, act: str = "read") -> service.Standing:
    tenant, subject = access_tenant(slug, "comments", act)
    st = service.standing(tenant, g.caller, subject, notice_id)
    if st.role != service.OFFICER:
        raise Denied(404)
    return st


def _page(st: service.Standing, *, error: dict[str, Any] | None = None, status: int = 200,
          done: str | None = None):  # type: ignore[no-untyped-def]
    union = request.values.get("union") or None
    found = service.view(st, g.caller, union=union)
    return render_template("web/comments.html", tenant=st.tenant, notice=st.notice, thread=found, mode=st.mode,
                           moderator=st.moderator, federation=st.federation_notice, union=union, error=error,
                           reached=service.reached_unions(st),
                           done=done or request.args.get("done")), status


@bp.route("/t/<slug>/notices/<int:notice_id>/comments", methods=["GET", "POST"])
def notice_comments(slug: str, notice_id: int):  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return _page(_officer_standing(slug, notice_id))
    st = _officer_standing(slug, notice_id, "write")
    raw = {"body": request.form.get("body", "").strip()}
    if request.form.get("union"):
        raw["union"] = request.form["union"]
    try:
        service.post(st, g.user, CommentIn().load(raw))
    except (APIError, ValidationError) as exc:
        return _page(st, error=_error(exc), status=422)
    return redirect(url_for("web.notice_comments", slug=slug, notice_id=notice_id, union=raw.get("union"),
                            done="posted") + "#comments")


@bp.route("/t/<slug>/notices/<int:notice_id>/comments/<int:comment_id>/answer", methods=["POST"])
def notice_comment_answer(slug: str, notice_id: int, comment_id: int):  # type: ignore[no-untyped-def]
    st = _officer_standing(slug, notice_id, "answer")
    raw = {"body": request.form.get("body", "").strip(), "public": request.form.get("public") == "1"}
    try:
        service.answer(st, g.user, comment_id, CommentAnswerIn().load(raw))
    except (APIError, ValidationError) as exc:
        return _page(st, error=_error(exc), status=422)
    return redirect(url_for("web.notice_comments", slug=slug, notice_id=notice_id, union=request.form.get("union")
                            or None, done="answered") + f"#c{comment_id}")


@bp.route("/t/<slug>/notices/<int:notice_id>/comments/<int:comment_id>/hide", methods=["POST"])
def notice_comment_hide(slug: str, notice_id: int, comment_id: int):  # type: ignore[no-untyped-def]
    st = _officer_standing(slug, notice_id, "manage")
    service.hide(st, comment_id)
    return redirect(url_for("web.notice_comments", slug=slug, notice_id=notice_id, union=request.form.get("union")
                            or None, done="hidden") + f"#c{comment_id}")
