"""Pages of secret ballots: the member's ballot on a phone (choose, confirm, cast, the receipt), the election
committee's console (turnout while open, the roll, open/close/tally) and the printable 選挙結果公示.

Access is the API's own (`federation.ballots.views.reach`); casting goes through `service.cast`, which encrypts
before anything is stored. The chosen options travel only in the confirm form and the cast request."""
from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from federation.access import access_tenant
from federation.auth.service import require_caller
from federation.ballots import service
from federation.ballots.views import reach
from federation.errors import APIError
from federation.extensions import db
from federation.firewall import Denied
from federation.web import bp
from federation.web.formatting import first_message


def _chosen(ballot) -> list[int]:  # type: ignore[no-untyped-def]
    ids = {o["id"] for o in service.options_of(ballot)}
    out = []
    for raw in request.form.getlist("choice"):
        if raw.isdigit() and int(raw) in ids:
            out.append(int(raw))
    return out


def _page(tenant, ballot, officer: bool, *, errors=None, status: int = 200, receipt: str | None = None):  # type: ignore[no-untyped-def]
    entry = service.roll_entry(ballot, g.user)
    eligible, voted = service.turnout(ballot) if ballot.status != "draft" else (0, 0)
    trustees = service.trustees(ballot)
    return render_template(
        "web/ballot.html", tenant=tenant, ballot=ballot, options=service.options_of(ballot), officer=officer,
        entry=entry, is_open=service.is_open(ballot), eligible=eligible, voted=voted, trustees=trustees,
        decrypted=sum(1 for t in trustees if t.decryption), errors=errors or [], receipt=receipt,
        done=request.args.get("done")), status


@bp.route("/t/<slug>/ballots")
def ballots(slug: str):  # type: ignore[no-untyped-def]
    tenant, _ballot, officer = reach(slug)
    rows = service.visible(tenant, g.user, officer)
    voted = {b.id: bool((e := service.roll_entry(b, g.user)) and e.voted) for b in rows}
    return render_template("web/ballots.html", tenant=tenant, ballots=rows, officer=officer, voted=voted,
                           is_open={b.id: service.is_open(b) for b in rows})


@bp.route("/t/<slug>/ballots/<int:ballot_id>")
def ballot(slug: str, ballot_id: int):  # type: ignore[no-untyped-def]
    tenant, row, officer = reach(slug, ballot_id)
    return _page(tenant, row, officer)


@bp.route("/t/<slug>/ballots/<int:ballot_id>/confirm", methods=["POST"])
def ballot_confirm(slug: str, ballot_id: int):  # type: ignore[no-untyped-def]
    """The choice shown back before it is cast: nothing is stored by this step."""
    tenant, _subject = access_tenant(slug, "ballots", "vote")
    row = service.one(tenant, g.user, ballot_id, officer=False)
    choices = _chosen(row)
    try:
        service.marks_from_choices(row, choices)
    except APIError as exc:
        return _page(tenant, row, False, errors=[first_message(exc.fields or exc.message)], status=exc.status)
    labels = [o["label"] for o in service.options_of(row) if o["id"] in choices]
    return render_template("web/ballot_confirm.html", tenant=tenant, ballot=row, choices=choices, labels=labels)


@bp.route("/t/<slug>/ballots/<int:ballot_id>/vote", methods=["POST"])
def ballot_vote(slug: str, ballot_id: int):  # type: ignore[no-untyped-def]
    tenant, _subject = access_tenant(slug, "ballots", "vote")
    row = service.one(tenant, g.user, ballot_id, officer=False)
    try:
        receipt = service.cast(row, g.user, choices=_chosen(row))
    except APIError as exc:
        db.session.rollback()
        return _page(tenant, row, False, errors=[first_message(exc.fields or exc.message)], status=exc.status)
    return _page(tenant, row, False, receipt=receipt["receipt"])


@bp.route("/t/<slug>/ballots/<int:ballot_id>/<any(open, close, tally):op>", methods=["POST"])
def ballot_step(slug: str, ballot_id: int, op: str):  # type: ignore[no-untyped-def]
    tenant, row, _officer = reach(slug, ballot_id, "manage")
    try:
        if op == "open":
            service.open_ballot(row, tenant, g.user)
        elif op == "close":
            service.close(row, tenant, g.user.subject)
        else:
            service.tally(row, tenant, g.user.subject)
    except APIError as exc:
        db.session.rollback()
        return _page(tenant, row, True, errors=[first_message(exc.fields or exc.message)], status=exc.status)
    return redirect(url_for("web.ballot", slug=slug, ballot_id=ballot_id, done=op))


@bp.route("/t/<slug>/ballots/<int:ballot_id>/result")
def ballot_result(slug: str, ballot_id: int):  # type: ignore[no-untyped-def]
    """The printable notice of the result (選挙結果公示) an election committee posts."""
    tenant, row, _officer = reach(slug, ballot_id)
    if row.status != "tallied":
        return _page(tenant, row, _officer, errors=[_("There is no result before the tally.")], status=409)
    return render_template("web/ballot_result.html", tenant=tenant, ballot=row, result=service.result(row))


@bp.route("/ballots/<int:ballot_id>")
def ballot_from_push(ballot_id: int):  # type: ignore[no-untyped-def]
    """Where a ballot push opens: the member's own tenant's ballot page, which does every check itself."""
    subject = require_caller()
    if subject.kind == "platform":
        raise Denied(404)
    return redirect(url_for("web.ballot", slug=subject.tenant, ballot_id=ballot_id))
