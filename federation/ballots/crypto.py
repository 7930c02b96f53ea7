"""The cryptography of secret ballots: exponential ElGamal on the prime-order group of Ed25519, with
non-interactive zero-knowledge proofs (Fiat-Shamir over SHA-512).

Group arithmetic is libsodium's (through PyNaCl): `crypto_scalarmult_ed25519_*` and `crypto_core_ed25519_*`
work in the subgroup of prime order L and refuse points outside it, so every point read from outside is checked
by `point()` before it is used. Nothing here invents a primitive; it composes the standard ones:

- a trustee's key: x, Y = x·G, with a Schnorr proof of knowledge of x;
- the election key: PK = Y_1 + ... + Y_n (every trustee is needed to decrypt: n of n);
- a vote for option j: (A, B) = (r·G, r·PK + v·G), v in {0, 1}, with a disjunctive Chaum-Pedersen proof that v
  is 0 or 1, and one more that the sum of the v's is between the ballot's min and max;
- the tally: the sum of the counted ciphertexts per option; each trustee publishes D_i = x_i·A with a
  Chaum-Pedersen proof that log_G(Y_i) = log_A(D_i); then m·G = B - sum(D_i), and m is found by counting up.

Every challenge hashes the ballot's fingerprint (its definition and key) and the whole statement, so a proof made
for one ballot, option or ciphertext does not verify for another. docs/ballots.md states the assumptions.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nacl import bindings as na

L = 2**252 + 27742317777372353535851937790883648493  # the order of the group
IDENTITY = bytes([1]) + bytes(31)
DOMAIN = b"musubi-ballot-v1"


class ProofError(ValueError):
    """A point, a scalar or a proof that does not check. The message says which part."""


# --- the group -----------------------------------------------------------------------------------------------------

def _scalar_bytes(n: int) -> bytes:
    return (n % L).to_bytes(32, "little")


def base(n: int) -> bytes:
    """n·G."""
    n %= L
    return IDENTITY if n == 0 else na.crypto_scalarmult_ed25519_base_noclamp(_scalar_bytes(n))


def mul(n: int, p: bytes) -> bytes:
    """n·P for a point of the group (or the identity)."""
    n %= L
    if n == 0 or p == IDENTITY:
        return IDENTITY
    return na.crypto_scalarmult_ed25519_noclamp(_scalar_bytes(n), p)


def add(p: bytes, q: bytes) -> bytes:
    if p == IDENTITY:
        return q
    if q == IDENTITY:
        return p
    return na.crypto_core_ed25519_add(p, q)


def sub(p: bytes, q: bytes) -> bytes:
    if q == IDENTITY:
        return p
    if p == IDENTITY:
        return mul(L - 1, q)
    return na.crypto_core_ed25519_sub(p, q)


def random_scalar() -> int:
    while True:
        n = int.from_bytes(secrets.token_bytes(64), "little") % L
        if n:
            return n


def point(text: object, what: str) -> bytes:
    """A point from its hex form, refused unless it is a point of the prime-order group other than the identity."""
    if not isinstance(text, str) or len(text) != 64:
        raise ProofError(f"{what}: a point is 64 hex digits")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ProofError(f"{what}: a point is 64 hex digits") from None
    if not na.crypto_core_ed25519_is_valid_point(raw):
        raise ProofError(f"{what}: not a point of the group")
    return raw


def scalar(text: object, what: str) -> int:
    if not isinstance(text, str) or len(text) != 64:
        raise ProofError(f"{what}: a scalar is 64 hex digits")
    try:
        n = int.from_bytes(bytes.fromhex(text), "little")
    except ValueError:
        raise ProofError(f"{what}: a scalar is 64 hex digits") from None
    if n >= L:
        raise ProofError(f"{what}: a scalar is below the group order")
    return n


def hx(p: bytes) -> str:
    return p.hex()


def sx(n: int) -> str:
    return _scalar_bytes(n).hex()


def challenge(label: str, context: str, *parts: bytes | str | int) -> int:
    h = hashlib.sha512()
    h.update(DOMAIN)
    for part in (label, context, *parts):
        raw = part if isinstance(part, bytes) else str(part).encode()
        h.update(len(raw).to_bytes(4, "big"))
        h.update(raw)
    return int.from_bytes(h.digest(), "little") % L


# --- trustees' keys ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrusteeKey:
    secret: int
    public: bytes


def new_trustee_key() -> TrusteeKey:
    x = random_scalar()
    return TrusteeKey(x, base(x))


def prove_key(key: TrusteeKey, context: str) -> dict[str, str]:
    w = random_scalar()
    a = base(w)
    c = challenge("key", context, key.public, a)
    return {"c": sx(c), "s": sx(w + c * key.secret)}


def check_key(public: bytes, proof: object, context: str) -> None:
    if not isinstance(proof, dict) or set(proof) != {"c", "s"}:
        raise ProofError("key proof: {c, s}")
    c, s = scalar(proof["c"], "key proof c"), scalar(proof["s"], "key proof s")
    a = sub(base(s), mul(c, public))
    if challenge("key", context, public, a) != c:
        raise ProofError("key proof does not check")


def joint_key(publics: Iterable[bytes]) -> bytes:
    pk = IDENTITY
    for y in publics:
        pk = add(pk, y)
    return pk


# --- encryption and the proofs of a valid ballot ---------------------------------------------------------------

def _encrypt(pk: bytes, m: int, r: int) -> tuple[bytes, bytes]:
    return base(r), add(mul(r, pk), base(m))


def _prove_one_of(pk: bytes, a: bytes, b: bytes, r: int, values: Sequence[int], true_index: int,
                  label: str, context: str) -> list[dict[str, str]]:
    """Disjunctive Chaum-Pedersen: (a, b) encrypts one of `values` (the one at true_index, with randomness r)."""
    cs: list[int] = [0] * len(values)
    ss: list[int] = [0] * len(values)
    commitments: list[bytes] = []
    w = random_scalar()
    for i, m in enumerate(values):
        if i == true_index:
            commitments += [base(w), mul(w, pk)]
        else:
            cs[i], ss[i] = random_scalar(), random_scalar()
            commitments += [sub(base(ss[i]), mul(cs[i], a)),
                            sub(mul(ss[i], pk), mul(cs[i], sub(b, base(m))))]
    c = challenge(label, context, pk, a, b, ",".join(map(str, values)), *commitments)
    cs[true_index] = (c - sum(cs[i] for i in range(len(values)) if i != true_index)) % L
    ss[true_index] = (w + cs[true_index] * r) % L
    return [{"c": sx(ci), "s": sx(si)} for ci, si in zip(cs, ss, strict=True)]


def _check_one_of(pk: bytes, a: bytes, b: bytes, values: Sequence[int], proof: object, label: str,
                  context: str, what: str) -> None:
    if not isinstance(proof, list) or len(proof) != len(values):
        raise ProofError(f"{what}: one (c, s) per possible value")
    commitments: list[bytes] = []
    total = 0
    for i, (m, part) in enumerate(zip(values, proof, strict=True)):
        if not isinstance(part, dict) or set(part) != {"c", "s"}:
            raise ProofError(f"{what}[{i}]: {{c, s}}")
        c, s = scalar(part["c"], f"{what}[{i}].c"), scalar(part["s"], f"{what}[{i}].s")
        total += c
        commitments += [sub(base(s), mul(c, a)), sub(mul(s, pk), mul(c, sub(b, base(m))))]
    if challenge(label, context, pk, a, b, ",".join(map(str, values)), *commitments) != total % L:
        raise ProofError(f"{what} does not check")


def encrypt_ballot(pk: bytes, context: str, marks: Sequence[int], choose_min: int, choose_max: int) -> dict:
    """The encrypted ballot for a vector of 0/1 marks (one per option), with its proofs."""
    if any(v not in (0, 1) for v in marks) or not choose_min <= sum(marks) <= choose_max:
        raise ValueError("marks are 0 or 1 and their sum is between min and max")
    rs = [random_scalar() for _ in marks]
    cts = [_encrypt(pk, v, r) for v, r in zip(marks, rs, strict=True)]
    proofs = [_prove_one_of(pk, a, b, r, (0, 1), v, f"option:{j}", context)
              for j, ((a, b), r, v) in enumerate(zip(cts, rs, marks, strict=True))]
    sum_a, sum_b = joint_key(a for a, _ in cts), joint_key(b for _, b in cts)
    allowed = list(range(choose_min, choose_max + 1))
    overall = _prove_one_of(pk, sum_a, sum_b, sum(rs) % L, allowed, allowed.index(sum(marks)), "overall", context)
    return {"ciphertexts": [{"a": hx(a), "b": hx(b)} for a, b in cts], "proofs": proofs, "overall": overall}


def check_ballot(pk: bytes, context: str, ballot: object, options: int, choose_min: int,
                 choose_max: int) -> list[tuple[bytes, bytes]]:
    """Check an encrypted ballot's shape and every proof; the ciphertexts, or ProofError naming the part."""
    if not isinstance(ballot, dict) or set(ballot) != {"ciphertexts", "proofs", "overall"}:
        raise ProofError("ballot: {ciphertexts, proofs, overall}")
    raw, proofs = ballot["ciphertexts"], ballot["proofs"]
    if not isinstance(raw, list) or len(raw) != options or not isinstance(proofs, list) or len(proofs) != options:
        raise ProofError(f"ballot: one ciphertext and one proof per option ({options})")
    cts: list[tuple[bytes, bytes]] = []
    for j, ct in enumerate(raw):
        if not isinstance(ct, dict) or set(ct) != {"a", "b"}:
            raise ProofError(f"ciphertexts[{j}]: {{a, b}}")
        a, b = point(ct["a"], f"ciphertexts[{j}].a"), point(ct["b"], f"ciphertexts[{j}].b")
        _check_one_of(pk, a, b, (0, 1), proofs[j], f"option:{j}", context, f"proofs[{j}]")
        cts.append((a, b))
    sum_a, sum_b = joint_key(a for a, _ in cts), joint_key(b for _, b in cts)
    _check_one_of(pk, sum_a, sum_b, list(range(choose_min, choose_max + 1)), ballot["overall"], "overall",
                  context, "overall")
    return cts


# --- the tally ---------------------------------------------------------------------------------------------------

def add_ciphertexts(ballots: Iterable[Sequence[tuple[bytes, bytes]]], options: int) -> list[tuple[bytes, bytes]]:
    sums = [(IDENTITY, IDENTITY)] * options
    for cts in ballots:
        sums = [(add(sa, a), add(sb, b)) for (sa, sb), (a, b) in zip(sums, cts, strict=True)]
    return sums


def partial_decryption(key: TrusteeKey, sums: Sequence[tuple[bytes, bytes]], context: str) -> list[dict]:
    """A trustee's share of the decryption of each option's sum, with a proof it used the registered key."""
    out = []
    for j, (a, _) in enumerate(sums):
        d = mul(key.secret, a)
        w = random_scalar()
        ca, cb = base(w), mul(w, a)
        c = challenge(f"decrypt:{j}", context, key.public, a, d, ca, cb)
        out.append({"factor": hx(d), "c": sx(c), "s": sx(w + c * key.secret)})
    return out


def check_partial(public: bytes, sums: Sequence[tuple[bytes, bytes]], partial: object, context: str,
                  what: str) -> list[bytes]:
    if not isinstance(partial, list) or len(partial) != len(sums):
        raise ProofError(f"{what}: one factor per option")
    factors = []
    for j, ((a, _), part) in enumerate(zip(sums, partial, strict=True)):
        if not isinstance(part, dict) or set(part) != {"factor", "c", "s"}:
            raise ProofError(f"{what}[{j}]: {{factor, c, s}}")
        if a == IDENTITY:  # no ballot was cast: the factor is the identity too
            if part["factor"] != hx(IDENTITY):
                raise ProofError(f"{what}[{j}]: the factor of an empty sum is the identity")
            factors.append(IDENTITY)
            continue
        d = point(part["factor"], f"{what}[{j}].factor")
        c, s = scalar(part["c"], f"{what}[{j}].c"), scalar(part["s"], f"{what}[{j}].s")
        ca, cb = sub(base(s), mul(c, public)), sub(mul(s, a), mul(c, d))
        if challenge(f"decrypt:{j}", context, public, a, d, ca, cb) != c:
            raise ProofError(f"{what}[{j}] does not check")
        factors.append(d)
    return factors


def decrypt_counts(sums: Sequence[tuple[bytes, bytes]], factor_sets: Sequence[Sequence[bytes]], most: int) -> list[int]:
    """The count per option from the sums and every trustee's factors; ProofError if one is not in 0..most."""
    table: dict[bytes, int] = {}
    p = IDENTITY
    for m in range(most + 1):
        table[p] = m
        p = add(p, base(1))
    counts = []
    for j, (_, b) in enumerate(sums):
        m_point = b
        for factors in factor_sets:
            m_point = sub(m_point, factors[j])
        if m_point not in table:
            raise ProofError(f"option {j}: the decrypted count is not between 0 and {most}")
        counts.append(table[m_point])
    return counts

