"""Secret ballots (SPEC "Secret ballots"): run by the tenant's election officers, cast by the members on the roll."""
from __future__ import annotations

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from federation.access import access_tenant, tenant_by_slug
from federation.auth.service import require_caller
from federation.ballots import service
from federation.ballots.models import Ballot
from federation.ballots.schemas import (
    BallotIn,
    BallotList,
    BallotOut,
    BoardOut,
    DecryptionIn,
    Receipt,
    ResultOut,
    RollOut,
    TrusteeIn,
    TrusteeOut,
    VoteIn,
)
from federation.firewall import Denied, firewall

blp = Blueprint("ballots", __name__, url_prefix="/api/v1", description="Secret ballots (直接無記名投票)")
ONE = "/tenants/<slug>/ballots/<int(max=2147483647):ballot_id>"


def out(ballot: Ballot, officer: bool) -> dict:
    entry = service.roll_entry(ballot, g.user)
    return {"id": ballot.id, "title": ballot.title, "description": ballot.description, "kind": ballot.kind,
            "options": service.options_of(ballot), "choose": {"min": ballot.choose_min, "max": ballot.choose_max},
            "electorate": service.electorate_of(ballot) if officer else {}, "opens_at": ballot.opens_at,
            "closes_at": ballot.closes_at, "quorum": ballot.quorum, "status": ballot.status,
            "fingerprint": ballot.fingerprint, "public_key": ballot.public_key,
            "trustees": [t.name for t in service.trustees(ballot)], "eligible": entry is not None,
            "voted": bool(entry and entry.voted), "is_open": service.is_open(ballot)}


def reach(slug: str, ballot_id: int | None = None, act: str = "read"):  # type: ignore[no-untyped-def]
    """The tenant, the ballot (when an id is given) as the caller may see it, and whether they run ballots there."""
    tenant, subject = access_tenant(slug, "ballots", act)
    officer = act == "manage" or firewall.allowed(subject, tenant.slug, "ballots", "manage")
    ballot = service.one(tenant, g.user, ballot_id, officer) if ballot_id is not None else None
    return tenant, ballot, officer


@blp.route("/tenants/<slug>/ballots")
class Ballots(MethodView):
    @blp.response(200, BallotList)
    def get(self, slug):
        """Election officers: every ballot; members: the ballots they are on the roll of"""
        tenant, _, officer = reach(slug)
        return {"items": [out(b, officer) for b in service.visible(tenant, g.user, officer)]}

    @blp.arguments(BallotIn)
    @blp.response(201, BallotOut)
    def post(self, body, slug):
        """Create a ballot (a draft): election, referendum or strike vote"""
        tenant, _, _ = reach(slug, act="manage")
        return out(service.create(tenant, g.user, body), True)


@blp.route(ONE)
class OneBallot(MethodView):
    @blp.response(200, BallotOut)
    def get(self, slug, ballot_id):
        """One ballot, with its status (draft, open, closed, tallied) and whether you have voted"""
        _, ballot, officer = reach(slug, ballot_id)
        return out(ballot, officer)

    @blp.response(204)
    def delete(self, slug, ballot_id):
        """Delete a draft (an opened ballot stays on record)"""
        _, ballot, _ = reach(slug, ballot_id, "manage")
        service.delete_draft(ballot, g.user)


@blp.route(ONE + "/trustees")
class Trustees(MethodView):
    @blp.arguments(TrusteeIn)
    @blp.response(201, TrusteeOut)
    def post(self, body, slug, ballot_id):
        """Register a trustee's public key with its proof (`python cli.py ballot trustee` makes both)"""
        tenant, ballot, _ = reach(slug, ballot_id, "manage")
        t = service.add_trustee(ballot, tenant, g.user.subject, body["name"], body["public_key"], body["key_proof"])
        return {"name": t.name, "public_key": t.public_key}


@blp.route(ONE + "/open")
class OpenBallot(MethodView):
    @blp.response(200, BallotOut)
    def post(self, slug, ballot_id):
        """Open: freeze the roll of eligible voters and fix the election key (needs two trustees)"""
        tenant, ballot, _ = reach(slug, ballot_id, "manage")
        return out(service.open_ballot(ballot, tenant, g.user), True)


@blp.route(ONE + "/close")
class CloseBallot(MethodView):
    @blp.response(200, BallotOut)
    def post(self, slug, ballot_id):
        """Close: no more votes; the encrypted tally is computed and published on the board"""
        tenant, ballot, _ = reach(slug, ballot_id, "manage")
        return out(service.close(ballot, tenant, g.user.subject), True)


@blp.route(ONE + "/decryptions")
class Decryptions(MethodView):
    @blp.arguments(DecryptionIn)
    @blp.response(201, TrusteeOut)
    def post(self, body, slug, ballot_id):
        """A trustee's share of the decryption with its proof (`python cli.py ballot decrypt` makes it)"""
        tenant, ballot, _ = reach(slug, ballot_id, "manage")
        t = service.add_decryption(ballot, tenant, g.user.subject, body["trustee"], body["factors"])
        return {"name": t.name, "public_key": t.public_key}


@blp.route(ONE + "/tally")
class Tally(MethodView):
    @blp.response(200, ResultOut)
    def post(self, slug, ballot_id):
        """Tally: combine every trustee's decryption share, check each proof, publish the result"""
        tenant, ballot, _ = reach(slug, ballot_id, "manage")
        return service.result(service.tally(ballot, tenant, g.user.subject))


@blp.route(ONE + "/votes")
class Votes(MethodView):
    @blp.arguments(VoteIn)
    @blp.response(201, Receipt)
    def post(self, body, slug, ballot_id):
        """Cast (or re-cast, replacing the earlier ballot) while open; the receipt is on the board"""
        tenant, _ = access_tenant(slug, "ballots", "vote")
        ballot = service.one(tenant, g.user, ballot_id, officer=False)
        if "ballot" in body:
            return service.cast(ballot, g.user, encrypted=body["ballot"])
        return service.cast(ballot, g.user, choices=body["choices"])


@blp.route(ONE + "/board")
class Board(MethodView):
    @blp.response(200, BoardOut)
    def get(self, slug, ballot_id):
        """The public board: every counted encrypted ballot by receipt, the keys, the tally and its proofs.

        Auditors see it too, without the title and the option labels (content stays with the tenant, F1)."""
        subject = require_caller()
        tenant = tenant_by_slug(slug)
        if tenant is not None and firewall.allowed(subject, tenant.slug, "ballots", "read"):
            _, ballot, officer = reach(slug, ballot_id)
            if ballot.status == "draft":
                raise Denied(404)
            return service.board(ballot, tenant)
        if tenant is None or not firewall.allowed(subject, tenant.slug, "audit", "read"):
            raise Denied(404)
        return service.board(service.for_audit(tenant, ballot_id), tenant, with_labels=False)


@blp.route(ONE + "/result")
class Result(MethodView):
    @blp.response(200, ResultOut)
    def get(self, slug, ballot_id):
        """The result, after the tally: eligible, voted, votes per option, quorum, per-unit turnout (10+ voters)"""
        _, ballot, _ = reach(slug, ballot_id)
        return service.result(ballot)


@blp.route(ONE + "/roll")
class Roll(MethodView):
    @blp.response(200, RollOut)
    def get(self, slug, ballot_id):
        """Election officers: who is eligible and who has voted (never how), in kana order"""
        _, ballot, _ = reach(slug, ballot_id, "manage")
        eligible, voted = service.turnout(ballot)
        return {"eligible": eligible, "voted": voted, "items": service.roll(ballot)}
