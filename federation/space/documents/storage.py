"""Where document bytes live: a small interface so the disk can be swapped for an S3-compatible store.

Keys are always made here from random bytes, never from a file name or anything else a client sent, so no upload
can choose (or traverse to) where it is written. docs/documents-and-surveys.md describes plugging in an
S3-compatible store.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from flask import current_app

from federation.config import _int


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...


def new_key() -> str:
    return secrets.token_hex(20)


def _checked(key: str) -> str:
    # Defence in depth: every key comes from new_key(), but a key read back from the database is still checked.
    if len(key) != 40 or any(c not in "0123456789abcdef" for c in key):
        raise ValueError("not a storage key")
    return key


class LocalStorage:
    """Files under one folder, fanned out by the key's first two characters to keep directories small."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        key = _checked(key)
        return self.root / key[:2] / key

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part")
        # Written aside then renamed, so a reader never sees half a file.
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def storage() -> Storage:
    root = os.environ.get("MUSUBI_STORAGE_DIR") or str(current_app.config["MUSUBI"].instance / "documents")
    return LocalStorage(Path(root))


def max_bytes() -> int:
    """MUSUBI_DOCUMENT_MAX_MB (default 20), read per upload so an operator's change needs no code."""
    return _int("MUSUBI_DOCUMENT_MAX_MB", 20) * 1024 * 1024
