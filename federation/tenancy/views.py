"""Tenants, org units, members, roles and affiliations (SPEC "HTTP API"). Thin views: parse, ask the firewall
through federation.access, call one service function, return a schema."""
from __future__ import annotations

from flask import Response, g
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from federation.access import access_tenant
from federation.errors import invalid
from federation.firewall import Denied, firewall
from federation.pagination import decode_cursor, encode_cursor
from federation.schemas import StrictSchema
from tenants import reads, service
from tenants.models import Tenant, User
from tenants.schemas import (
    AffiliationList,
    AffiliationOut,
    CascadeIn,
    InviteIn,
    MemberIn,
    MemberPatch,
    MembersPage,
    MembersQuery,
    RoleIn,
    RoleList,
    TenantIn,
    TenantOut,
    UnitIn,
    UnitOut,
    UserOut,
)

blp = Blueprint("tenants", __name__, url_prefix="/api/v1", description="Tenants, units, members, roles, affiliations")


@blp.route("/tenants")
class Tenants(MethodView):
    @blp.response(200, TenantOut(many=True))
    def get(self):
        """List tenants (platform admins and auditors): by kind, unions in 50-on order of their reading"""
        access_tenant("platform", "tenant", "read")
        # `tenant read` with the `any` link is what lets a platform role list every tenant; re-check per row so a
        # narrower policy would narrow the list too.
        subject = g.subject
        return [t for t in reads.all_tenants() if firewall.allowed(subject, t.slug, "tenant", "read")]

    @blp.arguments(TenantIn)
    @blp.response(201, TenantOut)
    def post(self, body):
        """Create a federation or union tenant (platform admins)"""
        _, subject = access_tenant("platform", "tenant", "write")
        return service.create_tenant(body["slug"], body["name"], body["kind"], actor=subject.key,
                                     name_kana=body["name_kana"])


@blp.route("/tenants/<slug>/units")
class Units(MethodView):
    @blp.response(200, UnitOut(many=True))
    def get(self, slug):
        """The tenant's org units, parents before children; blocks north to south, councils by prefecture code"""
        tenant, _ = access_tenant(slug, "units", "read")
        return service.units_of(tenant)

    @blp.arguments(UnitIn)
    @blp.response(201, UnitOut)
    def post(self, body, slug):
        """Add a block, council, branch or workplace"""
        tenant, subject = access_tenant(slug, "units", "write")
        return service.create_unit(tenant, actor=subject.key, **body)


@blp.route("/tenants/<slug>/members")
class Members(MethodView):
    @blp.arguments(MembersQuery, location="query")
    @blp.response(200, MembersPage)
    def get(self, query, slug):
        """Members in 50-on order of their reading; `q` searches name, reading and login id"""
        tenant, _ = access_tenant(slug, "members", "read")
        after = decode_cursor(query["cursor"], (str, int))
        rows = service.members_page(tenant, limit=query["limit"] + 1, after=after, q=query["q"])  # type: ignore[arg-type]
        more = len(rows) > query["limit"]
        rows = rows[: query["limit"]]
        return {"items": rows, "next_cursor": encode_cursor(rows[-1].kana_key, rows[-1].id) if more else None}

    @blp.arguments(MemberIn)
    @blp.response(201, UserOut)
    def post(self, body, slug):
        """Add a member who can sign in at once"""
        tenant, subject = access_tenant(slug, "members", "write")
        return service.create_user(tenant, actor=subject.key, **body)


@blp.route("/tenants/<slug>/members/export")
class MembersExport(MethodView):
    @blp.response(200, description="text/csv: 社員番号, 氏名, よみ, 所属, 役割, 状態 (UTF-8 with BOM)")
    def get(self, slug):
        """Every member as CSV, in 50-on order, with the columns the import reads"""
        from tenants import members_csv

        tenant, _ = access_tenant(slug, "members", "write")
        body = members_csv.export_csv(tenant).encode("utf-8-sig")
        return Response(body, mimetype="text/csv", headers={
            "Content-Disposition": f"attachment; filename={tenant.slug}-members.csv"})


@blp.route("/tenants/<slug>/members/<login_id>")
class Member(MethodView):
    @blp.response(200, UserOut)
    def get(self, slug, login_id):
        """One member"""
        tenant, _ = access_tenant(slug, "members", "read")
        return _member(tenant, login_id)

    @blp.arguments(MemberPatch)
    @blp.response(200, UserOut)
    def patch(self, body, slug, login_id):
        """Suspend or reactivate a member, move them to a unit, correct their name"""
        tenant, subject = access_tenant(slug, "members", "write")
        return service.update_member(tenant, _member(tenant, login_id), body, actor_user_id=subject.user_id,
                                     actor=subject.key)


def _member(tenant: Tenant, login_id: str) -> User:
    return reads.member_by_login(tenant, login_id)


class AccountLinkOut(StrictSchema):
    reset_url = fields.String(metadata={"description": "one-time link the member opens to set a password"})
    expires_at = fields.DateTime()
    purpose = fields.String(metadata={"description": "reset, or activate for a member who never set a password"})
    qr_svg = fields.String(metadata={"description": "the link as a QR code (SVG data URI) to print or show"})


class UnlockOut(StrictSchema):
    login_id = fields.String()
    failures_forgotten = fields.Integer()


@blp.route("/tenants/<slug>/members/<login_id>/reset")
class MemberReset(MethodView):
    @blp.response(201, AccountLinkOut)
    def post(self, slug, login_id):
        """A one-time, expiring link (and QR) for a member to set a new password, or their first one"""
        from federation.auth import accounts

        tenant, subject = access_tenant(slug, "members", "write")
        return accounts.handover(accounts.issue_link(tenant, _member(tenant, login_id), actor=subject.key))


@blp.route("/tenants/<slug>/members/<login_id>/unlock")
class MemberUnlock(MethodView):
    @blp.response(200, UnlockOut)
    def post(self, slug, login_id):
        """Let a member locked out by failed sign-ins try again at once"""
        from federation.auth import accounts

        tenant, subject = access_tenant(slug, "members", "write")
        user = _member(tenant, login_id)
        return {"login_id": user.login_id, "failures_forgotten": accounts.unlock(tenant, user, actor=subject.key)}


@blp.route("/tenants/<slug>/roles")
class Roles(MethodView):
    @blp.response(200, RoleList)
    def get(self, slug):
        """Who holds which role in the tenant"""
        tenant, _ = access_tenant(slug, "roles", "read")
        return _role_list(tenant)

    @blp.arguments(RoleIn)
    @blp.response(201, RoleList)
    def post(self, body, slug):
        """Grant a role to a user of this tenant"""
        tenant, subject = access_tenant(slug, "roles", "manage")
        user = service.user_in(tenant, body["login_id"])
        service.grant_role(tenant, user, body["role"], body["unit_id"], actor=subject.key)
        return _role_list(tenant)

    @blp.arguments(RoleIn)
    @blp.response(204)
    def delete(self, body, slug):
        """Revoke a role; it stops working on the very next request"""
        tenant, subject = access_tenant(slug, "roles", "manage")
        user = service.user_in(tenant, body["login_id"])
        if not service.revoke_role(tenant, user, body["role"], body["unit_id"], actor=subject.key):
            raise invalid("role", f"{body['login_id']} does not hold {body['role']}")


def _role_list(tenant: Tenant) -> dict:
    items = [{"id": gr.id, "login_id": u.login_id, "display_name": u.display_name, "name_kana": u.name_kana,
              "role": gr.role, "unit_id": gr.unit_id or None, "granted_by": gr.granted_by,
              "granted_at": gr.granted_at} for gr, u in service.grants_of(tenant)]
    return {"items": items}


@blp.route("/federations/<fed>/affiliations")
class Affiliations(MethodView):
    @blp.response(200, AffiliationList)
    def get(self, fed):
        """The federation's affiliations, pending, active and ended"""
        federation, _ = access_tenant(fed, "affiliation", "read", kind="federation")
        return {"items": [service.affiliation_dict(a) for a in reads.affiliations_of(federation)]}

    @blp.arguments(InviteIn)
    @blp.response(201, AffiliationOut)
    def post(self, body, fed):
        """Invite a union to affiliate, attached to a council"""
        federation, subject = access_tenant(fed, "affiliation", "write", kind="federation")
        return service.affiliation_dict(service.invite(federation, body["union"], body["council_id"],
                                                       actor=subject.key))


@blp.route("/federations/<fed>/affiliations/<union>")
class FederationSideAffiliation(MethodView):
    @blp.response(200, AffiliationOut)
    def delete(self, fed, union):
        """End an affiliation from the federation's side"""
        federation, subject = access_tenant(fed, "affiliation", "write", kind="federation")
        aff = reads.live_affiliation_with(federation, union)
        return service.affiliation_dict(service.end_affiliation(aff, actor=subject.key, side="federation"))


@blp.route("/unions/<union>/affiliation")
class UnionAffiliation(MethodView):
    @blp.response(200, AffiliationOut)
    def get(self, union):
        """The union's current affiliation (pending or active)"""
        tenant, _ = access_tenant(union, "affiliation", "read", kind="union")
        aff = service.live_affiliation(tenant)
        if aff is None:
            raise Denied(404)
        return service.affiliation_dict(aff)

    @blp.response(200, AffiliationOut)
    def delete(self, union):
        """End the affiliation from the union's side (the union keeps all its data)"""
        tenant, subject = access_tenant(union, "affiliation", "write", kind="union")
        aff = service.live_affiliation(tenant)
        if aff is None:
            raise Denied(404)
        return service.affiliation_dict(service.end_affiliation(aff, actor=subject.key, side="union"))


@blp.route("/unions/<union>/affiliation/accept")
class AcceptAffiliation(MethodView):
    @blp.response(200, AffiliationOut)
    def post(self, union):
        """Accept the pending invitation"""
        tenant, subject = access_tenant(union, "affiliation", "write", kind="union")
        return service.affiliation_dict(service.accept(tenant, actor=subject.key))


@blp.route("/unions/<union>/affiliation/cascade")
class Cascade(MethodView):
    @blp.arguments(CascadeIn)
    @blp.response(200, AffiliationOut)
    def put(self, body, union):
        """Opt in or out of the federation's cascade (the union's own admin only, F3)"""
        tenant, subject = access_tenant(union, "cascade", "write", kind="union")
        return service.affiliation_dict(service.set_cascade(tenant, body["cascade"], actor=subject.key))

