"""The page behind an officer's one-time link (reset or first activation): a member with no e-mail sets a password
on their own phone. The link itself is the permission; the page works signed out."""
from __future__ import annotations

from flask import render_template, request
from flask_babel import gettext as _

from federation.auth import accounts
from federation.errors import APIError
from federation.extensions import db
from federation.web import bp


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
