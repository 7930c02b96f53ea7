"""Japanese first: every page, as every kind of user sees it, shows no English left untranslated; the catalogues are
complete and compiled; English is there for those who choose it."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from test_web_pages import publish
from web_support import Browser, latin_words, visible_text

from federation.firewall.templates import ACTIONS, GRANTABLE, LINKS, OBJECTS
from federation.web.catalogs import TRANSLATIONS, compiled

# Proper nouns and identifiers a Japanese page may show as they are: the product's name, the Markdown syntax hint,
# file formats and character encodings (CSV, UTF-8, Shift_JIS are how Japanese offices name them too), and the
# firewall's own vocabulary (the words the audit API and CLI use); slugs and login ids are added per world.
ALLOWED = {"musubi", "Markdown", "https", "CSV", "UTF", "Shift_JIS"} | set(OBJECTS) | set(ACTIONS) | set(LINKS) \
    | {r for roles in GRANTABLE.values() for r in roles} | {"member"}


def _crawl(world, app, lang: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """Visible text of every page, each as the person who would open it, with real data on it."""
    from devtools.local_push import LocalPushService

    seminar = publish(world, "fed", "staff", {"units": [world.ids["council"]]})
    meeting = publish(world, "union-a", "aeditor", {"all": True}, title="職場集会", category="meeting", event=False)
    with LocalPushService() as push:
        world.as_("union-a", "a1").post("/api/v1/me/push-subscriptions", json=push.new_subscription())

    def as_(tenant: str | None, login: str | None) -> Browser:
        b = Browser(app, tenant, login)
        b.client.set_cookie("musubi_lang", lang)
        return b

    a1 = as_("union-a", "a1")
    a1.post(f"/notices/{seminar}/reaction", {"stamp": "attend"})
    pages: dict[str, str] = {}

    def visit(browser: Browser, path: str, status: int = 200, method: str = "get", data=None) -> None:  # type: ignore[no-untyped-def]
        r = browser.get(path) if method == "get" else browser.post(path, data)
        assert r.status_code == status, (path, r.status_code)
        # Text marked lang="en" is English by design (the language switch); in English mode that is all of it.
        pages[f"{method} {path} ({r.status_code})"] = visible_text(r.get_data(as_text=True),
                                                                   "en" if lang == "ja" else None)

    anon = as_(None, None)
    visit(anon, "/signin")
    visit(anon, "/offline")
    visit(anon, "/signin", 401, "post", {"tenant": "union-a", "login_id": "a1", "password": "nope-nope-1",
                                         "csrf_token": anon.page_token("/signin")})
    for path in ("/inbox", f"/notices/{seminar}", f"/notices/{seminar}?stamped=attend", f"/notices/{meeting}",
                 "/settings", "/settings?saved=device", "/t/union-a/units"):
        visit(a1, path)
    visit(a1, "/t/union-a/members", 403)
    visit(a1, "/notices/99999", 404)
    visit(a1, "/notices/1/reaction", 403, "post", {"stamp": "read", "csrf_token": "forged"})
    aadmin = as_("union-a", "aadmin")
    for path in ("/t/union-a/notices", "/t/union-a/notices?done=published", "/t/union-a/notices/new",
                 "/t/union-a/members", "/t/union-a/members?q=zzz", "/t/union-a/units", "/t/union-a/roles",
                 "/t/union-a/cascade", "/t/union-a/relay", f"/t/union-a/notices/{meeting}/receipts",
                 f"/t/union-a/notices/{seminar}/receipts", f"/t/union-a/notices/{meeting}/stats"):
        visit(aadmin, path)
    visit(aadmin, "/t/union-a/notices/new", 422, "post", {"title": "x", "body": "", "when": "now"})
    visit(aadmin, "/t/union-a/notices/new", 200, "post", {"title": "x", "body": "**a**", "action": "preview"})
    visit(aadmin, "/t/union-a/roles", 422, "post", {"op": "grant", "login_id": "nobody", "role": "union_editor"})
    visit(aadmin, "/t/union-a/members/import")
    bad_csv = "社員番号,氏名,よみ,所属,役割\n20001,山田 花子,yamada,どこか,fed_admin\n20001,重複,ちょうふく,,\n"
    visit(aadmin, "/t/union-a/members/import", 422, "post",
          {"op": "check", "file": (io.BytesIO(bad_csv.encode("cp932")), "members.csv")})
    badmin = as_("union-b", "badmin")
    for path in ("/inbox", f"/notices/{seminar}", "/t/union-b/relay", "/t/union-b/cascade"):
        visit(badmin, path)
    visit(as_("union-c", "cadmin"), "/t/union-c/cascade")
    staff = as_("fed", "staff")
    for path in ("/t/fed/notices", "/t/fed/notices/new", f"/t/fed/notices/{seminar}/stats",
                 f"/t/fed/notices/{seminar}/receipts"):
        visit(staff, path)
    fadmin = as_("fed", "fadmin")
    visit(fadmin, "/t/fed/units")
    visit(fadmin, "/t/fed/roles")
    aud = as_("platform", "aud")
    for path in ("/audit", "/audit?subject=user:fed/staff&tenant=union-a&object=notices&action=read",
                 "/audit?subject=user:fed/staff&tenant=union-b&object=notices&action=deliver",
                 "/audit?subject=user:fed/staff&tenant=union-a&object=notices&action=deliver",
                 "/audit?subject=role:fed_editor&tenant=union-c&object=notices&action=relay",
                 "/audit/who-can?tenant=union-a&object=notices&action=read", "/audit/exposure", "/audit/log",
                 "/audit/log?verify=1"):
        visit(aud, path)
    visit(aud, "/audit?subject=nonsense&tenant=union-a&object=notices&action=read", 422)
    # last, as it changes the world: a pending invitation for union-c
    world.as_("fed", "fadmin").post("/api/v1/federations/fed/affiliations",
                                    json={"union": "union-c", "council_id": world.ids["council2"]})
    visit(as_("union-c", "cadmin"), "/t/union-c/cascade")
    return pages


def _identifiers(app) -> set[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from federation.extensions import db
    from tenants.models import Tenant, User

    with app.app_context():
        slugs = set(db.session.execute(select(Tenant.slug)).scalars())
        logins = set(db.session.execute(select(User.login_id)).scalars())
    return {w for s in slugs | logins for w in latin_words(s)}


def test_no_page_shows_untranslated_english_in_japanese_mode(world, app):
    pages = _crawl(world, app, "ja")
    allowed = ALLOWED | _identifiers(app)
    leftovers = {name: sorted(latin_words(text) - allowed) for name, text in pages.items()}
    leftovers = {name: words for name, words in leftovers.items() if words}
    assert leftovers == {}, json.dumps(leftovers, ensure_ascii=False)
    assert len(pages) >= 45


def test_english_is_there_for_those_who_choose_it(world, app):
    pages = _crawl(world, app, "en")
    text = " ".join(pages.values())
    for phrase in ("Inbox", "Before you press Attend", "Who gets it", "What the federation never sees",
                   "Denied: no rule gives", "Sign in"):
        assert phrase in text


def _message_ids() -> set[str]:
    root = Path(__file__).resolve().parent.parent
    method_map = [("federation/web/**.py", "python"), ("federation/templates/web/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    ids = set()
    for _file, _line, message, _comments, _context in extract_from_dir(root, method_map, keywords=keywords):
        ids.add(message[0] if isinstance(message, tuple) else message)
    return ids


def test_every_message_has_a_japanese_translation():
    with (TRANSLATIONS / "ja/LC_MESSAGES/messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="ja")
    translated = {(m.id[0] if isinstance(m.id, tuple) else m.id) for m in catalog
                  if m.id and (m.string if isinstance(m.string, str) else all(m.string)) and not m.fuzzy}
    missing = sorted(_message_ids() - translated)
    assert missing == [], "run pybabel extract/update and translate: " + ", ".join(missing[:10])


def _messages(catalog) -> dict:  # type: ignore[no-untyped-def]
    def key(v):  # type: ignore[no-untyped-def]  # plural forms come as lists or tuples
        return v if isinstance(v, str) else tuple(v)

    # An empty translation falls back to the id and is not compiled.
    return {key(m.id): key(m.string) for m in catalog
            if m.id and not m.fuzzy and (m.string if isinstance(m.string, str) else all(m.string))}


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_compiled_catalogues_match_their_sources(lang):
    """The committed .mo says what its .po says. Messages are compared, not bytes: another Babel release lays the
    same catalogue out differently, and a fresh install must not fail on that."""
    po = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as fh:
        source = read_po(fh, locale=lang)
    with po.with_suffix(".mo").open("rb") as fh:
        shipped = read_mo(fh)
    assert _messages(shipped) == _messages(source), "run: python -m federation.web.catalogs"
    # And what the compiler writes today reads back as the same messages (the tool itself is not broken).
    assert _messages(read_mo(io.BytesIO(compiled(po)))) == _messages(source)


@pytest.mark.parametrize("path,form,technical", [
    ("/t/union-a/documents", {"title": ""}, "Length must be between 1 and 200."),
    ("/t/union-a/units", {"name": "新支部", "kind": "workplace", "parent_id": "999999"}, "no unit 999999 in union-a"),
])
def test_error_boxes_add_the_technical_detail_in_english_only(world, app, path, form, technical):
    """The shared error boxes are macros imported without the page's context: they ask for the language
    themselves, so English readers get the detail after the field's name and Japanese readers never see it."""
    for lang, shown in (("en", True), ("ja", False)):
        page = Browser(app, "union-a", "aadmin")
        page.get(f"/lang/{lang}")
        r = page.client.post(path, data={"csrf_token": page.page_token(path), **form},
                             content_type="multipart/form-data")
        assert r.status_code == 422
        html = r.get_data(as_text=True)
        box = html[html.index('role="alert"'):]
        box = box[:box.index("</div>")]
        assert (technical in box) is shown, (lang, box)


@pytest.mark.parametrize("part,whole,text", [
    (0, 0, "0%"), (0, 300, "0%"), (1, 300, "<1%"), (2, 200, "1%"), (1, 3, "33%"), (299, 300, ">99%"),
    (199, 200, ">99%"), (300, 300, "100%"), (301, 300, "100%"),
])
def test_rates_are_rounded_honestly(part, whole, text):
    # One reader of 300 is not nobody, and 199 of 200 is not everyone.
    from federation.web.formatting import percent_text

    assert percent_text(part, whole) == text


@pytest.mark.parametrize("iso,ja", [
    ("2026-12-05", "令和8年12月5日(土)（2026年）"), ("2019-05-01", "令和元年5月1日(水)（2019年）"),
    ("2019-04-30", "平成31年4月30日(火)（2019年）"), ("1989-01-07", "昭和64年1月7日(土)（1989年）"),
    ("not a date", "not a date"),
])
def test_form_dates_are_written_as_on_paperwork(app, iso, ja):
    from federation.web.formatting import format_field_date

    with app.test_request_context("/", headers={"Accept-Language": "ja"}):
        assert format_field_date(iso) == ja
