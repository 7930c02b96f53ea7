"""Account pages: the page behind an officer's one-time link (reset or first activation), where a member with no
e-mail sets a password on their own phone (the link itself is the permission; the page works signed out); changing
your own password; what to do when you forgot it; and the officer's reset and unlock for a member."""
from __future__ import annotations

from flask import g, redirect, render_template, request, url_for
from flask_babel import gettext as _

from federation.access import access_tenant
from federation.auth import accounts
from federation.auth.service import require_caller
from federation.errors import APIError
from federation.extensions import db
from federation.web import bp
from tenants import reads


@bp.route("/account/<token>", methods=["GET", "POST"])
def account_link(token: str):  # type: ignore[no-untyped-def]
    try:
        _row, user = accounts.link_target(token)
    except APIError:
        return render_template("web/account_link.html", invalid=True), 404
    error = None
    if request.method == "POST":
        password = request.form.get("password", "")
        if password != request.form.get("password2", ""):
            error = _("The two passwords differ.")
        else:
            try:
                accounts.use_link(token, password)
            except APIError as exc:
                db.session.rollback()
                if exc.status == 404:
                    return render_template("web/account_link.html", invalid=True), 404
                error = _("Choose another password: at least 8 characters, not a common one, not your employee "
                          "number.")
            else:
                return render_template("web/account_link.html", done=True, user=user), 200
    return render_template("web/account_link.html", user=user, error=error), 422 if error else 200


# --- your own password ------------------------------------------------------------------------------------------------

@bp.route("/settings/password", methods=["GET", "POST"])
def settings_password():  # type: ignore[no-untyped-def]
    require_caller()
    errors: dict[str, str] = {}
    if request.method == "POST":
        current, new = request.form.get("current_password", ""), request.form.get("new_password", "")
        if new != request.form.get("new_password2", ""):
            errors["new_password2"] = _("The two passwords differ.")
        else:
            try:
                accounts.change_password(g.user, current, new, session_id=g.auth_session.id)
            except APIError as exc:
                db.session.rollback()
                field = next(iter(exc.fields or {"new_password": ""}))
                errors[field] = (_("This is not your current password.") if field == "current_password" else
                                 _("Choose another password: at least 8 characters, not a common one, not your "
                                   "employee number."))
            else:
                return redirect(url_for("web.settings", saved="password"))
    return render_template("web/settings_password.html", errors=errors), 422 if errors else 200


@bp.route("/signin/help")
def signin_help():  # type: ignore[no-untyped-def]
    """Forgot the password: members often have no e-mail the union may use, so an officer hands over a new link."""
    return render_template("web/signin_help.html")


# --- an officer's reset and unlock for a member --------------------------------------------------------------------

@bp.route("/t/<slug>/members/<login_id>/account", methods=["POST"])
def member_account(slug: str, login_id: str):  # type: ignore[no-untyped-def]
    tenant, subject = access_tenant(slug, "members", "write")
    member = reads.member_by_login(tenant, login_id)
    if request.form.get("op") == "unlock":
        accounts.unlock(tenant, member, actor=subject.key)
        return render_template("web/member_account.html", tenant=tenant, member=member, unlocked=True)
    handed = accounts.handover(accounts.issue_link(tenant, member, actor=subject.key))
    return render_template("web/member_account.html", tenant=tenant, member=member, link=handed)
