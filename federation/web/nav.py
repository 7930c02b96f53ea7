"""The menu a person sees: an item appears only where the firewall would let them open the page behind it."""
from __future__ import annotations

from dataclasses import dataclass

from flask import g, request, url_for
from flask_babel import lazy_gettext as _l

from federation.firewall import firewall


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: bool


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


def navigation() -> list[NavItem]:
    subject = g.get("subject")
    if subject is None:
        return []
    slug = subject.tenant
    items: list[tuple[str, str]] = []
    if subject.kind == "union":
        items.append((_l("Inbox"), url_for("web.inbox")))
    if subject.kind == "union" and _allowed("documents", "read"):
        items.append((_l("Documents"), url_for("web.documents", slug=slug)))
    if subject.kind == "union" and _allowed("surveys", "read"):
        items.append((_l("Surveys"), url_for("web.surveys", slug=slug)))
    if subject.kind == "union" and _allowed("applications", "write"):
        items.append((_l("Applications"), url_for("web.applications", slug=slug)))
    if _allowed("notices", "write"):
        items.append((_l("Notices"), url_for("web.notices", slug=slug)))
    if subject.kind == "union" and _allowed("notices", "relay"):
        items.append((_l("To relay"), url_for("web.relay_inbox", slug=slug)))
    if subject.kind == "union" and _allowed("members", "read"):
        items.append((_l("Members"), url_for("web.members", slug=slug)))
        items.append((_l("Organisation"), url_for("web.units", slug=slug)))
    if subject.kind == "federation" and _allowed("units", "write"):
        items.append((_l("Organisation"), url_for("web.units", slug=slug)))
    if subject.kind != "platform" and _allowed("roles", "read"):
        items.append((_l("Roles"), url_for("web.roles", slug=slug)))
    if subject.kind == "union" and _allowed("cascade", "read"):
        items.append((_l("Federation link"), url_for("web.cascade", slug=slug)))
    if subject.kind == "union" and _allowed("invitations", "manage"):
        items.append((_l("Invitations"), url_for("web.invitations", slug=slug)))
    if firewall.allowed(subject, "platform", "audit", "read"):
        items.append((_l("Audit"), url_for("web.audit_check")))
    items.append((_l("Settings"), url_for("web.settings")))
    path = request.path
    out = []
    for text, url in items:
        current = path == url or (url != "/" and path.startswith(url.rstrip("/") + "/"))
        out.append(NavItem(str(text), url, current))
    return out
