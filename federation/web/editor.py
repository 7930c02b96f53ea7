"""Pages for those who write notices (federation staff, block and council officers, union editors): the list, the
compose form with its audience tree and live count, and the per-notice stats and receipts."""
from __future__ import annotations

import json
from typing import Any

from flask import g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from federation.access import access_tenant
from federation.errors import APIError
from federation.extensions import db
from federation.firewall import firewall
from federation.notices import audience as aud
from federation.notices import reads, service
from federation.notices.markdown import render
from federation.notices.models import CATEGORIES, STAMPS, STATUSES
from federation.notices.schemas import NoticeIn, NoticePatch
from federation.privacy import SMALL_GROUP
from federation.web import bp, formatting
from federation.web.formatting import first_message
from tenants.reads import tenant_names

WHEN = ("now", "schedule", "draft")


@bp.route("/t/<slug>/notices")
def notices(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "notices", "write")
    status = request.args.get("status")
    rows = reads.officer_notices(tenant, subject, status=status if status in STATUSES else None)
    return render_template("web/notices.html", tenant=tenant, notices=rows, status=status, statuses=STATUSES,
                           may_stats=firewall.allowed(subject, slug, "stats", "read"),
                           may_receipts=firewall.allowed(subject, slug, "receipts", "read"),
                           may_publish=firewall.allowed(subject, slug, "notices", "publish"),
                           editable={n.id for n in rows if service.may_edit(n, subject)},
                           done=request.args.get("done"))


# --- compose -------------------------------------------------------------------------------------------------------

def audience_from_form(form: Any) -> dict[str, Any]:
    officers = {"officers": True} if form.get("audience_officers") else {}
    if form.get("audience_all"):
        return officers or {"all": True}
    out: dict[str, Any] = dict(officers)
    units = []
    for raw in form.getlist("audience_unit"):
        try:
            units.append(int(raw))
        except ValueError:
            continue
    if units:
        out["units"] = units
    unions = [s for s in form.getlist("audience_union") if s]
    if unions:
        out["unions"] = unions
    return out


def _notice_body(form: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The form as the API's notice body, and the problems that stop it before the service sees it."""
    problems: dict[str, str] = {}
    raw: dict[str, Any] = {"title": form.get("title", "").strip(), "body": form.get("body", ""),
                           "category": form.get("category", "general"), "audience": audience_from_form(form)}
    if form.get("comments"):
        raw["comments"] = True
    if form.get("has_event"):
        try:
            starts = formatting.parse_local(form.get("event_starts"))
            ends = formatting.parse_local(form.get("event_ends"))
        except ValueError:
            starts = ends = None
            problems["event"] = "date"
        if starts is None and "event" not in problems:
            problems["event"] = "date"
        if starts is not None:
            raw["event"] = {"starts_at": starts.isoformat(), "ends_at": ends.isoformat() if ends else None,
                            "place": form.get("event_place", "").strip() or None,
                            "online_url": form.get("event_online_url", "").strip() or None}
    if form.get("when") == "schedule":
        try:
            publish_at = formatting.parse_local(form.get("publish_at"))
        except ValueError:
            publish_at = None
        if publish_at is None:
            problems["publish_at"] = "date"
        else:
            raw["publish_at"] = publish_at.isoformat()
    return raw, problems


def _fields_of(error: ValidationError | APIError) -> dict[str, str]:
    messages = error.messages if isinstance(error, ValidationError) else error.fields
    out: dict[str, str] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            out[str(key)] = first_message(value)
    if not out and isinstance(error, APIError):
        out["_"] = error.message
    return out



def audience_choice(tenant: Any, subject: Any, form: Any) -> dict[str, Any]:
    """What web/_audience_tree.html needs (the compose and report request forms): the writer's tree, whether they
    may choose everyone, what the form chose, and the branches to show open."""
    roots, may_all = reads.audience_tree(tenant, subject)
    audience = audience_from_form(form) if form else {}
    selected = {"all": bool(audience.get("all")), "units": set(audience.get("units", [])),
                "unions": set(audience.get("unions", []))}
    return {"roots": roots, "may_all": may_all, "selected": selected, "open_nodes": _open_nodes(roots, selected),
            "audience": audience}


def _compose_page(tenant: Any, subject: Any, form: Any, *, errors: dict[str, str] | None = None,
                  preview_html: str | None = None, status: int = 200,
                  editing: Any = None):  # type: ignore[no-untyped-def]
    choice = audience_choice(tenant, subject, form)
    audience = choice.pop("audience")
    counts = None
    if audience:
        try:
            counts = aud.preview(aud.validate(audience, tenant, subject), tenant)
        except APIError:
            counts = None
    return render_template("web/compose.html", tenant=tenant, form=form or {}, editing=editing,
                           errors=errors or {}, preview_html=preview_html, counts=counts, **choice,
                           categories=CATEGORIES, may_publish=firewall.allowed(subject, tenant.slug, "notices",
                                                                               "publish")), status


def _open_nodes(roots: list[Any], selected: dict[str, Any]) -> set[int]:
    """The tree opens only where something is chosen: blocks show, their councils and unions fold away."""
    out: set[int] = set()

    def walk(node: Any) -> bool:
        inside = any(u.slug in selected["unions"] for u in node.unions)
        for child in node.children:
            chosen = walk(child) or child.id in selected["units"]
            inside = inside or chosen
        if inside:
            out.add(node.id)
        return inside

    for root in roots:
        walk(root)
    return out


def _save(tenant: Any, subject: Any, form: Any, editing: Any = None):  # type: ignore[no-untyped-def]
    """The compose form's POST, for a new notice and for a draft being edited: preview, back from the confirm step,
    save, schedule, or send (asked once more first)."""
    here = (url_for("web.edit", slug=tenant.slug, notice_id=editing.id) if editing else
            url_for("web.compose", slug=tenant.slug))
    if form.get("action") == "preview":
        return _compose_page(tenant, subject, form, preview_html=render(form.get("body", "")) or "", editing=editing)
    if form.get("action") == "back":  # from the confirm step: the form as it was, nothing written
        return _compose_page(tenant, subject, form, editing=editing)
    raw, problems = _notice_body(form)
    when = form.get("when") if form.get("when") in WHEN else "draft"
    if problems:
        return _compose_page(tenant, subject, form, errors=problems, status=422, editing=editing)
    if editing:
        raw.setdefault("event", None)  # unticked: the event goes
        raw["publish_at"] = raw.get("publish_at") if when == "schedule" else None
    try:
        body = (NoticePatch() if editing else NoticeIn()).load(raw)
        if when == "now":
            # Publishing is its own permission: checked before anything is written.
            firewall.require(subject, tenant.slug, "notices", "publish")
            if not form.get("confirmed"):
                # Sending to hundreds of phones at once is asked once more, with the title and the count.
                counts = aud.preview(aud.validate(raw["audience"], tenant, subject), tenant)
                return _confirm_page(tenant, raw["title"], counts, here, carried=_carried(form), back_in_form=True)
        notice = (service.update_notice(editing, subject, body) if editing else
                  service.create_notice(tenant, g.user, subject, body))
    except (ValidationError, APIError) as exc:
        db.session.rollback()
        return _compose_page(tenant, subject, form, errors=_fields_of(exc), status=422, editing=editing)
    if when == "now":
        service.publish_now(notice, subject)
    # Sent: watch it arrive. Kept for later: back to the list, where its title opens it again.
    if notice.status == "published" and firewall.allowed(subject, tenant.slug, "stats", "read"):
        return redirect(url_for("web.stats", slug=tenant.slug, notice_id=notice.id, done=notice.status))
    return redirect(url_for("web.notices", slug=tenant.slug, done=notice.status))


@bp.route("/t/<slug>/notices/new", methods=["GET", "POST"])
def compose(slug: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "notices", "write")
    if request.method == "GET":
        return _compose_page(tenant, subject, None)
    return _save(tenant, subject, request.form)


def _form_of(notice: Any) -> MultiDict:
    """A draft or scheduled notice as the compose form it came from, to edit it on the same page."""
    form = MultiDict({"title": notice.title, "category": notice.category, "body": notice.body,
                      "when": "schedule" if notice.status == "scheduled" else "draft",
                      "publish_at": formatting.iso_local(notice.publish_at)})
    if notice.event_starts_at is not None:
        form.update({"has_event": "1", "event_starts": formatting.iso_local(notice.event_starts_at),
                     "event_ends": formatting.iso_local(notice.event_ends_at),
                     "event_place": notice.event_place or "", "event_online_url": notice.event_online_url or ""})
    audience = json.loads(notice.audience)
    if notice.comments:
        form["comments"] = "1"
    if audience.get("officers"):
        form["audience_officers"] = "1"
        if not audience.get("units") and not audience.get("unions"):
            form["audience_all"] = "1"
    if audience.get("all"):
        form["audience_all"] = "1"
    for unit in audience.get("units", []):
        form.add("audience_unit", str(unit))
    for union in audience.get("unions", []):
        form.add("audience_union", union)
    return form


@bp.route("/t/<slug>/notices/<int:notice_id>/edit", methods=["GET", "POST"])
def edit(slug: str, notice_id: int):  # type: ignore[no-untyped-def]
    """Open, change, reschedule or send a draft or a scheduled notice, on the compose page."""
    tenant, notice = service.access_notice(slug, notice_id)
    if notice.status not in ("draft", "scheduled"):
        return redirect(url_for("web.notices", slug=slug))
    if request.method == "GET":
        return _compose_page(tenant, g.subject, _form_of(notice), editing=notice)
    return _save(tenant, g.subject, request.form, editing=notice)


@bp.route("/t/<slug>/notices/<int:notice_id>/delete", methods=["POST"])
def delete(slug: str, notice_id: int):  # type: ignore[no-untyped-def]
    _tenant, notice = service.access_notice(slug, notice_id)
    service.delete_unsent(notice, g.subject)
    return redirect(url_for("web.notices", slug=slug, done="deleted"))


@bp.route("/t/<slug>/notices/markdown", methods=["POST"])
def markdown_preview(slug: str):  # type: ignore[no-untyped-def]
    """The compose page's preview: the very renderer and sanitizer a published notice goes through."""
    access_tenant(slug, "notices", "write")
    return render(request.form.get("body", "")), 200, {"Content-Type": "text/html; charset=utf-8"}


def _carried(form: Any) -> list[tuple[str, str]]:
    """The compose form's fields, carried through the confirm step unchanged."""
    return [(k, v) for k, v in form.items(multi=True) if k not in ("csrf_token", "action", "confirmed")]


def _confirm_page(tenant: Any, title: str, counts: dict[str, Any], action: str, *, carried: list[tuple[str, str]],
                  back_in_form: bool = False, back_url: str | None = None):  # type: ignore[no-untyped-def]
    return render_template("web/notice_confirm.html", tenant=tenant, title=title, counts=counts, action=action,
                           carried=carried, back_in_form=back_in_form, back_url=back_url)


@bp.route("/t/<slug>/notices/<int:notice_id>/publish", methods=["POST"])
def publish(slug: str, notice_id: int):  # type: ignore[no-untyped-def]
    tenant, notice = service.access_notice(slug, notice_id, "publish")
    if not request.form.get("confirmed"):
        if notice.status in ("published", "retracted"):
            service.publish_now(notice, g.subject)  # the service's own 409 for a notice already out
        counts = aud.preview(json.loads(notice.audience), tenant)
        return _confirm_page(tenant, notice.title, counts, url_for("web.publish", slug=slug, notice_id=notice.id),
                             carried=[], back_url=url_for("web.notices", slug=slug))
    service.publish_now(notice, g.subject)
    return redirect(url_for("web.notices", slug=slug, done="published"))


@bp.route("/t/<slug>/notices/<int:notice_id>/retract", methods=["POST"])
def retract(slug: str, notice_id: int):  # type: ignore[no-untyped-def]
    _tenant, notice = service.access_notice(slug, notice_id)
    service.retract(notice, g.subject)  # also queues the retraction push, as the API's DELETE does
    return redirect(url_for("web.notices", slug=slug, done="retracted"))


# --- watching it arrive ----------------------------------------------------------------------------------------------

@bp.route("/t/<slug>/notices/<int:notice_id>/stats")
def stats(slug: str, notice_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "stats", "read")
    notice = reads.officer_notice(tenant, subject, notice_id)
    numbers = reads.stats(tenant, subject, notice_id)
    unions = numbers.get("unions", [])
    names = tenant_names({u["union"] for u in unions})
    attendees = None
    if tenant.kind == "federation" and notice.category == "seminar" \
            and firewall.allowed(subject, slug, "receipts", "read"):
        # F4: only the members who pressed attend, and so chose to share their name with the organizer.
        attendees = reads.receipts(tenant, subject, notice_id).items
        names.update(tenant_names({a["union"] for a in attendees}))
    may_comments = (notice.tenant.kind == "federation" or notice.comments) and firewall.allowed(
        subject, slug, "comments", "read")
    return render_template("web/stats.html", tenant=tenant, notice=notice, numbers=numbers, unions=unions,
                           may_comments=may_comments,
                           names=names, attendees=attendees, audience=json.loads(notice.audience),
                           small_group=SMALL_GROUP,
                           done=request.args.get("done"),
                           may_receipts=tenant.kind == "union" and firewall.allowed(subject, slug, "receipts",
                                                                                    "read"))


@bp.route("/t/<slug>/notices/<int:notice_id>/receipts")
def receipts(slug: str, notice_id: int):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "receipts", "read")
    found = reads.receipts(tenant, subject, notice_id)
    if found.organizer:
        return render_template("web/receipts.html", tenant=tenant, notice=found.notice, items=found.items,
                               reaction=None, organizer=True, names=tenant_names({i["union"] for i in found.items}),
                               summary=None)
    reaction = request.args.get("reaction")
    reaction = reaction if reaction in STAMPS else None
    everyone = found.items
    items = [i for i in everyone if i["reaction"] == reaction] if reaction else everyone
    summary = {"total": len(everyone), "read": sum(1 for i in everyone if i["read_at"]),
               **{s: sum(1 for i in everyone if i["reaction"] == s) for s in STAMPS}}
    return render_template("web/receipts.html", tenant=tenant, notice=found.notice, items=items, reaction=reaction,
                           organizer=False, names={}, summary=summary)
