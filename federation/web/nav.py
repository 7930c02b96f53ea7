"""The menu a person sees: an item appears only where the firewall would let them open the page behind it."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, request, url_for
from flask_babel import lazy_gettext as _l

from federation.firewall import firewall


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    url: str
    current: bool


@dataclass(frozen=True)
class Menu:
    """The whole menu (the top bar on a wide screen), and on a phone its split: the few destinations of the bottom
    bar, chosen per role, and the rest behind メニュー."""

    items: list[NavItem]
    bar: list[NavItem]
    more: list[NavItem]

    def __bool__(self) -> bool:
        return bool(self.items)

    def __iter__(self):
        return iter(self.items)


# What each kind of person opens most, in order; the bottom bar takes the first BAR_SIZE of these that they have.
BAR_ORDER = {
    "union": ("inbox", "notices", "relay", "applications", "surveys", "documents", "members"),
    "federation": ("notices", "reports", "units", "settings"),
    "platform": ("audit", "settings"),
}
BAR_SIZE = 4


def _allowed(obj: str, act: str) -> bool:
    subject = g.get("subject")
    return subject is not None and firewall.allowed(subject, subject.tenant, obj, act)


def home_url() -> str:
    """Where a person lands after signing in: members their inbox, staff their notices, auditors the console."""
    subject = g.get("subject")
    if subject is None:
        return url_for("web.signin")
    if subject.kind == "union":
        return url_for("web.inbox")
    if subject.kind == "federation" and _allowed("notices", "write"):
        return url_for("web.notices", slug=subject.tenant)
    if subject.kind == "platform" and firewall.allowed(subject, "platform", "audit", "read"):
        return url_for("web.audit_check")
    return url_for("web.settings")


def navigation() -> Menu:
    subject = g.get("subject")
    if subject is None:
        return Menu([], [], [])
    slug = subject.tenant
    items: list[tuple[str, str, str]] = []
    if subject.kind == "union":
        items.append(("inbox", _l("Inbox"), url_for("web.inbox")))
    if subject.kind == "union" and _allowed("documents", "read"):
        items.append(("documents", _l("Documents"), url_for("web.documents", slug=slug)))
    if subject.kind == "union" and _allowed("surveys", "read"):
        items.append(("surveys", _l("Surveys"), url_for("web.surveys", slug=slug)))
    if subject.kind == "union" and _allowed("applications", "write"):
        items.append(("applications", _l("Applications"), url_for("web.applications", slug=slug)))
    if _allowed("notices", "write"):
        items.append(("notices", _l("Notices"), url_for("web.notices", slug=slug)))
    if subject.kind == "union" and _allowed("notices", "relay"):
        items.append(("relay", _l("To relay"), url_for("web.relay_inbox", slug=slug)))
    if subject.kind == "union" and _allowed("members", "read"):
        items.append(("members", _l("Members"), url_for("web.members", slug=slug)))
        items.append(("units", _l("Organisation"), url_for("web.units", slug=slug)))
    if subject.kind == "union" and _allowed("kpi", "read") and _allowed("stats", "read"):
        items.append(("kpi", _l("Figures"), url_for("web.kpi", slug=slug)))
    if subject.kind == "federation" and _allowed("kpi", "read"):
        items.append(("kpi", _l("Figures"), url_for("web.kpi", slug=slug)))
    if subject.kind == "federation" and _allowed("units", "write"):
        items.append(("units", _l("Organisation"), url_for("web.units", slug=slug)))
    if subject.kind != "platform" and _allowed("roles", "read"):
        items.append(("roles", _l("Roles"), url_for("web.roles", slug=slug)))
    if subject.kind in ("union", "federation") and _allowed("reports", "read"):
        items.append(("reports", _l("Reports"), url_for("web.reports", slug=slug)))
    if subject.kind == "union" and _allowed("cascade", "read"):
        items.append(("cascade", _l("Federation link"), url_for("web.cascade", slug=slug)))
    if subject.kind == "union" and _allowed("invitations", "manage"):
        items.append(("invitations", _l("Invitations"), url_for("web.invitations", slug=slug)))
    if firewall.allowed(subject, "platform", "audit", "read"):
        items.append(("audit", _l("Audit"), url_for("web.audit_check")))
    items.append(("settings", _l("Settings"), url_for("web.settings")))
    path = request.path
    out = []
    for key, text, url in items:
        current = path == url or (url != "/" and path.startswith(url.rstrip("/") + "/"))
        out.append(NavItem(key, str(text), url, current))
    by_key = {item.key: item for item in out}
    bar = [by_key[key] for key in BAR_ORDER.get(subject.kind, ()) if key in by_key][:BAR_SIZE]
    more = [item for item in out if item not in bar]
    return Menu(out, bar, more)
