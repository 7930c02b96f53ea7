"""Helpers for the web page tests: a browser-like client that signs in through the sign-in form, reads the CSRF
token a page gave it, and pulls the visible text out of a page."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from conftest import PW
from flask import Flask
from flask.testing import FlaskClient

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """One person's browser on the pages: cookies kept, forms sent with the token the page rendered."""

    def __init__(self, app: Flask, tenant: str | None = None, login_id: str | None = None) -> None:
        self.client: FlaskClient = app.test_client()
        self.token: str | None = None
        self.api_token: str | None = None
        if tenant and login_id:
            r = self.sign_in(tenant, login_id)
            assert r.status_code == 302, r.get_data(as_text=True)[:2000]

    def sign_in(self, tenant: str, login_id: str, password: str = PW, **extra: str):  # type: ignore[no-untyped-def]
        page = self.client.get("/signin")
        token = CSRF_FIELD.search(page.get_data(as_text=True))
        assert token, "the sign-in page carries a CSRF token"
        r = self.client.post("/signin", data={"tenant": tenant, "login_id": login_id, "password": password,
                                              "csrf_token": token.group(1), **extra})
        if r.status_code == 302:
            self.token = self.page_token("/settings")
            meta = re.search(r'<meta name="csrf-token" content="([^"]+)"', self.client.get("/settings")
                             .get_data(as_text=True))
            self.api_token = meta.group(1) if meta else None  # the page script's X-CSRF-Token for the API
        return r

    def page_token(self, path: str) -> str:
        body = self.client.get(path).get_data(as_text=True)
        found = CSRF_FIELD.search(body)
        assert found, f"{path} carries no CSRF token"
        return found.group(1)

    def get(self, path: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.get(path, **kw)

    def post(self, path: str, data: dict[str, Any] | None = None, *, token: bool = True):  # type: ignore[no-untyped-def]
        data = dict(data or {})
        if token:
            data.setdefault("csrf_token", self.token)
        return self.client.post(path, data=data)

    def text(self, path: str) -> str:
        r = self.client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        return r.get_data(as_text=True)


class VisibleText(HTMLParser):
    """Text a person sees or hears: element text, alt/title/aria-label/placeholder, the messages the page script
    shows, and button values. Text in
    <code>, <kbd> and <samp> is machine vocabulary (ids, slugs, policy lines) and is kept apart, and so is text the
    page itself marks as another language (lang="en")."""

    SKIP = {"script", "style", "template"}
    MACHINE = {"code", "kbd", "samp"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
    # The page script shows these messages later (push switch states, the audience count, confirmations).
    ATTRS = ("alt", "title", "aria-label", "placeholder", "data-on", "data-off", "data-denied", "data-failed",
             "data-none", "data-direct", "data-relay", "data-label-on", "data-label-off", "data-confirm")

    def __init__(self, skip_lang: str | None = "en") -> None:
        super().__init__(convert_charrefs=True)
        self.skip_lang = skip_lang
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, hidden-from-check, machine)
        self.chunks: list[str] = []

    def _state(self) -> tuple[bool, bool]:
        skip = any(s for _, s, _m in self.stack)
        machine = any(m for _, _s, m in self.stack)
        return skip, machine

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        skip_parent, machine_parent = self._state()
        skip = skip_parent or tag in self.SKIP or bool(self.skip_lang and (a.get("lang") or "").startswith(
            self.skip_lang))
        machine = machine_parent or tag in self.MACHINE
        if not skip and not machine:
            for name in self.ATTRS:
                if a.get(name):
                    # {members} and the like are the page script's placeholders, not words.
                    self.chunks.append(re.sub(r"\{\w+\}", " ", a[name] or ""))
            if tag == "input" and a.get("type") in ("submit", "button") and a.get("value"):
                self.chunks.append(a["value"] or "")
            if tag == "meta" and a.get("name") == "description" and a.get("content"):
                self.chunks.append(a["content"] or "")
        if tag not in self.VOID:
            self.stack.append((tag, skip, machine))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        skip, machine = self._state()
        if not skip and not machine:
            self.chunks.append(data)


def visible_text(html: str, skip_lang: str | None = "en") -> str:
    parser = VisibleText(skip_lang)
    parser.feed(html)
    return " ".join(" ".join(parser.chunks).split())


def latin_words(text: str) -> set[str]:
    """Runs of two or more Latin letters: what an untranslated English string would leave behind."""
    return set(re.findall(r"[A-Za-z][A-Za-z'_-]*[A-Za-z]", text))


def all_text(html: str) -> str:
    """Every character of text on the page, code included, tags dropped: for checking whole sentences."""
    from html import unescape

    return " ".join(unescape(re.sub(r"<[^>]+>", "", html)).split())
