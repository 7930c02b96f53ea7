"""A per-process cache of members' first inbox page, as the JSON bytes sent.

Members open their inbox far more often than it changes. An entry is keyed by the user and the page size and
stamped with three versions read in the request's one sign-in query: the union's inbox version (bumped by every
delivery, relay, retraction or edit that touches the union), the user's (bumped when they read, react or move to
another unit) and the policy version (which roles may see relays). A stale entry can therefore never be served:
any change that could alter the page moves a version first, in the same transaction as the change. When the sign-in
is answered from the caller cache (auth/callers.py), the versions are the remembered ones: moving a version drops
the remembered sign-ins of the tenant's members or of the user in every web process before the commit returns.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache

from flask import current_app
from sqlalchemy import bindparam, select, update

from federation.auth import callers
from federation.extensions import db
from tenants.models import Tenant, User

MAX_BYTES = 64 * 1024 * 1024

Key = tuple[int, int]
Stamp = tuple[int, int, int]


class InboxCache:
    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, tuple[Stamp, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Key, stamp: Stamp) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != stamp:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Key, stamp: Stamp, body: bytes) -> None:
        if len(body) > self.max_bytes // 16:
            return  # one huge page must not evict everybody else's
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[1])
            self._entries[key] = (stamp, body)
            self._bytes += len(body)
            while self._bytes > self.max_bytes and self._entries:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._bytes -= len(evicted)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def cache() -> InboxCache:
    """The cache of this app (one per process in production; tests make many apps over different databases)."""
    ext = current_app.extensions
    if "musubi_inbox_cache" not in ext:
        ext["musubi_inbox_cache"] = InboxCache()
    return ext["musubi_inbox_cache"]


def touch_unions(tenant_ids: Iterable[int]) -> None:
    """Inside the transaction that changes what these tenants' members see."""
    ids = sorted(set(tenant_ids))
    if ids:
        db.session.execute(update(Tenant).where(Tenant.id.in_(ids)).values(inbox_version=Tenant.inbox_version + 1),
                           execution_options=callers.precise(callers.tenant_key(i) for i in ids))


def touch_notice(notice_id: int) -> None:
    """Every tenant the notice was delivered to, and its author's (a retraction or an edit)."""
    from federation.notices.models import Delivery, Notice

    ids = set(db.session.execute(select(Delivery.tenant_id).where(Delivery.notice_id == notice_id)).scalars())
    author = db.session.execute(select(Notice.tenant_id).where(Notice.id == notice_id)).scalar_one_or_none()
    if author is not None:
        ids.add(author)
    touch_unions(ids)


@lru_cache(maxsize=1)
def _touch_user_statement():  # type: ignore[no-untyped-def]
    return update(User).where(User.id == bindparam("uid")).values(inbox_version=User.inbox_version + 1)


def touch_user(user_id: int) -> None:
    db.session.execute(_touch_user_statement(), {"uid": user_id},
                       execution_options=callers.precise([callers.read_state_key(user_id)]))
