"""Fixtures: a fresh database per test (SQLite by default, PostgreSQL when MUSUBI_TEST_DATABASE_URL is set), the
app, a client, and a world with a federation and three unions, because isolation bugs need neighbours."""
from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, inspect, text

PG_URL = os.environ.get("MUSUBI_TEST_DATABASE_URL")
# The suite pushes to the local push service on 127.0.0.1 (push/local_service.py), which push refuses unless the
# address is allowed explicitly; set here so the servers and workers the tests start inherit it too.
os.environ.setdefault("MUSUBI_PUSH_ALLOW_PRIVATE", "127.0.0.1")
PW = "Test-pass-2026!"
# The audit chain's MAC key, the same for the template database and every copy of it (each test has its own
# instance folder, where a key file would otherwise be generated anew).
AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789"


def _migrate(app: Flask) -> None:
    from federation.database import upgrade

    with app.app_context():
        upgrade()


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Migrate once per session; each test then starts from a copy (SQLite) or an emptied schema (PostgreSQL)."""
    if PG_URL:
        engine = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        return PG_URL
    path = tmp_path_factory.mktemp("template") / "musubi.db"
    os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    os.environ.setdefault("SECRET_KEY", "test-secret-key-0123456789abcdef")
    os.environ.setdefault("MUSUBI_AUDIT_KEY", AUDIT_KEY)
    os.environ["MUSUBI_INSTANCE"] = str(path.parent)
    from federation import create_app
    from federation.extensions import db

    template = create_app()
    _migrate(template)
    with template.app_context():
        # WAL mode keeps recent pages beside the file; fold them in so a plain copy is the whole database.
        db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.session.remove()
        db.engine.dispose()
    return str(path)


def _empty_pg(app: Flask) -> None:
    """Every table emptied and every sequence back at its start. DELETE, children first, rather than TRUNCATE: on
    tables of a few rows it is ten times cheaper (TRUNCATE gives every table and index a new file)."""
    from federation.extensions import db

    with app.app_context():
        # The first test after the schema reset finds no tables yet; the migration that follows creates them.
        existing = set(inspect(db.engine).get_table_names())
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                if table.name in existing:
                    conn.execute(text(f'DELETE FROM "{table.name}"'))
            conn.execute(text("SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s "
                              "JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = current_schema()"))


@dataclass(frozen=True)
class WorldSnapshot:
    """The world of `build_world`, built once per session and restored for every test that asks for `world`: a
    copied SQLite file, or on PostgreSQL the rows of every table kept in a schema of their own and the sequences'
    values. Restoring it costs a file copy or one INSERT per table, where building it cost hundreds of statements."""

    ids: dict[str, int]
    sqlite_file: str | None = None
    tables: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sequences: tuple[tuple[str, int], ...] = ()


SNAPSHOT_SCHEMA = "world_snapshot"


def _test_env(mp: pytest.MonkeyPatch, folder: Path, database_url: str) -> None:
    mp.setenv("MUSUBI_INSTANCE", str(folder))
    mp.setenv("SECRET_KEY", "test-secret-key-0123456789abcdef")
    mp.setenv("MUSUBI_AUDIT_KEY", AUDIT_KEY)
    mp.delenv("REDIS_URL", raising=False)
    mp.setenv("DATABASE_URL", database_url)


@pytest.fixture(scope="session")
def world_snapshot(template_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorldSnapshot]:
    from federation import jobs
    from federation.extensions import db

    folder = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as mp:
        application = _fresh_app(mp, folder, template_db)
        _own_snapshot(application)
        ids = dict(build_world(application, application.test_client()).ids)
        jobs.reset()  # whatever the world's changes queued has run before its rows are kept
    if not PG_URL:
        with application.app_context():
            db.session.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            db.session.remove()
            db.engine.dispose()
        yield WorldSnapshot(ids, sqlite_file=str(folder / "musubi.db"))
        return
    with application.app_context():
        tables = tuple((t.name, tuple(c.name for c in t.columns)) for t in db.metadata.sorted_tables)
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SNAPSHOT_SCHEMA} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {SNAPSHOT_SCHEMA}"))
            for name, columns in tables:
                conn.execute(text(f'CREATE TABLE {SNAPSHOT_SCHEMA}."{name}" AS SELECT {_columns(columns)} '
                                  f'FROM public."{name}"'))
            sequences = tuple((name, int(value)) for name, value in conn.execute(text(
                "SELECT sequencename, last_value FROM pg_sequences "
                "WHERE schemaname = 'public' AND last_value IS NOT NULL")))
        db.session.remove()
        db.engine.dispose()
    yield WorldSnapshot(ids, tables=tables, sequences=sequences)
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SNAPSHOT_SCHEMA} CASCADE"))
    admin.dispose()


def _columns(columns: tuple[str, ...]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _restore_pg(app: Flask, snapshot: WorldSnapshot) -> None:
    from federation.extensions import db

    with app.app_context(), db.engine.begin() as conn:
        for name, columns in snapshot.tables:  # parents first: the foreign keys hold row by row
            conn.execute(text(f'INSERT INTO public."{name}" ({_columns(columns)}) '
                              f'SELECT {_columns(columns)} FROM {SNAPSHOT_SCHEMA}."{name}"'))
        for name, value in snapshot.sequences:
            conn.execute(text("SELECT setval(:seq, :value)"), {"seq": f'public."{name}"', "value": value})


def _fresh_app(mp: pytest.MonkeyPatch, folder: Path, template_db: str,
               snapshot: WorldSnapshot | None = None) -> Flask:
    """An app with `folder` as its instance, on the migrated schema or on the snapshot's rows."""
    from federation import create_app, jobs

    if PG_URL:
        _test_env(mp, folder, PG_URL)
    else:
        shutil.copy(snapshot.sqlite_file if snapshot is not None else template_db, folder / "musubi.db")
        _test_env(mp, folder, f"sqlite:///{folder / 'musubi.db'}")
    jobs.reset()
    application = create_app({"TESTING": True})
    if PG_URL:
        _empty_pg(application)
        if snapshot is None:
            _migrate(application)
        else:  # the snapshot's rows include what the migration wrote
            _restore_pg(application, snapshot)
    return application


@pytest.fixture
def app(template_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> Iterator[Flask]:
    """A fresh app on a fresh database: the migrated schema, or the world's rows when the test asks for `world`."""
    from federation import jobs

    snapshot = request.getfixturevalue("world_snapshot") if "world" in request.fixturenames else None
    application = _fresh_app(monkeypatch, tmp_path, template_db, snapshot)
    with application.app_context():
        from federation.firewall import firewall

        firewall.configure(application.config["MUSUBI"].policy_dir)
    yield application
    # reset() lets queued jobs finish before the engine goes: a job still holding a connection when the pool is
    # disposed would leave that connection to the garbage collector, and its ResourceWarning would fail a later test.
    jobs.reset()
    from federation.extensions import db

    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Api:
    """A signed-in API client: bearer token, JSON in and out."""

    def __init__(self, client: FlaskClient, token: str | None, who: str) -> None:
        self.client, self.token, self.who = client, token, who

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.get(path, headers=self._headers(), **kw)

    def post(self, path: str, json=None, **kw):  # type: ignore[no-untyped-def]
        return self.client.post(path, json=json, headers=self._headers(), **kw)

    def put(self, path: str, json=None, **kw):  # type: ignore[no-untyped-def]
        return self.client.put(path, json=json, headers=self._headers(), **kw)

    def patch(self, path: str, json=None, **kw):  # type: ignore[no-untyped-def]
        return self.client.patch(path, json=json, headers=self._headers(), **kw)

    def delete(self, path: str, json=None, **kw):  # type: ignore[no-untyped-def]
        return self.client.delete(path, json=json, headers=self._headers(), **kw)


def login(client: FlaskClient, tenant: str, login_id: str, password: str = PW) -> Api:
    r = client.post("/api/v1/auth/login", json={"tenant": tenant, "login_id": login_id, "password": password})
    assert r.status_code == 200, r.get_json()
    client.delete_cookie("musubi_session")  # API clients use the bearer token; cookie behaviour has its own tests
    return Api(client, r.get_json()["token"], f"{tenant}/{login_id}")


@dataclass
class World:
    """platform (auditor, platform admin), federation `fed` with blocks and councils, a second federation `fed2`,
    unions a (opted in), b (opted out), c (not affiliated), each with an admin, an editor and members."""

    app: Flask
    client: FlaskClient
    ids: dict[str, int] = field(default_factory=dict)
    _apis: dict[tuple[str, str], Api] = field(default_factory=dict)

    def as_(self, tenant: str, login_id: str) -> Api:
        key = (tenant, login_id)
        if key not in self._apis:
            self._apis[key] = login(self.client, tenant, login_id)
        return self._apis[key]

    def anonymous(self) -> Api:
        return Api(self.client, None, "anonymous")


def build_world(app: Flask, client: FlaskClient) -> World:
    from federation.auth.passwords import hash_password
    from tenants import service as ts

    actor = "operator:test"
    pw = hash_password(PW)
    w = World(app, client)
    with app.app_context():
        from sqlalchemy import select

        from federation.extensions import db
        from tenants.models import Tenant

        platform = db.session.execute(select(Tenant).where(Tenant.slug == "platform")).scalar_one()
        fed = ts.create_tenant("fed", "情報通信労連", "federation", actor=actor)
        fed2 = ts.create_tenant("fed2", "建設産業労連", "federation", actor=actor)
        unions = {s: ts.create_tenant(s, n, "union", actor=actor)
                  for s, n in (("union-a", "A通信労組"), ("union-b", "B通信労組"), ("union-c", "C放送労組"))}
        block = ts.create_unit(fed, name="関東ブロック", kind="block", parent_id=None, prefecture=None, actor=actor)
        council = ts.create_unit(fed, name="東京県協", kind="council", parent_id=block.id, prefecture="13",
                                 actor=actor)
        block2 = ts.create_unit(fed, name="近畿ブロック", kind="block", parent_id=None, prefecture=None, actor=actor)
        council2 = ts.create_unit(fed, name="大阪県協", kind="council", parent_id=block2.id, prefecture="27",
                                  actor=actor)
        w.ids.update(block=block.id, council=council.id, block2=block2.id, council2=council2.id)

        def user(tenant, login_id, name, kana, *roles, unit_id=None):  # type: ignore[no-untyped-def]
            u = ts.create_user(tenant, login_id=login_id, display_name=name, name_kana=kana, password=None,
                               password_hash=pw, unit_id=unit_id, actor=actor)
            for role in roles:
                ts.grant_role(tenant, u, role, council.id if role == "unit_editor" else None, actor=actor)
            return u

        user(platform, "aud", "監査 太郎", "かんさ たろう", "auditor")
        user(platform, "ops", "運用 次郎", "うんよう じろう", "platform_admin")
        user(fed, "fadmin", "連合 管理", "れんごう かんり", "fed_admin")
        user(fed, "staff", "書記 花子", "しょき はなこ", "fed_editor")
        user(fed, "tokyo", "東京 県協", "とうきょう けんきょう", "unit_editor")
        user(fed2, "staff", "別連 職員", "べつれん しょくいん", "fed_editor")
        for slug, t in unions.items():
            letter = slug[-1]
            branch = ts.create_unit(t, name=f"{letter}本社支部", kind="branch", parent_id=None, prefecture=None,
                                    actor=actor)
            branch2 = ts.create_unit(t, name=f"{letter}工場支部", kind="branch", parent_id=None, prefecture=None,
                                     actor=actor)
            w.ids[f"{slug}:branch"], w.ids[f"{slug}:branch2"] = branch.id, branch2.id
            user(t, f"{letter}admin", f"{letter.upper()}執行 委員長", "しっこう いいんちょう", "union_admin",
                 unit_id=branch.id)
            user(t, f"{letter}editor", f"{letter.upper()}教宣 部長", "きょうせん ぶちょう", "union_editor",
                 unit_id=branch.id)
            user(t, f"{letter}1", f"{letter.upper()}渡辺 恵", "わたなべ めぐみ", unit_id=branch.id)
            user(t, f"{letter}2", f"{letter.upper()}青木 健", "あおき けん", unit_id=branch2.id)
            user(t, f"{letter}3", f"{letter.upper()}加藤 翔", "カトウ ショウ", unit_id=branch2.id)
        for slug, cnc in (("union-a", council), ("union-b", council)):
            ts.invite(fed, slug, cnc.id, actor=actor)
            ts.accept(unions[slug], actor=actor)
        ts.set_cascade(unions["union-a"], "opted_in", actor=actor)
    return w


@pytest.fixture
def world(app: Flask, client: FlaskClient, world_snapshot: WorldSnapshot) -> World:
    """The world of `build_world`, in this test's own database (restored by `app` from the session's snapshot)."""
    return World(app, client, ids=dict(world_snapshot.ids))


@pytest.fixture(scope="module")
def _module_world(template_db: str, tmp_path_factory: pytest.TempPathFactory,
                  request: pytest.FixtureRequest) -> Iterator[World]:
    """The world, built once for a test module, in a database of its own (a copied SQLite file, or a PostgreSQL
    schema of its own), so the per-test reset of the main test database never touches it."""
    from federation import create_app
    from federation.extensions import db

    folder = tmp_path_factory.mktemp("shared-world")
    schema = "shared_" + request.module.__name__.rsplit(".", 1)[-1].lower()
    admin = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSUBI_INSTANCE", str(folder))
        mp.setenv("SECRET_KEY", "test-secret-key-0123456789abcdef")
        mp.setenv("MUSUBI_AUDIT_KEY", AUDIT_KEY)
        mp.delenv("REDIS_URL", raising=False)
        if PG_URL:
            admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
                conn.execute(text(f"CREATE SCHEMA {schema}"))
            joiner = "&" if "?" in PG_URL else "?"
            mp.setenv("DATABASE_URL", f"{PG_URL}{joiner}options=-csearch_path%3D{schema}")
        else:
            shutil.copy(template_db, folder / "musubi.db")
            mp.setenv("DATABASE_URL", f"sqlite:///{folder / 'musubi.db'}")
        application = create_app({"TESTING": True})
    if PG_URL:
        _migrate(application)
    _own_snapshot(application)
    yield build_world(application, application.test_client())
    with application.app_context():
        db.session.remove()
        db.engine.dispose()
    if admin is not None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def _own_snapshot(application: Flask) -> None:
    # The firewall is one per process and knows its snapshot by policy version only; every test database reaches
    # the same version numbers, so a snapshot loaded from another test's database must be dropped first.
    from federation.firewall import firewall

    with application.app_context():
        firewall.configure(application.config["MUSUBI"].policy_dir)


@pytest.fixture
def shared_world(_module_world: World) -> World:
    """One world per test module, for tests that change nothing (reads, refusals, rejected input): much cheaper
    than a fresh world per test. A test that writes must use `world`."""
    _own_snapshot(_module_world.app)
    return _module_world


# --- the browser, for the journeys in headless Chromium (tests/browser_world.py) ----------------------------------

@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from browser_world import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium, served):  # type: ignore[no-untyped-def]
    """A fresh browser context (its own cookies) per person, phone-sized unless asked otherwise. `served` is the
    test module's own running world."""
    from browser_world import PHONE

    contexts = []

    def make(viewport: dict[str, int] = PHONE):  # type: ignore[no-untyped-def]
        context = chromium.new_context(viewport=viewport, locale="ja-JP", base_url=served.base, accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def push_service(app):  # type: ignore[no-untyped-def]
    """The local push service (the real protocol: encrypted messages, VAPID), for tests of who gets a push."""
    from devtools.local_push import LocalPushService
    from federation.push import vapid

    vapid.forget()  # the signing key is cached per process; this test's instance folder has its own
    vapid.generate(app.config["MUSUBI"].vapid_file)
    with LocalPushService() as service:
        yield service
    vapid.forget()
