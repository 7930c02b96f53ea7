"""Argon2id password hashing (argon2-cffi), with parameters at OWASP's recommended minimum for interactive logins."""
from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified when the account does not exist, so a wrong tenant or login id costs the same time as a wrong password.
_DUMMY = _hasher.hash("musubi-timing-equaliser")

MIN_LENGTH = 8


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# At least this many guesses, as zxcvbn estimates them (its frequency lists of common passwords, names, keyboard
# patterns, repeats, dates, and the person's own login id and name): the commonest passwords, "password1",
# "qwerty123" or the employee number itself fall far below it. Sign-in throttling bounds guesses per account.
MIN_GUESSES_LOG10 = 6.0


def password_problem(password: str, *, login_id: str | None = None, names: tuple[str, ...] = ()) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if len(password) > 200:
        return "must be at most 200 characters"
    from zxcvbn import zxcvbn

    hints = [h for h in (login_id, *names) if h]
    if zxcvbn(password, user_inputs=hints)["guesses_log10"] < MIN_GUESSES_LOG10:
        return "too easy to guess (a common password, a pattern or your own login id); choose another"
    return None
