"""Every setting musubi reads, parsed in one place from the environment (and the test mapping).

The SPEC fixes DATABASE_URL, REDIS_URL and SECRET_KEY; everything else is MUSUBI_*.
"""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(RuntimeError):
    """A setting is present but unusable; the message names it."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _choice(name: str, choices: tuple[str, ...], default: str) -> str:
    raw = os.environ.get(name) or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def instance_dir() -> Path:
    path = Path(os.environ.get("MUSUBI_INSTANCE") or PROJECT_ROOT / "instance")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _secret_key(instance: Path) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in the instance folder (mode 0600)."""
    key = os.environ.get("SECRET_KEY")
    if key:
        if len(key) < 16:
            raise ConfigError("SECRET_KEY must be at least 16 characters")
        return key
    path = instance / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def _audit_key(instance: Path) -> str:
    """The key of the audit chain's MACs (never stored in the database): MUSUBI_AUDIT_KEY, else the file named by
    MUSUBI_AUDIT_KEY_FILE, else instance/audit_key; a missing key file is generated once (mode 0600). Keep a copy
    of it where the database's administrators cannot reach: without it no MAC can be checked."""
    key = os.environ.get("MUSUBI_AUDIT_KEY")
    if key:
        if len(key) < 32:
            raise ConfigError("MUSUBI_AUDIT_KEY must be at least 32 characters")
        return key
    path = Path(os.environ.get("MUSUBI_AUDIT_KEY_FILE") or instance / "audit_key")
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        except OSError as exc:
            raise ConfigError(f"MUSUBI_AUDIT_KEY_FILE: cannot create {path}: {exc.strerror}") from None
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
    try:
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"MUSUBI_AUDIT_KEY_FILE: cannot read {path}: {exc.strerror}") from None
    if len(key) < 32:
        raise ConfigError(f"MUSUBI_AUDIT_KEY_FILE: {path} must hold at least 32 characters")
    return key


def _database_url(instance: Path) -> str:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'musubi.db'}"
    # Plain postgresql:// would pick psycopg2, which we do not ship; psycopg 3 is the driver.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    secret_key: str
    instance: Path
    policy_dir: Path
    session_hours: int
    login_max_failures: int
    login_window_seconds: int
    secure_cookies: bool
    vapid_file: Path
    vapid_subject: str
    reminder_lead_hours: int
    scheduler_tick_seconds: int
    push_concurrency: int
    log_format: str
    push_timeout_seconds: int
    cascade_chunk: int
    stuck_cascade_seconds: int = 120
    resume_cascade_seconds: int = 600
    proxy_hops: int = 0
    public_url: str | None = None
    secret_key_fallbacks: tuple[str, ...] = ()
    login_lock_seconds: int = 60
    login_address_max_failures: int = 100
    reset_hours: int = 72
    hsts_seconds: int = 0
    audit_key: str = ""
    audit_anchor_file: Path | None = None
    push_allow_private: tuple[Any, ...] = ()  # ip networks push endpoints may reach although not public
    caller_cache: bool = False  # web processes remember sign-ins, kept current through Redis (auth/callers.py)

    def flask_mapping(self) -> dict[str, object]:
        return {
            "SECRET_KEY": self.secret_key,
            "SECRET_KEY_FALLBACKS": list(self.secret_key_fallbacks),
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "REDIS_URL": self.redis_url,
            "MUSUBI": self,
        }


def _public_url_is_https() -> bool:
    return (os.environ.get("MUSUBI_PUBLIC_URL") or "").lower().startswith("https://")


def load_settings() -> Settings:
    instance = instance_dir()
    return Settings(
        database_url=_database_url(instance),
        redis_url=os.environ.get("REDIS_URL") or None,
        secret_key=_secret_key(instance),
        instance=instance,
        policy_dir=Path(os.environ.get("MUSUBI_POLICY_DIR") or PROJECT_ROOT / "policies"),
        session_hours=_int("MUSUBI_SESSION_HOURS", 24 * 14),
        login_max_failures=_int("MUSUBI_LOGIN_MAX_FAILURES", 10),
        login_window_seconds=_int("MUSUBI_LOGIN_WINDOW_SECONDS", 900),
        # Behind https (the public address says so) cookies are Secure unless told otherwise.
        secure_cookies=_bool("MUSUBI_SECURE_COOKIES", _public_url_is_https()),
        vapid_file=Path(os.environ.get("MUSUBI_VAPID_FILE") or instance / "vapid.json"),
        vapid_subject=os.environ.get("MUSUBI_VAPID_SUBJECT", "mailto:admin@musubi.invalid"),
        reminder_lead_hours=_int("MUSUBI_REMINDER_LEAD_HOURS", 24),
        scheduler_tick_seconds=_int("MUSUBI_SCHEDULER_TICK_SECONDS", 5),
        push_concurrency=_int("MUSUBI_PUSH_CONCURRENCY", 32),
        log_format=_choice("MUSUBI_LOG_FORMAT", ("text", "json"), "text"),
        push_timeout_seconds=_int("MUSUBI_PUSH_TIMEOUT_SECONDS", 10),
        cascade_chunk=_cascade_chunk(),
        # How long a published notice may wait for its cascade to start, or to finish, before the scheduler queues
        # it again; fault drills shorten them so a lost Redis is recovered from within seconds.
        stuck_cascade_seconds=_int("MUSUBI_STUCK_CASCADE_SECONDS", 120),
        resume_cascade_seconds=_int("MUSUBI_RESUME_CASCADE_SECONDS", 600),
        proxy_hops=_proxy_hops(),
        public_url=_public_url(),
        secret_key_fallbacks=_secret_key_fallbacks(),
        login_lock_seconds=_int("MUSUBI_LOGIN_LOCK_SECONDS", 60),
        login_address_max_failures=_int("MUSUBI_LOGIN_ADDRESS_MAX_FAILURES", 100),
        reset_hours=_int("MUSUBI_RESET_HOURS", 72),
        hsts_seconds=_int("MUSUBI_HSTS_SECONDS", 365 * 86400 if _public_url_is_https() else 0),
        audit_key=_audit_key(instance),
        # Where `audit anchor` appends by default; ship the file off this host (it is only as safe as its copies).
        audit_anchor_file=Path(os.environ["MUSUBI_AUDIT_ANCHOR_FILE"]) if os.environ.get("MUSUBI_AUDIT_ANCHOR_FILE")
        else None,
        push_allow_private=_push_allow_private(),
        # Every process of a deployment must agree: the ones that change users announce it when this is on.
        caller_cache=_bool("MUSUBI_CALLER_CACHE", False),
    )


def _proxy_hops() -> int:
    """How many proxies in front of the web processes set X-Forwarded-For/-Proto/-Host (0: none is trusted).

    Trusting a header no proxy of ours sets would let any client choose the address its sign-in failures are
    counted under, so the default trusts none."""
    value = _int("MUSUBI_PROXY_HOPS", 0)
    if not 0 <= value <= 5:
        raise ConfigError(f"MUSUBI_PROXY_HOPS must be between 0 and 5, got {value}")
    return value


def _public_url() -> str | None:
    """The address members reach the service at (https://musubi.example.org), used in links that leave the
    service: the registration URL in a printed QR code must not depend on the Host header of the officer's request."""
    raw = (os.environ.get("MUSUBI_PUBLIC_URL") or "").strip().rstrip("/")
    if not raw:
        return None
    if not (raw.startswith("https://") or raw.startswith("http://")) or "?" in raw or "#" in raw:
        raise ConfigError(f"MUSUBI_PUBLIC_URL must be an http(s) address without query or fragment, got {raw!r}")
    return raw


def _secret_key_fallbacks() -> tuple[str, ...]:
    """Former SECRET_KEYs, comma-separated, still accepted when checking a signature (invitation links printed on
    flyers) while new ones are signed with SECRET_KEY: rotation without invalidating what is already printed."""
    raw = os.environ.get("MUSUBI_SECRET_KEY_FALLBACKS") or ""
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for key in keys:
        if len(key) < 16:
            raise ConfigError("MUSUBI_SECRET_KEY_FALLBACKS: every key must be at least 16 characters")
    return keys


def _cascade_chunk() -> int:
    """Unions per delivery job; 0 (unset) leaves it to the cascade's own default."""
    value = _int("MUSUBI_CASCADE_CHUNK", 0)
    if value < 0:
        raise ConfigError(f"MUSUBI_CASCADE_CHUNK must be 0 or more, got {value}")
    return value


def _push_allow_private() -> tuple[Any, ...]:
    """Addresses or networks (comma-separated: `127.0.0.1`, `10.8.0.0/16`) that push endpoints may reach although
    they are not public, and on which an endpoint may be plain http: the local push service of the tests and
    benchmarks. Unset, push goes only to https endpoints on public addresses (federation/push/addresses.py)."""
    from federation.push.addresses import parse_networks

    try:
        return parse_networks(os.environ.get("MUSUBI_PUSH_ALLOW_PRIVATE") or "")
    except ValueError as exc:
        raise ConfigError(f"MUSUBI_PUSH_ALLOW_PRIVATE: {exc}") from None
