"""Login ids (employee numbers, e-mail addresses) in one form, so no two accounts of a tenant look alike.

A login id is normalised with NFKC (fullwidth ＥＭＰ００１ becomes EMP001, compatibility forms fold) and kept in the
case it was written in, which is how officers and members see it; its key (`login_key`, the case-folded form) is what is
unique in a tenant and what sign-in matches, so EMP001 and emp001 are one account. Characters a person cannot see or
that reorder what they see are refused, not stripped: zero-width characters, bidi controls, other format and control
characters, variation selectors and every kind of white space. The same function runs wherever a login id enters: the
API and the CLI creating members, CSV import, QR self-registration, and sign-in (what was typed is normalised the same
way).
"""
from __future__ import annotations

import unicodedata

MAX_LENGTH = 254


class LoginIdError(ValueError):
    """A login id that cannot be one; the message names what is wrong."""


def _invisible(ch: str) -> bool:
    cat = unicodedata.category(ch)
    if cat in ("Cf", "Cc", "Cs", "Co", "Cn", "Zl", "Zp", "Zs") or ch.isspace():
        return True
    code = ord(ch)
    # Variation selectors (and their supplement), the Hangul and Mongolian fillers that render as nothing.
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or code in (0x115F, 0x1160, 0x3164, 0xFFA0, 0x180E)


def normalize_login_id(raw: str) -> str:
    """The one form of a login id, or LoginIdError."""
    if not isinstance(raw, str):
        raise LoginIdError("must be text")
    for ch in raw:
        if _invisible(ch):
            name = unicodedata.name(ch, f"U+{ord(ch):04X}")
            raise LoginIdError(f"contains an invisible or control character ({name}); type it again")
    value = unicodedata.normalize("NFKC", raw)
    # NFKC can itself produce a space or a control (e.g. from a compatibility character): check the result too.
    if any(_invisible(ch) for ch in value):
        raise LoginIdError("contains a character that reads as a space or control; type it again")
    if not value or len(value) > MAX_LENGTH:
        raise LoginIdError(f"1-{MAX_LENGTH} characters without spaces")
    return value


def login_key(login_id: str) -> str:
    """The key of a normalised login id: what is unique in a tenant and what a lookup compares."""
    return login_id.casefold()


def login_key_or_none(raw: str) -> str | None:
    """For sign-in and lookups: the key of what was typed, or None when no account could have that id."""
    try:
        return login_key(normalize_login_id(raw))
    except LoginIdError:
        return None
