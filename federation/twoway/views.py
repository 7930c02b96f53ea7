"""Comments, questions and the officers' channel under a notice (docs/two-way.md)."""
from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant
from federation.twoway import service
from federation.twoway.schemas import CommentAnswerIn, CommentIn, CommentOut, ThreadOut, ThreadQuery

blp = Blueprint("comments", __name__, url_prefix="/api/v1", description="Comments, questions, the officers' channel")


def _standing(slug: str, notice_id: int, act: str = "read") -> service.Standing:
    tenant, subject = access_tenant(slug, "comments", act)
    return service.standing(tenant, g.caller, subject, notice_id)


@blp.route("/tenants/<slug>/notices/<int:notice_id>/comments")
class Comments(MethodView):
    @blp.arguments(ThreadQuery, location="query")
    @blp.response(200, ThreadOut)
    def get(self, q, slug, notice_id):
        """The thread the caller may read: their union's comments, their own questions and the published answers,
        or (the federation's editors) every question and every union's officers' thread"""
        st = _standing(slug, notice_id)
        return service.view(st, g.caller, union=q["union"])

    @blp.arguments(CommentIn)
    @blp.response(201, CommentOut)
    def post(self, body, slug, notice_id):
        """Comment on a union notice, ask the federation a question (consent: true), or write on the officers'
        channel"""
        st = _standing(slug, notice_id, "write")
        return service.for_caller(st, service.post(st, g.user, body))


@blp.route("/tenants/<slug>/notices/<int:notice_id>/comments/<int:comment_id>/answer")
class Answer(MethodView):
    @blp.arguments(CommentAnswerIn)
    @blp.response(201, CommentOut)
    def post(self, body, slug, notice_id, comment_id):
        """The federation's editors answer a question (privately, or published without the asker's name) or an
        officers' message"""
        st = _standing(slug, notice_id, "answer")
        return service.for_caller(st, service.answer(st, g.user, comment_id, body))


@blp.route("/tenants/<slug>/notices/<int:notice_id>/comments/<int:comment_id>/hide")
class Hide(MethodView):
    @blp.response(200, CommentOut)
    def post(self, slug, notice_id, comment_id):
        """Officers hide a comment from the recipients; it stays stored and the hide is audited"""
        st = _standing(slug, notice_id, "manage")
        return service.for_caller(st, service.hide(st, comment_id))
