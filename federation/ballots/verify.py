"""Recompute a ballot's result from its public board and check every proof.

Works on the board's JSON alone (what GET .../board returns), so anyone with the board can run it; the CLI's
`ballot verify` feeds it the board read from the database. It never needs a key share or the database's roll.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from federation.ballots import crypto
from federation.ballots.service import canonical, sha256


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    ballots: int = 0
    counts: list[int] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_board(board: dict[str, Any]) -> Report:
    report = Report()
    problems = report.problems
    d = board.get("definition") or {}
    if d.get("title") is not None and sha256(canonical(d)) != board.get("fingerprint"):
        problems.append("the fingerprint does not match the ballot's definition")
    context = board.get("fingerprint") or ""
    try:
        publics = [crypto.point(t["public_key"], f"trustee {t['name']}") for t in d["trustees"]]
        if len(publics) < 2:
            problems.append("fewer than two trustees")
        for t, pub, proofs in zip(d["trustees"], publics, board["trustee_proofs"], strict=True):
            try:
                crypto.check_key(pub, proofs["key_proof"], f"{d['tenant']}/{d['ballot']}/trustee")
            except crypto.ProofError as err:
                problems.append(f"trustee {t['name']}: {err}")
        pk = crypto.joint_key(publics)
        if crypto.hx(pk) != d["public_key"]:
            problems.append("the election key is not the sum of the trustees' keys")
        n = len(d["options"])
        lo, hi = d["choose"]["min"], d["choose"]["max"]
    except (KeyError, TypeError, ValueError, crypto.ProofError) as err:
        problems.append(f"the board's definition is unreadable: {err}")
        return report

    counted: list[list[tuple[bytes, bytes]]] = []
    seen: set[str] = set()
    for i, item in enumerate(board.get("items") or []):
        receipt = item.get("receipt")
        if receipt in seen:
            problems.append(f"ballot {receipt}: on the board twice")
        seen.add(receipt)
        if sha256(canonical(item.get("ballot"))) != receipt:
            problems.append(f"ballot #{i} ({receipt}): its receipt is not the hash of its content")
        try:
            counted.append(crypto.check_ballot(pk, context, item.get("ballot"), n, lo, hi))
        except crypto.ProofError as err:
            problems.append(f"ballot #{i} ({receipt}): {err}")
    report.ballots = len(counted)
    if board.get("voted") is not None and len(board.get("items") or []) != board["voted"]:
        problems.append(f"{len(board.get('items') or [])} ballots on the board but {board['voted']} voters voted")

    if board.get("encrypted_tally") is None:
        return report
    sums = crypto.add_ciphertexts(counted, n)
    if [{"a": crypto.hx(a), "b": crypto.hx(b)} for a, b in sums] != board["encrypted_tally"]:
        problems.append("the encrypted tally is not the sum of the ballots on the board")
    if board.get("counts") is None:
        return report
    factor_sets = []
    for t, pub, proofs in zip(d["trustees"], publics, board["trustee_proofs"], strict=True):
        try:
            factor_sets.append(crypto.check_partial(pub, sums, proofs.get("decryption"), context, t["name"]))
        except crypto.ProofError as err:
            problems.append(f"decryption by {t['name']}: {err}")
    if len(factor_sets) != len(publics):
        return report
    try:
        counts = crypto.decrypt_counts(sums, factor_sets, len(counted))
    except crypto.ProofError as err:
        problems.append(str(err))
        return report
    report.counts = counts
    if counts != board["counts"]:
        problems.append(f"the published counts {board['counts']} are not the decrypted tally {counts}")
    return report
