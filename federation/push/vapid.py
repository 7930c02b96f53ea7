"""VAPID keys (RFC 8292): generated once by `python cli.py push init-vapid`, kept outside the code (the instance
folder or MUSUBI_VAPID_FILE, mode 0600), and a signed Authorization header cached per push-service origin until
shortly before it expires (signing costs about as much as encrypting; LIBRARIES.md)."""
from __future__ import annotations

import base64
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

HEADER_LIFETIME = 12 * 3600  # exp claim: well inside the 24 h services allow
RENEW_BEFORE = 3600  # sign a fresh header an hour before the cached one expires


class VapidMissing(RuntimeError):
    pass


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def generate(path: Path, *, force: bool = False) -> str:
    """Write a new key pair to `path`; refuses to replace an existing one unless forced. Returns the public key."""
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it (every browser must then subscribe again)")
    key = ec.generate_private_key(ec.SECP256R1())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode("ascii")
    public = _b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"private_key_pem": private_pem, "public_key": public, "created_at": int(time.time())}, fh)
    os.replace(tmp, path)
    return public


@dataclass
class VapidKeys:
    vapid: Vapid02
    public_key: str
    subject: str
    _headers: dict[str, tuple[float, str]]
    _lock: threading.Lock

    @classmethod
    def load(cls, path: Path, subject: str) -> VapidKeys:
        if not path.exists():
            raise VapidMissing(f"no VAPID key at {path}: run 'python cli.py push init-vapid'")
        data = json.loads(path.read_text())
        vapid = Vapid02.from_pem(data["private_key_pem"].encode("ascii"))
        return cls(vapid, data["public_key"], subject, {}, threading.Lock())

    def authorization(self, endpoint: str) -> str:
        """`vapid t=JWT, k=KEY` for the endpoint's origin, signed once per origin and period."""
        parts = urlsplit(endpoint)
        return self.authorization_for(f"{parts.scheme}://{parts.netloc}")

    def authorization_for(self, origin: str) -> str:
        """The same, for an origin (`scheme://host[:port]`) the caller has already split off."""
        now = time.time()
        cached = self._headers.get(origin)
        if cached and cached[0] - RENEW_BEFORE > now:
            return cached[1]
        with self._lock:
            exp = int(now) + HEADER_LIFETIME
            # A fresh claims dict every time: py_vapid/pywebpush write into the dict they are given.
            headers = self.vapid.sign({"aud": origin, "exp": exp, "sub": self.subject})
            value = headers["Authorization"]
            self._headers[origin] = (float(exp), value)
            return value


_keys: VapidKeys | None = None
_keys_stamp: tuple[str, int, str] | None = None
_keys_lock = threading.Lock()


def keys(path: Path, subject: str) -> VapidKeys:
    """The key pair, loaded once per process and again when the file changes (init-vapid --force)."""
    global _keys, _keys_stamp
    stamp = (str(path), path.stat().st_mtime_ns if path.exists() else 0, subject)
    with _keys_lock:
        if _keys is None or _keys_stamp != stamp:
            _keys = VapidKeys.load(path, subject)
            _keys_stamp = stamp
        return _keys


def public_key(path: Path) -> str | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())["public_key"]


def forget() -> None:
    global _keys
    with _keys_lock:
        _keys = None
