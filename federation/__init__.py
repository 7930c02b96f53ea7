"""musubi: the Flask service. `create_app` wires the parts; it never migrates a database or starts a scheduler."""
from __future__ import annotations

from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from federation.config import load_settings
from federation.dbutil import MAX_ROW_ID
from federation.extensions import api, db


class IdConverter(IntegerConverter):
    def __init__(self, map, *args, **kwargs):  # type: ignore[no-untyped-def]  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, *args, **kwargs)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=False)
    settings = load_settings()
    app.config.from_mapping(settings.flask_mapping())
    app.config.update(
        API_TITLE="musubi",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=25 * 1024 * 1024,
        # No ping per checkout (a round trip on every request): a connection found dead raises, SQLAlchemy then
        # invalidates the whole pool, and the next request reconnects (docs/operations.md, "database restarts").
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": False, "pool_recycle": 1800},
    )
    if test_config:
        app.config.update(test_config)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    _configure_database(app)
    _trust_proxies(app)
    # Ids are INTEGER columns (32-bit on PostgreSQL): a larger id in a path overflowed the query and answered 500,
    # where no such object is a 404.
    app.url_map.converters["int"] = IdConverter
    # g.user and g.auth_session load on first use: most API calls need only who is calling (g.subject, g.caller).
    from federation.auth.service import RequestGlobals

    app.app_ctx_globals_class = RequestGlobals

    db.init_app(app)
    from federation.auth import callers

    callers.init_app(app)
    api.init_app(app, spec_kwargs={"info": {"description": "musubi: federation notices that reach union members "
                                                          "directly, behind a Casbin firewall."}})
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})

    from federation import errors
    from federation.firewall import firewall

    errors.register(app)
    firewall.configure(app.config["MUSUBI"].policy_dir)

    from federation.audit import views as audit_views
    from federation.auth import views as auth_views
    from federation.ballots import views as ballot_views
    from federation.kpi import views as kpi_views
    from federation.notices import views as notice_views
    from federation.push import views as push_views
    from federation.reports import views as report_views
    from federation.space import blueprints as space_blueprints
    from federation.tenancy import views as tenant_views
    from federation.twoway import views as twoway_views

    for blueprint in (auth_views.blp, tenant_views.blp, notice_views.blp, push_views.blp, audit_views.blp,
                      ballot_views.blp, twoway_views.blp, report_views.blp, kpi_views.blp,
                      *space_blueprints()):
        api.register_blueprint(blueprint)
    from federation.web import bp as web_pages

    app.register_blueprint(web_pages)

    from federation import health, http, logs

    logs.init_app(app, app.config["MUSUBI"].log_format)
    http.init_app(app)
    health.init_app(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind MUSUBI_PROXY_HOPS proxies, take the client's address, scheme and host from their X-Forwarded-*
    headers: sign-in throttling counts per client address, and Secure cookies need the scheme the member used."""
    hops = app.config["MUSUBI"].proxy_hops
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]


def _configure_database(app: Flask) -> None:
    uri: str = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite"):
        # Several threads (web, embedded jobs) share one SQLite file: wait for locks instead of failing at once.
        opts = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        opts["connect_args"] = {"timeout": 30, "check_same_thread": False}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = opts


