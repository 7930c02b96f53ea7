"""Extensions created once at import and bound to the app in the factory."""
from __future__ import annotations

from datetime import UTC, datetime

from flask_smorest import Api, Blueprint
from flask_sqlalchemy import SQLAlchemy
from marshmallow import Schema, fields
from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase

from federation.jsonbody import BodyParser

# Stable constraint names, so Alembic migrations read the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ErrorDetail(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields_ = fields.Dict(data_key="fields")


class ErrorBody(Schema):
    """What every error answer really carries (federation.errors); the document must say the same."""

    error = fields.Nested(ErrorDetail, required=True)


class MusubiApi(Api):
    """flask-smorest's Api, with each blueprint's operations written into the OpenAPI document when the document is
    first read (GET /api/v1/openapi.json, `flask openapi print`), not when the app is made. Documenting 60
    blueprints was 40 % of building an app, and most processes never serve the document: every gunicorn worker and
    job worker at start, and every test. The document comes out the same: blueprints in the order they were
    registered, each one's tag added at registration as before."""

    ERROR_SCHEMA = ErrorBody
    _spec = None
    _undocumented: list[tuple[Blueprint, str, object]] = []

    @property
    def spec(self):  # type: ignore[no-untyped-def]
        while self._undocumented:
            blueprint, name, parameters = self._undocumented.pop(0)
            blueprint.register_views_in_doc(self, self._app, self._spec, name=name, parameters=parameters)
        return self._spec

    @spec.setter
    def spec(self, value) -> None:  # type: ignore[no-untyped-def]
        # A new document (init_app for another app) starts with nothing pending from the previous one.
        self._spec, self._undocumented = value, []

    def register_blueprint(self, blp, *, parameters=None, **options):  # type: ignore[no-untyped-def]
        # What flask-smorest 0.46-0.47 (pinned) does here, with the documenting left for the first read.
        name = options.get("name", blp.name)
        self._app.extensions["flask-smorest"]["blp_name_to_api"][name] = self
        self._app.register_blueprint(blp, **options)
        self._undocumented.append((blp, name, parameters))
        self._spec.tag({"name": name, "description": blp.description})


# Every body an operation parses is read by one parser that refuses hostile shapes as bad input (federation.jsonbody).
Blueprint.ARGUMENTS_PARSER = BodyParser()

db = SQLAlchemy(model_class=Base)
api = MusubiApi()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware.

    SQLite drops the offset; PostgreSQL keeps it. Either way the application only ever sees aware UTC datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[override]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
