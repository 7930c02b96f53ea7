"""The KPI board (docs/kpi.md): a union's own figures for its officers, and each affiliated union's counts for its
federation, with the small-group rule."""
from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant
from federation.firewall import Subject, firewall
from federation.kpi import service
from federation.kpi.schemas import KpiFederationOut, KpiRosterIn, KpiRosterOut, KpiUnionOut
from tenants.models import Tenant

blp = Blueprint("kpi", __name__, url_prefix="/api/v1", description="KPI board (組織状況)")


def union_officer(slug: str, act: str = "read") -> tuple[Tenant, Subject]:
    """The union in the path, for its own officers. `kpi read` alone would also let its federation in (through the
    affiliation, for the counts of its own board): the union's board carries per-unit figures, which are the
    union's stats and need `stats read` there, a right only the union's own roles hold (F1)."""
    tenant, subject = access_tenant(slug, "kpi", act, kind="union")
    firewall.require(subject, tenant.slug, "stats", "read")
    return tenant, subject


@blp.route("/tenants/<slug>/kpi")
class UnionKpi(MethodView):
    @blp.response(200, KpiUnionOut)
    def get(self, slug):
        """The union's board: registered vs roster, new this month, active readers, read rate per unit, turnaround"""
        tenant, _ = union_officer(slug)
        return service.union_board(tenant)


@blp.route("/tenants/<slug>/kpi/roster")
class UnionRoster(MethodView):
    @blp.response(200, KpiRosterOut)
    def get(self, slug):
        """The roster size the union's admin set (null until set)"""
        tenant, _ = union_officer(slug)
        return {"union": tenant.slug, "roster_size": tenant.roster_size}

    @blp.arguments(KpiRosterIn)
    @blp.response(200, KpiRosterOut)
    def put(self, body, slug):
        """Set the roster size (組合員名簿の人数) registrations are measured against; null clears it"""
        tenant, subject = union_officer(slug, "write")
        service.set_roster(tenant, subject, body["roster_size"])
        return {"union": tenant.slug, "roster_size": tenant.roster_size}


@blp.route("/federations/<fed>/kpi")
class FederationKpi(MethodView):
    @blp.response(200, KpiFederationOut)
    def get(self, fed):
        """Each affiliated union's figures as counts (a council officer: their council's unions); figures about fewer
        than five people are withheld"""
        tenant, subject = access_tenant(fed, "kpi", "read", kind="federation")
        return service.federation_board(tenant, subject)
