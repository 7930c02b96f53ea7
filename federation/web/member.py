"""Pages every signed-in person uses: sign-in and out, the inbox, a notice with its stamps, their own settings; and
what makes the site installable (manifest, service worker, offline page)."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Response,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _

from federation.auth.service import COOKIE, end_session, require_caller, sign_in
from federation.errors import APIError
from federation.extensions import utcnow
from federation.firewall import firewall
from federation.notices import inbox, reads
from federation.notices.models import STAMPS
from federation.pagination import decode_cursor, encode_cursor
from federation.push import devices
from federation.push.records import forget_session
from federation.web import bp, i18n
from federation.web.nav import home_url

STATIC = Path(__file__).resolve().parent.parent / "static"
TENANT_COOKIE = "musubi_tenant"
INBOX_PAGE = 30


def _local_path(target: str | None) -> str | None:
    """Only a path on this site may be a redirect target: never another host (open redirect)."""
    if not target:
        return None
    # Browsers read a backslash as a slash and drop tabs and newlines, so "/\\evil.example" and "/\t/evil.example"
    # are both "//evil.example" to them: refuse anything a browser could read as another host.
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


# --- signing in and out -------------------------------------------------------------------------------------------

@bp.route("/signin", methods=["GET", "POST"])
def signin():  # type: ignore[no-untyped-def]
    next_url = _local_path(request.values.get("next"))
    if request.method == "GET" and g.get("subject") is not None:
        return redirect(next_url or home_url())
    form = {"tenant": request.values.get("tenant") or request.cookies.get(TENANT_COOKIE, ""),
            "login_id": request.form.get("login_id", "")}
    error = None
    status = 200
    if request.method == "POST":
        tenant = request.form.get("tenant", "").strip().lower()
        login_id = request.form.get("login_id", "").strip()
        password = request.form.get("password", "")
        if not tenant or not login_id or not password:
            error, status = _("Fill in all three fields."), 422
        else:
            try:
                result = sign_in(tenant, login_id, password, client=request.remote_addr or "unknown",
                                 user_agent=request.headers.get("User-Agent"))
            except APIError as exc:
                if exc.status == 429:
                    error = _("Too many failed attempts. Wait a while and try again.")
                else:
                    error = _("The union code, employee number or password is wrong.")
                status = exc.status
            else:
                settings = current_app.config["MUSUBI"]
                resp = redirect(next_url or _landing(result.user.tenant.kind, result.user.tenant.slug))
                resp.set_cookie(COOKIE, result.token, httponly=True, samesite="Lax", secure=settings.secure_cookies,
                                max_age=settings.session_hours * 3600, path="/")
                # Remembered so a member on their own phone types only the employee number next time.
                resp.set_cookie(TENANT_COOKIE, tenant, samesite="Lax", secure=settings.secure_cookies,
                                max_age=365 * 86400, path="/signin", httponly=True)
                return resp
    return render_template("web/signin.html", form=form, error=error, next_url=next_url), status


def _landing(kind: str, slug: str) -> str:
    if kind == "union":
        return url_for("web.inbox")
    if kind == "federation":
        return url_for("web.notices", slug=slug)
    return url_for("web.home")


@bp.route("/signout", methods=["POST"])
def signout():  # type: ignore[no-untyped-def]
    require_caller()
    forget_session(g.auth_session.id)  # this sign-in's push subscriptions go with it
    end_session(g.auth_session)
    resp = redirect(url_for("web.signin"))
    resp.delete_cookie(COOKIE, path="/")
    return resp


@bp.route("/lang/<code>")
def switch_language(code: str):  # type: ignore[no-untyped-def]
    """The language link in the footer: a GET, since it changes nothing but how this device shows pages."""
    resp = redirect(_local_path(request.args.get("next")) or url_for("web.home"))
    if code in i18n.LOCALES:
        resp.set_cookie(i18n.LANG_COOKIE, code, max_age=365 * 86400, samesite="Lax", path="/")
    return resp


@bp.route("/text-size/<size>")
def switch_text_size(size: str):  # type: ignore[no-untyped-def]
    """標準 / 大 / 特大 in the footer: kept on this device (many members are older, and phones are small)."""
    resp = redirect(_local_path(request.args.get("next")) or url_for("web.home"))
    if size in i18n.TEXT_SIZES:
        resp.set_cookie(i18n.TEXT_SIZE_COOKIE, size, max_age=365 * 86400, samesite="Lax", path="/")
    return resp


# --- the member's own pages ---------------------------------------------------------------------------------------

@bp.route("/")
def home():  # type: ignore[no-untyped-def]
    if g.get("subject") is None:
        return redirect(url_for("web.signin"))
    return redirect(home_url())


@bp.route("/inbox", endpoint="inbox")
def inbox_view():  # type: ignore[no-untyped-def]
    subject = require_caller()
    after = None
    cursor = decode_cursor(request.args.get("cursor"), (str, int))
    if cursor is not None:
        try:
            after = (datetime.fromisoformat(cursor[0]), cursor[1])
        except ValueError:
            raise APIError(400, "cursor: not a cursor this service gave out") from None
    page = inbox.inbox_page(g.caller, subject, limit=INBOX_PAGE, after=after)
    next_cursor = encode_cursor(page["cursor"][0].isoformat(), page["cursor"][1]) if page["cursor"] else None
    may_relay = subject.kind == "union" and firewall.allowed(subject, subject.tenant, "notices", "relay")
    # What waits for the member's own answer, above the notices: the union's open surveys not yet answered.
    surveys_waiting = []
    if subject.kind == "union" and cursor is None and firewall.allowed(subject, subject.tenant, "surveys", "write"):
        from federation.space.surveys import service as surveys

        surveys_waiting = surveys.waiting_for(g.user.tenant, g.user)
    rsvp_waiting = inbox.awaiting_rsvp(page["items"], utcnow()) if cursor is None else []
    return render_template("web/inbox.html", items=page["items"], unread=page["unread"], next_cursor=next_cursor,
                           may_relay=may_relay, surveys_waiting=surveys_waiting,
                           rsvp_waiting={item["notice"]["id"] for item in rsvp_waiting}, rsvp_list=rsvp_waiting)


@bp.route("/notices/<int:notice_id>")
def notice(notice_id: int):  # type: ignore[no-untyped-def]
    return notice_page(notice_id)


def notice_page(notice_id: int, *, comment_error: dict[str, Any] | None = None, comment_body: str = "") -> str:
    """The notice as the member opened it, with their stamps and the thread under it (web/comments.py)."""
    from federation.web.comments import member_thread

    target, found_notice = reads.opened_notice(g.caller, require_caller(), notice_id)
    delivered_at, relay_only = target.delivered_at, target.relay_only
    # Opening the notice is reading it; marking it here keeps the unread count honest without any script. Opening
    # it again writes nothing.
    receipt = inbox.mark_read(g.caller, target)
    shares = found_notice.category == "seminar" and found_notice.tenant_id != g.caller.tenant_id
    stamped = request.args.get("stamped")
    return render_template("web/notice.html", notice=found_notice, delivered_at=delivered_at, relay_only=relay_only,
                           receipt=receipt, shares=shares, stamps=STAMPS,
                           stamped=stamped if stamped in STAMPS or stamped == "cleared" else None,
                           may_relay=relay_only and not found_notice.officers_only
                           and firewall.allowed(g.subject, g.subject.tenant, "notices", "relay"),
                           thread=member_thread(notice_id), comment_error=comment_error, comment_body=comment_body,
                           commented=request.args.get("commented") == "1")


@bp.route("/notices/<int:notice_id>/reaction", methods=["POST"])
def react(notice_id: int):  # type: ignore[no-untyped-def]
    target = reads.in_inbox(g.caller, require_caller(), notice_id)
    stamp = request.form.get("stamp") or None
    if stamp is not None and stamp not in STAMPS:
        raise APIError(422, "stamp: attend, absent or read", fields={"stamp": ["unknown"]})
    inbox.react(g.caller, target, stamp)
    return redirect(url_for("web.notice", notice_id=notice_id, stamped=stamp or "cleared") + "#stamps")


# --- settings -------------------------------------------------------------------------------------------------------

@bp.route("/settings")
def settings():  # type: ignore[no-untyped-def]
    subject = require_caller()
    roles = [gr.role for gr in firewall.grants_of(subject)]
    roles += [r for r in firewall.roles_of(subject) if r not in roles]
    return render_template("web/settings.html", devices=devices.devices_of(subject.user_id), roles=roles,
                           saved=request.args.get("saved"))


@bp.route("/settings/language", methods=["POST"])
def settings_language():  # type: ignore[no-untyped-def]
    require_caller()
    code = request.form.get("language")
    if code not in i18n.LOCALES:
        raise APIError(422, "language: ja or en", fields={"language": ["unknown"]})
    resp = redirect(url_for("web.settings", saved="language"))
    resp.set_cookie(i18n.LANG_COOKIE, code, max_age=365 * 86400, samesite="Lax", path="/")
    return resp


@bp.route("/settings/devices/<int:device_id>/delete", methods=["POST"])
def settings_device_delete(device_id: int):  # type: ignore[no-untyped-def]
    subject = require_caller()
    devices.remove_device(subject.user_id, device_id)
    return redirect(url_for("web.settings", saved="device"))


# --- installable: manifest, service worker, offline -----------------------------------------------------------------

@bp.route("/manifest.webmanifest")
def manifest() -> Response:
    icons = [
        {"src": url_for("static", filename="icons/icon-192.png"), "sizes": "192x192", "type": "image/png"},
        {"src": url_for("static", filename="icons/icon-512.png"), "sizes": "512x512", "type": "image/png"},
        {"src": url_for("static", filename="icons/maskable-512.png"), "sizes": "512x512", "type": "image/png",
         "purpose": "maskable"},
    ]
    resp = jsonify({
        "name": "musubi 結び", "short_name": "musubi", "lang": "ja", "dir": "ltr",
        "description": "労働組合と産別のお知らせ", "start_url": "/", "scope": "/", "display": "standalone",
        "background_color": "#ffffff", "theme_color": "#1f3a68", "icons": icons,
    })
    resp.mimetype = "application/manifest+json"
    return resp


@bp.route("/sw.js")
def service_worker() -> Response:
    # Served from the root so its scope is the whole site (a worker under /static could only control /static).
    resp = send_file(STATIC / "sw.js", mimetype="text/javascript", max_age=0)
    resp.headers["Service-Worker-Allowed"] = "/"
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.route("/offline")
def offline():  # type: ignore[no-untyped-def]
    return render_template("web/offline.html")
