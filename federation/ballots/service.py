"""The life of a ballot and its reads: create, trustees, open (the roll frozen), cast, close, decrypt, tally.

The caller has passed the firewall (`access_tenant`) already; what is decided here is the ballot's own rule: its
status and dates, the roll, the election officer's console versus a voter's view. Everything a voter can be linked
to is the roll's "has voted"; the ballot itself goes to the board under a slot (models.py).
"""
from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from flask import current_app
from sqlalchemy import func, select

from federation.audit.chain import record
from federation.ballots import crypto
from federation.ballots.models import Ballot, BallotTrustee, BallotVote, BallotVoter
from federation.errors import conflict, invalid
from federation.extensions import db, utcnow
from federation.firewall import Denied
from tenants.models import OrgUnit, Tenant, User

MIN_TRUSTEES = 2
UNIT_TURNOUT_MIN = 10  # per-unit turnout is shown only for units of at least this many voters
YES_NO = ({"label": "賛成"}, {"label": "反対"})


def canonical(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def options_of(ballot: Ballot) -> list[dict[str, Any]]:
    return json.loads(ballot.options)


def electorate_of(ballot: Ballot) -> dict[str, Any]:
    return json.loads(ballot.electorate)


# --- creating ------------------------------------------------------------------------------------------------------

def create(tenant: Tenant, author: User, body: dict[str, Any]) -> Ballot:
    kind = body["kind"]
    options = body.get("options") or (list(YES_NO) if kind != "election" else [])
    choose = body.get("choose") or ({"min": 1, "max": 1})
    if kind != "election":
        if len(options) != 2:
            raise invalid("options", "a referendum or strike vote has exactly two options: yes, then no")
        if choose != {"min": 1, "max": 1}:
            raise invalid("choose", "a referendum or strike vote chooses exactly one option")
    if len(options) < 2:
        raise invalid("options", "at least two options")
    labels = [o["label"] for o in options]
    if len(set(labels)) != len(labels):
        raise invalid("options", "options must differ")
    if not 0 <= choose["min"] <= choose["max"] <= len(options) or choose["max"] < 1:
        raise invalid("choose", f"0 <= min <= max <= {len(options)}, and max at least 1")
    electorate = body["electorate"]
    if "units" in electorate:
        units = {u.id for u in db.session.execute(select(OrgUnit).where(
            OrgUnit.tenant_id == tenant.id, OrgUnit.id.in_(electorate["units"]))).scalars()}
        missing = [u for u in electorate["units"] if u not in units]
        if missing:
            raise invalid("electorate.units", f"no such unit in this tenant: {missing[0]}")
    ballot = Ballot(tenant_id=tenant.id, title=body["title"], description=body.get("description", ""), kind=kind,
                    options=canonical([{"id": i, "label": label} for i, label in enumerate(labels, start=1)]),
                    choose_min=choose["min"], choose_max=choose["max"], electorate=canonical(electorate),
                    opens_at=body["opens_at"], closes_at=body["closes_at"], quorum=body.get("quorum"),
                    status="draft", created_by=author.id)
    db.session.add(ballot)
    db.session.flush()
    record("ballot.created", actor=author.subject, tenant=tenant.slug,
           data={"ballot": ballot.id, "kind": kind, "options": len(labels)})
    db.session.commit()
    return ballot


def delete_draft(ballot: Ballot, actor: User) -> None:
    if ballot.status != "draft":
        raise conflict("status", "only a draft can be deleted; an opened ballot stays on record")
    tenant = db.session.get(Tenant, ballot.tenant_id)
    record("ballot.deleted", actor=actor.subject, tenant=tenant.slug if tenant else None, data={"ballot": ballot.id})
    db.session.delete(ballot)
    db.session.commit()


def trustees(ballot: Ballot) -> list[BallotTrustee]:
    return list(db.session.execute(select(BallotTrustee).where(BallotTrustee.ballot_id == ballot.id)
                                   .order_by(BallotTrustee.id)).scalars())


def key_context(ballot: Ballot, tenant: Tenant) -> str:
    """What a trustee's proof of key is bound to: this ballot of this tenant (its keys come before its fingerprint)."""
    return f"{tenant.slug}/{ballot.id}/trustee"


def add_trustee(ballot: Ballot, tenant: Tenant, actor: str, name: str, public_key: str,
                key_proof: Any) -> BallotTrustee:
    if ballot.status != "draft":
        raise conflict("status", "trustees are added while the ballot is a draft")
    try:
        public = crypto.point(public_key, "public_key")
        crypto.check_key(public, key_proof, key_context(ballot, tenant))
    except crypto.ProofError as err:
        raise invalid("key_proof" if "proof" in str(err) else "public_key", str(err)) from None
    existing = trustees(ballot)
    if any(t.name == name for t in existing):
        raise conflict("name", "a trustee of that name is already registered")
    if any(t.public_key == public_key for t in existing):
        raise conflict("public_key", "that key is already registered")
    trustee = BallotTrustee(ballot_id=ballot.id, tenant_id=ballot.tenant_id, name=name, public_key=public_key,
                            key_proof=canonical(key_proof))
    db.session.add(trustee)
    db.session.flush()
    record("ballot.trustee_added", actor=actor, tenant=tenant.slug,
           data={"ballot": ballot.id, "trustee": name, "public_key": public_key})
    db.session.commit()
    return trustee


# --- opening: the roll is frozen, the key fixed ------------------------------------------------------------------

def definition(ballot: Ballot, tenant: Tenant, keys: list[BallotTrustee]) -> dict[str, Any]:
    """Everything a proof is bound to. Its hash is the ballot's fingerprint, printed on the board and the notice."""
    return {"tenant": tenant.slug, "ballot": ballot.id, "title": ballot.title, "kind": ballot.kind,
            "options": options_of(ballot), "choose": {"min": ballot.choose_min, "max": ballot.choose_max},
            "trustees": [{"name": t.name, "public_key": t.public_key} for t in keys],
            "public_key": crypto.hx(crypto.joint_key(bytes.fromhex(t.public_key) for t in keys))}


def _electorate_users(ballot: Ballot) -> list[User]:
    q = select(User).where(User.tenant_id == ballot.tenant_id, User.status == "active")
    electorate = electorate_of(ballot)
    if "units" in electorate:
        paths = list(db.session.execute(select(OrgUnit.path).where(
            OrgUnit.tenant_id == ballot.tenant_id, OrgUnit.id.in_(electorate["units"]))).scalars())
        under = select(OrgUnit.id).where(OrgUnit.tenant_id == ballot.tenant_id,
                                         db.or_(*[OrgUnit.path.startswith(p) for p in paths]))
        q = q.where(User.unit_id.in_(under))
    return list(db.session.execute(q.order_by(User.id)).scalars())


def open_ballot(ballot: Ballot, tenant: Tenant, actor: User) -> Ballot:
    if ballot.status != "draft":
        raise conflict("status", f"the ballot is {ballot.status}, not a draft")
    keys = trustees(ballot)
    if len(keys) < MIN_TRUSTEES:
        raise conflict("trustees", f"at least {MIN_TRUSTEES} trustees must hold a key share before opening")
    now = utcnow()
    if ballot.closes_at <= now:
        raise conflict("closes_at", "the closing time has passed")
    voters = _electorate_users(ballot)
    if not voters:
        raise conflict("electorate", "nobody is eligible")
    d = definition(ballot, tenant, keys)
    ballot.public_key = d["public_key"]
    ballot.fingerprint = sha256(canonical(d))
    ballot.status = "open"
    ballot.opened_at = now
    if ballot.opens_at > now:
        ballot.opens_at = now
    db.session.execute(BallotVoter.__table__.insert(), [
        {"ballot_id": ballot.id, "user_id": u.id, "tenant_id": ballot.tenant_id, "unit_id": u.unit_id,
         "voted": False} for u in voters])
    record("ballot.opened", actor=actor.subject, tenant=tenant.slug,
           data={"ballot": ballot.id, "eligible": len(voters), "fingerprint": ballot.fingerprint})
    from federation.ballots.notify import announce

    announce(ballot)
    db.session.commit()
    return ballot


# --- casting --------------------------------------------------------------------------------------------------------

def _slot(ballot: Ballot, user: User) -> str:
    secret = current_app.config["SECRET_KEY"]
    key = hmac.new(secret.encode() if isinstance(secret, str) else secret, b"musubi ballot slots",
                   hashlib.sha256).digest()
    return hmac.new(key, f"{ballot.id}:{user.id}".encode(), hashlib.sha256).hexdigest()


def is_open(ballot: Ballot) -> bool:
    return ballot.status == "open" and ballot.opens_at <= utcnow() < ballot.closes_at


def roll_entry(ballot: Ballot, user: User) -> BallotVoter | None:
    return db.session.get(BallotVoter, (ballot.id, user.id))


def marks_from_choices(ballot: Ballot, choices: list[int]) -> list[int]:
    ids = [o["id"] for o in options_of(ballot)]
    if len(set(choices)) != len(choices):
        raise invalid("choices", "each option at most once")
    unknown = [c for c in choices if c not in ids]
    if unknown:
        raise invalid("choices", f"no such option: {unknown[0]}")
    if not ballot.choose_min <= len(choices) <= ballot.choose_max:
        raise invalid("choices", f"choose from {ballot.choose_min} to {ballot.choose_max} options")
    return [1 if i in choices else 0 for i in ids]


def cast(ballot: Ballot, user: User, *, choices: list[int] | None = None,
         encrypted: dict[str, Any] | None = None) -> dict[str, str]:
    """Store the voter's encrypted ballot (replacing their earlier one) and mark them as having voted."""
    if not is_open(ballot):
        raise conflict("status", "the ballot is not open for voting")
    entry = roll_entry(ballot, user)
    if entry is None or user.status != "active":
        raise Denied(403)
    pk = bytes.fromhex(ballot.public_key or "")
    n = len(options_of(ballot))
    if encrypted is not None:
        try:
            crypto.check_ballot(pk, ballot.fingerprint or "", encrypted, n, ballot.choose_min, ballot.choose_max)
        except crypto.ProofError as err:
            raise invalid("ballot", str(err)) from None
        content = encrypted
    else:
        marks = marks_from_choices(ballot, choices or [])
        # Encrypted here, in this request; the choice lives only in this function's locals (docs/ballots.md).
        content = crypto.encrypt_ballot(pk, ballot.fingerprint or "", marks, ballot.choose_min, ballot.choose_max)
        del marks
    text = canonical(content)
    receipt = sha256(text)
    slot = _slot(ballot, user)
    row = db.session.get(BallotVote, slot)
    if row is None and entry.voted:
        # The slot key changed since this member voted: adding a row would count them twice.
        raise conflict("ballot", "your earlier ballot cannot be replaced; ask the election committee")
    if db.session.execute(select(BallotVote.slot).where(BallotVote.ballot_id == ballot.id,
                                                        BallotVote.receipt == receipt)).first():
        raise conflict("ballot", "this exact encrypted ballot is already on the board")
    if row is None:
        db.session.add(BallotVote(slot=slot, ballot_id=ballot.id, tenant_id=ballot.tenant_id, receipt=receipt,
                                  content=text))
    else:
        row.receipt, row.content = receipt, text
    entry.voted = True
    db.session.commit()
    return {"receipt": receipt, "fingerprint": ballot.fingerprint or ""}


# --- closing, decrypting, the tally -----------------------------------------------------------------------------

def board_rows(ballot: Ballot) -> list[BallotVote]:
    """The counted ballots, in the order of their receipts (never of casting)."""
    return list(db.session.execute(select(BallotVote).where(BallotVote.ballot_id == ballot.id)
                                   .order_by(BallotVote.receipt)).scalars())


def turnout(ballot: Ballot) -> tuple[int, int]:
    eligible, voted = db.session.execute(select(func.count(), func.coalesce(func.sum(
        db.case((BallotVoter.voted.is_(True), 1), else_=0)), 0)).where(BallotVoter.ballot_id == ballot.id)).one()
    return int(eligible), int(voted)


def close(ballot: Ballot, tenant: Tenant, actor: str) -> Ballot:
    if ballot.status != "open":
        raise conflict("status", f"the ballot is {ballot.status}, not open")
    rows = board_rows(ballot)
    eligible, voted = turnout(ballot)
    if len(rows) != voted:
        raise conflict("board", f"{len(rows)} ballots on the board but {voted} voters marked: refusing to close")
    n = len(options_of(ballot))
    sums = crypto.add_ciphertexts(([(bytes.fromhex(c["a"]), bytes.fromhex(c["b"])) for c in
                                    json.loads(r.content)["ciphertexts"]] for r in rows), n)
    now = utcnow()
    ballot.encrypted_tally = canonical([{"a": crypto.hx(a), "b": crypto.hx(b)} for a, b in sums])
    ballot.status = "closed"
    ballot.closed_at = now
    if ballot.closes_at > now:
        ballot.closes_at = now
    record("ballot.closed", actor=actor, tenant=tenant.slug,
           data={"ballot": ballot.id, "eligible": eligible, "voted": voted,
                 "tally": sha256(ballot.encrypted_tally)})
    db.session.commit()
    return ballot


def close_due() -> list[int]:
    """The scheduler's part: close every open ballot whose closing time has passed."""
    from tenants.models import Tenant as T

    done = []
    for ballot in db.session.execute(select(Ballot).where(Ballot.status == "open",
                                                          Ballot.closes_at <= utcnow())).scalars().all():
        close(ballot, db.session.get(T, ballot.tenant_id), "system:scheduler")
        done.append(ballot.id)
    return done


def sums_of(ballot: Ballot) -> list[tuple[bytes, bytes]]:
    return [(bytes.fromhex(c["a"]), bytes.fromhex(c["b"])) for c in json.loads(ballot.encrypted_tally or "[]")]


def add_decryption(ballot: Ballot, tenant: Tenant, actor: str, trustee_name: str, factors: Any) -> BallotTrustee:
    if ballot.status != "closed":
        raise conflict("status", "trustees decrypt after the close and before the tally")
    trustee = next((t for t in trustees(ballot) if t.name == trustee_name), None)
    if trustee is None:
        raise invalid("trustee", "no trustee of that name on this ballot")
    try:
        crypto.check_partial(bytes.fromhex(trustee.public_key), sums_of(ballot), factors, ballot.fingerprint or "",
                             "factors")
    except crypto.ProofError as err:
        raise invalid("factors", str(err)) from None
    trustee.decryption = canonical(factors)
    record("ballot.decryption_added", actor=actor, tenant=tenant.slug,
           data={"ballot": ballot.id, "trustee": trustee_name})
    db.session.commit()
    return trustee


def tally(ballot: Ballot, tenant: Tenant, actor: str) -> Ballot:
    if ballot.status != "closed":
        raise conflict("status", f"the ballot is {ballot.status}; it is tallied once, after the close")
    keys = trustees(ballot)
    waiting = [t.name for t in keys if t.decryption is None]
    if waiting:
        raise conflict("trustees", "waiting for the decryption share of: " + ", ".join(waiting))
    sums = sums_of(ballot)
    factor_sets = [crypto.check_partial(bytes.fromhex(t.public_key), sums, json.loads(t.decryption or "[]"),
                                        ballot.fingerprint or "", t.name) for t in keys]
    _, voted = turnout(ballot)
    counts = crypto.decrypt_counts(sums, factor_sets, voted)
    ballot.result = canonical({"counts": counts})
    ballot.status = "tallied"
    ballot.tallied_at = utcnow()
    record("ballot.tallied", actor=actor, tenant=tenant.slug,
           data={"ballot": ballot.id, "voted": voted, "result": sha256(ballot.result)})
    db.session.commit()
    return ballot


# --- reads --------------------------------------------------------------------------------------------------------

def is_officer(tenant: Tenant, user: User) -> bool:
    from federation.auth.service import subject_of
    from federation.firewall import firewall

    return firewall.allowed(subject_of(user), tenant.slug, "ballots", "manage")


def visible(tenant: Tenant, user: User, officer: bool) -> list[Ballot]:
    """The election officers' every ballot; a member's ballots they are on the roll of."""
    q = select(Ballot).where(Ballot.tenant_id == tenant.id)
    if not officer:
        q = q.where(Ballot.id.in_(select(BallotVoter.ballot_id).where(BallotVoter.user_id == user.id)))
    return list(db.session.execute(q.order_by(Ballot.created_at.desc(), Ballot.id.desc())).scalars())


def one(tenant: Tenant, user: User, ballot_id: int, officer: bool) -> Ballot:
    """A ballot the caller may see: 404 for missing, another tenant's, a draft or one whose roll they are not on."""
    ballot = db.session.get(Ballot, ballot_id)
    if ballot is None or ballot.tenant_id != tenant.id:
        raise Denied(404)
    if not officer and roll_entry(ballot, user) is None:
        raise Denied(404)
    return ballot


def by_slug(tenant_slug: str, ballot_id: int) -> tuple[Tenant, Ballot] | None:
    """The operator's CLI: a ballot by its tenant's slug and id (the trustees and `ballot verify` run there)."""
    tenant = db.session.execute(select(Tenant).where(Tenant.slug == tenant_slug)).scalar_one_or_none()
    ballot = db.session.get(Ballot, ballot_id) if tenant else None
    if tenant is None or ballot is None or ballot.tenant_id != tenant.id:
        return None
    return tenant, ballot


def for_audit(tenant: Tenant, ballot_id: int) -> Ballot:
    ballot = db.session.get(Ballot, ballot_id)
    if ballot is None or ballot.tenant_id != tenant.id or ballot.status == "draft":
        raise Denied(404)
    return ballot


def roll(ballot: Ballot) -> list[dict[str, Any]]:
    """The committee's roll: who is eligible and who has voted (never how), in kana order."""
    rows = db.session.execute(select(User.login_id, User.display_name, User.name_kana, BallotVoter.voted)
                              .join(User, User.id == BallotVoter.user_id)
                              .where(BallotVoter.ballot_id == ballot.id).order_by(User.kana_key, User.id)).all()
    return [{"login_id": r[0], "display_name": r[1], "name_kana": r[2], "voted": bool(r[3])} for r in rows]


def unit_turnout(ballot: Ballot) -> list[dict[str, Any]]:
    rows = db.session.execute(select(BallotVoter.unit_id, func.count(), func.sum(
        db.case((BallotVoter.voted.is_(True), 1), else_=0))).where(BallotVoter.ballot_id == ballot.id)
        .group_by(BallotVoter.unit_id)).all()
    names = {u.id: u.name for u in db.session.execute(select(OrgUnit).where(
        OrgUnit.tenant_id == ballot.tenant_id)).scalars()}
    return [{"unit_id": uid, "unit": names.get(uid, ""), "eligible": int(e), "voted": int(v or 0)}
            for uid, e, v in rows if uid is not None and int(e) >= UNIT_TURNOUT_MIN]


def result(ballot: Ballot) -> dict[str, Any]:
    if ballot.status != "tallied":
        raise conflict("status", "no result before the tally")
    eligible, voted = turnout(ballot)
    counts = json.loads(ballot.result or "{}")["counts"]
    quorum_met = ballot.quorum is None or voted * 100 >= ballot.quorum * eligible
    out: dict[str, Any] = {"eligible": eligible, "voted": voted, "quorum": ballot.quorum, "quorum_met": quorum_met,
                           "options": [{"id": o["id"], "label": o["label"], "votes": c}
                                       for o, c in zip(options_of(ballot), counts, strict=True)],
                           "units": unit_turnout(ballot), "fingerprint": ballot.fingerprint}
    if ballot.kind in ("referendum", "strike"):
        # 労組法5条2項8号・9号: the members' direct secret ballot, decided by a majority of the members (the roll).
        yes = counts[0]
        out["rule"] = "majority_of_eligible"
        out["passed"] = quorum_met and yes * 2 > eligible
    return out


def board(ballot: Ballot, tenant: Tenant, *, with_labels: bool = True) -> dict[str, Any]:
    keys = trustees(ballot)
    d = definition(ballot, tenant, keys)
    if not with_labels:
        d = {**d, "title": None, "options": [{"id": o["id"], "label": None} for o in d["options"]]}
    out: dict[str, Any] = {"status": ballot.status, "fingerprint": ballot.fingerprint, "definition": d,
                           "trustee_proofs": [{"name": t.name, "key_proof": json.loads(t.key_proof),
                                               "decryption": json.loads(t.decryption) if t.decryption else None}
                                              for t in keys],
                           "items": [{"receipt": r.receipt, "ballot": json.loads(r.content)}
                                     for r in board_rows(ballot)],
                           "encrypted_tally": json.loads(ballot.encrypted_tally) if ballot.encrypted_tally else None,
                           "counts": json.loads(ballot.result)["counts"] if ballot.result else None}
    if ballot.status in ("open", "closed", "tallied"):
        out["eligible"], out["voted"] = turnout(ballot)
    return out

