"""Document bytes in one bucket of an S3-compatible store (AWS S3, MinIO, Cloudflare R2, Sakura object storage).

Chosen with MUSUBI_STORAGE=s3. Every setting is parsed here (at startup, and again on each use so a change is seen),
so a mistake is one ConfigError naming the setting instead of an error from deep inside the SDK at the first upload.
The bucket must stay private: downloads go through the API, which is where the firewall checks them.
"""
from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from federation.config import ConfigError, _int
from federation.space.documents.storage import StorageUnavailable, _checked

log = logging.getLogger("musubi.storage")

SSE_CHOICES = ("AES256", "aws:kms")
# What the SDK itself accepts as a bucket name; checked here so that, say, "s3://bucket" is refused by name.
_BUCKET = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")
# The answers S3-compatible stores give for a key that holds nothing.
_MISSING = ("NoSuchKey", "404", "NotFound")


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None
    region: str | None
    prefix: str
    # Kept out of repr so a settings object in a log line never carries the secret.
    access_key_id: str | None = field(repr=False)
    secret_access_key: str | None = field(repr=False)
    sse: str | None
    connect_timeout: int
    read_timeout: int
    max_attempts: int


def _positive(name: str, default: int) -> int:
    value = _int(name, default)
    if value < 1:
        raise ConfigError(f"{name} must be 1 or more, got {value}")
    return value


def load_s3_settings() -> S3Settings:
    bucket = os.environ.get("MUSUBI_S3_BUCKET", "").strip()
    if not bucket:
        raise ConfigError("MUSUBI_S3_BUCKET must be set when MUSUBI_STORAGE=s3")
    if not _BUCKET.fullmatch(bucket):
        raise ConfigError(f"MUSUBI_S3_BUCKET must be a bare bucket name (letters, digits, '.', '-', '_'), "
                          f"got {bucket!r}")
    endpoint = os.environ.get("MUSUBI_S3_ENDPOINT_URL", "").strip() or None
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        raise ConfigError(f"MUSUBI_S3_ENDPOINT_URL must start with http:// or https://, got {endpoint!r}")
    key_id = os.environ.get("MUSUBI_S3_ACCESS_KEY_ID") or None
    secret = os.environ.get("MUSUBI_S3_SECRET_ACCESS_KEY") or None
    if (key_id is None) != (secret is None):
        raise ConfigError("MUSUBI_S3_ACCESS_KEY_ID and MUSUBI_S3_SECRET_ACCESS_KEY must be set together "
                          "(or neither, to use the standard AWS credentials)")
    sse = os.environ.get("MUSUBI_S3_SSE") or None
    if sse is not None and sse not in SSE_CHOICES:
        raise ConfigError(f"MUSUBI_S3_SSE must be one of {', '.join(SSE_CHOICES)} or unset, got {sse!r}")
    prefix = os.environ.get("MUSUBI_S3_PREFIX", "").strip("/")
    return S3Settings(
        bucket=bucket,
        endpoint_url=endpoint,
        region=os.environ.get("MUSUBI_S3_REGION") or None,
        # One folder-like prefix: "musubi/prod" and "/musubi/prod/" both store under "musubi/prod/<key>".
        prefix=f"{prefix}/" if prefix else "",
        access_key_id=key_id,
        secret_access_key=secret,
        sse=sse,
        # The read timeout bounds each wait for bytes, not a whole transfer, so 10 s holds for a 20 MB file; with
        # three attempts a download from a hung store gives up after about half a minute, inside a web timeout.
        connect_timeout=_positive("MUSUBI_S3_CONNECT_TIMEOUT_SECONDS", 3),
        read_timeout=_positive("MUSUBI_S3_READ_TIMEOUT_SECONDS", 10),
        max_attempts=_positive("MUSUBI_S3_MAX_ATTEMPTS", 3),
    )


def _new_client(s: S3Settings, *, connect_timeout: int, read_timeout: int, max_attempts: int) -> Any:
    options: dict[str, Any] = {
        "connect_timeout": connect_timeout,
        "read_timeout": read_timeout,
        # "standard" retries throttling and 5xx answers as well as broken connections, with jittered backoff.
        # total_max_attempts counts the first try too (the SDK's max_attempts would count only the retries).
        "retries": {"mode": "standard", "total_max_attempts": max_attempts},
    }
    if s.endpoint_url is not None:
        # Self-hosted stores are addressed by path: a virtual-host name per bucket needs DNS they rarely have.
        options["s3"] = {"addressing_style": "path"}
        # Newer SDKs add checksum headers to every upload by default, which several S3-compatible stores refuse;
        # only send them where the operation requires one.
        if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
    # A session of its own: boto3's default session is not safe to create clients from in several threads.
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=s.endpoint_url, region_name=s.region,
                          aws_access_key_id=s.access_key_id, aws_secret_access_key=s.secret_access_key,
                          config=Config(**options))


_lock = threading.Lock()
_cached: tuple[S3Settings, Any, Any] | None = None


def clients(s: S3Settings) -> tuple[Any, Any]:
    """The data client and the readiness-probe client, made once per process (a client is thread-safe and keeps
    its connection pool). Settings that change (only tests do that) replace them, closing the old pools."""
    global _cached
    with _lock:
        if _cached is None or _cached[0] != s:
            _close_cached()
            data = _new_client(s, connect_timeout=s.connect_timeout, read_timeout=s.read_timeout,
                               max_attempts=s.max_attempts)
            # /readyz must answer within a probe's timeout: one attempt, short waits.
            probe = _new_client(s, connect_timeout=min(s.connect_timeout, 2), read_timeout=min(s.read_timeout, 2),
                                max_attempts=1)
            _cached = (s, data, probe)
        return _cached[1], _cached[2]


def _close_cached() -> None:
    global _cached
    if _cached is not None:
        _cached[1].close()
        _cached[2].close()
        _cached = None


def reset_clients() -> None:
    with _lock:
        _close_cached()


def _failed(operation: str, key: str, exc: Exception) -> StorageUnavailable:
    code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
    log.warning("document store %s failed for key %s: %s%s", operation, key, type(exc).__name__,
                f" ({code})" if code else "")
    return StorageUnavailable()


class S3Storage:
    """put_object / get_object / delete_object on one bucket, key = prefix + the random storage key."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._client, self._probe = clients(settings)

    @classmethod
    def from_environment(cls) -> S3Storage:
        return cls(load_s3_settings())

    def _key(self, key: str) -> str:
        return self.settings.prefix + _checked(key)

    def put(self, key: str, data: bytes) -> None:
        extra = {"ServerSideEncryption": self.settings.sse} if self.settings.sse else {}
        try:
            self._client.put_object(Bucket=self.settings.bucket, Key=self._key(key), Body=data, **extra)
        except (BotoCoreError, ClientError) as exc:
            raise _failed("put", key, exc) from exc

    def get(self, key: str) -> bytes:
        object_key = self._key(key)
        try:
            body = self._client.get_object(Bucket=self.settings.bucket, Key=object_key)["Body"]
            try:
                return body.read()
            finally:
                body.close()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                # The same as the local store's missing file, which is what callers are written against.
                raise FileNotFoundError(f"no stored object {object_key}") from None
            raise _failed("get", key, exc) from exc
        except BotoCoreError as exc:
            raise _failed("get", key, exc) from exc

    def delete(self, key: str) -> None:
        # S3 answers a delete of a missing key with success, like the local store's unlink(missing_ok=True).
        try:
            self._client.delete_object(Bucket=self.settings.bucket, Key=self._key(key))
        except (BotoCoreError, ClientError) as exc:
            raise _failed("delete", key, exc) from exc

    def check(self) -> None:
        # HEAD on the bucket: proves the endpoint answers and these credentials may use the bucket, reads nothing.
        self._probe.head_bucket(Bucket=self.settings.bucket)
