"""The auditor's console: check (with the reason), who-can, exposure with a statement per union, the log and its
verification. It shows policy, roles, links and counts; like the audit API it never shows content (F1)."""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask import render_template, request
from flask_babel import gettext as _
from markupsafe import Markup

from federation.access import access_tenant
from federation.audit import chain, queries
from federation.audit import entries as audit_entries
from federation.errors import APIError
from federation.firewall.templates import ACTIONS, GRANTABLE, OBJECTS
from federation.pagination import page_key
from federation.privacy import SMALL_GROUP
from federation.web import bp
from tenants.reads import all_tenants, tenant_names

LOG_PAGE = 50


def _auditor() -> None:
    # The same gate as the audit API: policy and the log live in the platform domain.
    access_tenant("platform", "audit", "read")


def _say(message: str, **names: str) -> Markup:
    """A translated sentence with the firewall's names (subjects, tenants, rules) set as code, not as prose."""
    return Markup(message) % {k: Markup("<code>%s</code>") % v for k, v in names.items()}


def _missing_text(text: str) -> Markup | str:
    """explain.py names what a near-miss rule lacks in fixed English forms; say the same in the page's language."""
    patterns: tuple[tuple[str, Callable[[re.Match[str]], Markup]], ...] = (
        (r"^the role (\S+)$", lambda m: _say(_("the role %(role)s"), role=m[1])),
        (r"^acting from inside (\S+) \(the subject acts from (.+)\)$",
         lambda m: _say(_("acting from inside %(tenant)s (the subject acts from %(home)s)"), tenant=m[1],
                        home=m[2])),
        (r"^a platform role$", lambda m: _say(_("a platform role"))),
        (r"^an active affiliation of (\S+) with (.+)$",
         lambda m: _say(_("an active affiliation of %(union)s with %(federation)s"), union=m[1], federation=m[2])),
        (r"^(\S+) opting in to (.+)'s cascade \(now: affiliated, cascade opted_out\)$",
         lambda m: _say(_("%(union)s opting in to the cascade of %(federation)s (now: affiliated, opted out)"),
                        union=m[1], federation=m[2])),
        (r"^(\S+) opting in to (.+)'s cascade \(now: not affiliated\)$",
         lambda m: _say(_("%(union)s opting in to the cascade of %(federation)s (now: not affiliated)"),
                        union=m[1], federation=m[2])),
        (r"^no rule grants (\S+) to any role$", lambda m: _say(_("no rule grants %(perm)s to any role"), perm=m[1])),
    )
    for pattern, say in patterns:
        match = re.match(pattern, text)
        if match:
            return say(match)
    return Markup("<code>%s</code>") % text


def _reason(result: dict[str, Any]) -> Markup:
    perm = f"{result['object']}/{result['action']}"
    if not result["allowed"] and "not active" in result.get("reason", ""):
        return _say(_("%(subject)s is not active (suspended or not yet registered): a suspended user holds no "
                      "role."), subject=result["subject"])
    if result["allowed"]:
        first = result["explain"][0]
        return _say(_("Allowed: %(subject)s holds %(chain)s, and the rule below gives %(perm)s in %(tenant)s."),
                    subject=result["subject"], chain=" → ".join(first["via"]), perm=perm, tenant=result["tenant"])
    return _say(_("Denied: no rule gives %(perm)s in %(tenant)s to %(subject)s."), perm=perm,
                tenant=result["tenant"], subject=result["subject"])


@bp.route("/audit")
def audit_check():  # type: ignore[no-untyped-def]
    _auditor()
    q = {k: (request.args.get(k) or "").strip() for k in ("subject", "tenant", "object", "action")}
    picked = {k: (request.args.get(k) or "").strip() for k in ("who_kind", "who_tenant", "who_login", "who_role")}
    q["subject"] = q["subject"] or _picked_subject(picked)
    result = error = None
    if all(q.values()):
        try:
            result = queries.check(q["subject"], q["tenant"], q["object"], q["action"])
        except APIError as exc:
            error = exc
        else:
            result["reason_text"] = _reason(result)
            for near in result.get("nearest", []):
                near["missing_text"] = [_missing_text(m) for m in near["missing"]]
    tenants = all_tenants()
    return render_template("web/audit_check.html", q=q, picked=picked, result=result, error=error, tenants=tenants,
                           roles_by_kind=GRANTABLE, example=_example_subjects(tenants),
                           objects=OBJECTS, actions=ACTIONS), 422 if error else 200


def _picked_subject(picked: dict[str, str]) -> str:
    """The subject built from the pickers: a person (tenant, then login id) or a role (optionally of a tenant)."""
    if picked["who_kind"] == "user" and picked["who_tenant"] and picked["who_login"]:
        return f"user:{picked['who_tenant']}/{picked['who_login']}"
    if picked["who_kind"] == "role" and picked["who_role"]:
        return f"role:{picked['who_role']}" + (f"@{picked['who_tenant']}" if picked["who_tenant"] else "")
    return ""


def _example_subjects(tenants: list[Any]) -> list[str]:
    """Examples for the raw subject field, from tenants that exist."""
    out = []
    fed = next((t for t in tenants if t.kind == "federation"), None)
    union = next((t for t in tenants if t.kind == "union"), None)
    if fed:
        out.append(f"role:fed_editor@{fed.slug}")
    if union:
        out += [f"user:{union.slug}/LOGIN_ID", f"role:union_admin@{union.slug}"]
    return out


@bp.route("/audit/who-can")
def audit_who_can():  # type: ignore[no-untyped-def]
    _auditor()
    q = {k: (request.args.get(k) or "").strip() for k in ("tenant", "object", "action")}
    result = error = None
    if all(q.values()):
        try:
            result = queries.who_can(q["tenant"], q["object"], q["action"])
        except APIError as exc:
            error = exc
    return render_template("web/audit_who_can.html", q=q, result=result, error=error, tenants=all_tenants(),
                           objects=OBJECTS, actions=ACTIONS), 422 if error else 200


def _statement(union: str, crossings: list[dict[str, Any]]) -> list[Markup]:
    """The per-union statement, from the same permissions the API's statement is derived from."""
    lines = []
    for crossing in crossings:
        if crossing["to"] != union:
            continue
        fed = crossing["from"]
        perms = [p.split(": ", 1)[1] for p in crossing["permissions"]]
        if "notices/deliver" in perms:
            lines.append(_say(_("%(federation)s can deliver its notices to every member of %(union)s."),
                              federation=fed, union=union))
        elif "notices/relay" in perms:
            lines.append(_say(_("%(federation)s can deliver its notices only to the officers of %(union)s, who "
                                "may relay them."), federation=fed, union=union))
        reads = sorted({p for p in perms if p.split("/")[0] in queries.UNION_CONTENT
                        and not p.endswith(("/deliver", "/relay"))})
        if reads:
            lines.append(_say(_("%(federation)s can also: %(perms)s"), federation=fed, perms=", ".join(reads)))
        elif "kpi/read" not in perms:
            lines.append(_say(_("%(federation)s can read nothing of %(union)s."), federation=fed, union=union))
        if "kpi/read" in perms:
            lines.append(_say(_("%(federation)s can read no content of %(union)s, only its KPI counts: no names, and "
                                "no figure about fewer than %(n)s people."), federation=fed, union=union,
                              n=SMALL_GROUP))
    if not lines:
        lines.append(_say(_("No federation can deliver to %(union)s or read anything of it."), union=union))
    return lines


@bp.route("/audit/exposure")
def audit_exposure():  # type: ignore[no-untyped-def]
    _auditor()
    result = queries.exposure()
    for entry in result["unions"]:
        entry["statement_lines"] = _statement(entry["union"], result["crossings"])
    names = tenant_names({e["union"] for e in result["unions"]} | {c["from"] for c in result["crossings"]})
    return render_template("web/audit_exposure.html", result=result, names=names)


@bp.route("/audit/log")
def audit_log():  # type: ignore[no-untyped-def]
    _auditor()
    tenant = (request.args.get("tenant") or "").strip() or None
    kind = (request.args.get("kind") or "").strip() or None
    before = page_key(request.args.get("before"))
    rows = audit_entries.page(tenant=tenant, kind=kind, before=before, limit=LOG_PAGE + 1, newest_first=True)
    more = len(rows) > LOG_PAGE
    rows = rows[:LOG_PAGE]
    verification = chain.verify() if request.args.get("verify") else None
    entries = [{**r.as_dict(), "at": r.at,
                "data_text": json.dumps(json.loads(r.data), ensure_ascii=False, sort_keys=True)} for r in rows]
    return render_template("web/audit_log.html", entries=entries, tenant=tenant or "", kind=kind or "",
                           next_before=rows[-1].seq if more and rows else None, verification=verification,
                           tenants=all_tenants())
