"""Where document bytes live: a small interface so the disk can be swapped for an S3-compatible store.

Keys are always made here from random bytes, never from a file name or anything else a client sent, so no upload
can choose (or traverse to) where it is written. MUSUBI_STORAGE picks the store: `local` (the default, a folder) or
`s3` (an S3-compatible bucket, s3.py); docs/documents-and-surveys.md describes both.
"""
from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from flask import current_app

from federation.config import _choice, _int
from federation.errors import APIError

KINDS = ("local", "s3")


class Storage(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes:
        """The bytes under the key; FileNotFoundError when nothing is stored there."""
        ...

    def delete(self, key: str) -> None: ...

    def check(self) -> None:
        """Raises when the store cannot be used right now (for /readyz); cheap, reads or writes no document."""
        ...


class StorageUnavailable(APIError):
    """The store did not answer (down, timed out, refused us): a 503 in the API's error shape, never a 500, and
    never a partial answer. The store logs the cause for the operator; the client only learns to try again."""

    def __init__(self) -> None:
        super().__init__(503, "the document store cannot be reached; try again later", code="storage_unavailable")


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

    def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise PermissionError(f"{self.root} is not writable")


def storage() -> Storage:
    """The store MUSUBI_STORAGE names. The settings are read on each call (cheap, and tests switch stores that way);
    the S3 client behind them is made once per process (s3.py)."""
    if _choice("MUSUBI_STORAGE", KINDS, "local") == "s3":
        # Imported here so a local install never loads the SDK.
        from federation.space.documents.s3 import S3Storage

        return S3Storage.from_environment()
    root = os.environ.get("MUSUBI_STORAGE_DIR") or str(current_app.config["MUSUBI"].instance / "documents")
    return LocalStorage(Path(root))


def max_bytes() -> int:
    """MUSUBI_DOCUMENT_MAX_MB (default 20), read per upload so an operator's change needs no code."""
    return _int("MUSUBI_DOCUMENT_MAX_MB", 20) * 1024 * 1024


@contextmanager
def written(data: bytes) -> Iterator[str]:
    """Store the bytes under a new key for a row the caller then commits inside the block. If the block fails (a
    refused row, a lost database), the bytes are removed again: no file is left that no row will ever name."""
    store = storage()
    key = new_key()
    store.put(key, data)
    try:
        yield key
    except BaseException:
        try:
            store.delete(key)
        except Exception:  # noqa: BLE001 - the original failure is the one to report; this one is logged
            logging.getLogger("musubi.storage").warning("could not remove %s after a failed write", key)
        raise
