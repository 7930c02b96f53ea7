from __future__ import annotations

from marshmallow import fields

from federation.schemas import StrictSchema, text


class CommentIn(StrictSchema):
    body = text(1, 2_000, required=True)
    consent = fields.Boolean(load_default=None, metadata={
        "description": "a question to the federation: true once the member agreed that their name and union go "
                       "with it (F4)"})
    union = fields.String(load_default=None, metadata={
        "description": "the federation's editors on the officers' channel: the union whose thread this is for"})


class CommentAnswerIn(StrictSchema):
    body = text(1, 2_000, required=True)
    public = fields.Boolean(required=True, metadata={
        "description": "true: every recipient sees the question and this answer, without the asker's name or union"})


class ThreadQuery(StrictSchema):
    union = fields.String(load_default=None, metadata={"description": "the federation's editors: one union's thread"})


class CommentAuthor(StrictSchema):
    display_name = fields.String()
    name_kana = fields.String()


class CommentOut(StrictSchema):
    id = fields.Integer()
    kind = fields.String(metadata={"description": "comment, question, officer or answer"})
    body = fields.String(allow_none=True, metadata={"description": "null when hidden (to those who may not see it)"})
    created_at = fields.DateTime()
    public = fields.Boolean()
    mine = fields.Boolean()
    hidden = fields.Boolean()
    author = fields.Nested(CommentAuthor, allow_none=True,
                           metadata={"description": "null where the asker is not named (a published answer)"})
    union = fields.String(allow_none=True)
    from_federation = fields.Boolean()
    parent_id = fields.Integer()
    answers = fields.List(fields.Nested(lambda: CommentOut()))


class ThreadOut(StrictSchema):
    mode = fields.String(metadata={"description": "comment (a union notice), question or officer (the officers' "
                                                  "channel)"})
    open = fields.Boolean(metadata={"description": "whether the caller may add to it now"})
    items = fields.List(fields.Nested(CommentOut))
    unions = fields.List(fields.Dict(), metadata={"description": "the federation's editors: per union, messages "
                                                                 "and how many wait for an answer"})
