"""The order units and unions are listed in, everywhere: pages, pickers and the API's lists.

Units: a tree, each unit followed by its children; siblings by their stored `position` (a council's prefecture code,
a block's region from north to south, set when the unit is created), units without one after those with one, then in
the order they were created. Unions: 50-on order of their reading (`tenants.kana_key`), the slug breaking ties."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from tenants.models import Tenant

# `order_by(*TENANT_ORDER)`: unions in 50-on order of their reading, the slug breaking ties.
TENANT_ORDER = (Tenant.kana_key, Tenant.slug)


def tenant_key(kana_key: str, slug: str) -> tuple[str, str]:
    """The same order in Python, for rows already fetched."""
    return (kana_key, slug)


class _Unit(Protocol):
    id: int
    parent_id: int | None
    position: int | None


U = TypeVar("U", bound=_Unit)


def sibling_key(unit: _Unit) -> tuple[bool, int, int]:
    return (unit.position is None, unit.position or 0, unit.id)


def tree_order(units: Iterable[U]) -> list[U]:
    """Parents before their children, siblings by `sibling_key`. A unit whose parent is not among `units` is
    sorted with the roots: councils alone come out by prefecture code."""
    units = list(units)
    ids = {u.id for u in units}
    children: dict[int | None, list[U]] = {}
    for u in units:
        children.setdefault(u.parent_id if u.parent_id in ids else None, []).append(u)
    for group in children.values():
        group.sort(key=sibling_key)
    out: list[U] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        u = stack.pop()
        out.append(u)
        stack.extend(reversed(children.get(u.id, [])))
    return out
