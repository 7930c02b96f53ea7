"""Tenant scoping that a test enforces, not a comment: the package's source is read as Python syntax trees and

1. no view of the API and no page builds a query or touches the session's rows itself: they parse, ask the
   firewall (`access_tenant`), call the concept's reads or services, and render;
2. a tenant-owned model (every mapped class with a tenant column) is queried only in the modules that are the
   scoped reads and writes of their concept (or the jobs and auditor queries listed with their reason below).

A new route that queries on its own, or a new module that queries a union's rows without being one of the scoped
modules, fails here with the file and line. The checker itself is tested on a deliberately unscoped snippet, so it
cannot silently pass everything.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("federation", "tenants")

# Session calls that read or write rows. commit/rollback/flush are transaction control, not queries.
ROW_CALLS = {"get", "execute", "scalar", "scalars", "query", "add", "add_all", "delete", "merge", "refresh"}
QUERY_BUILDERS = {"select", "insert", "update", "delete", "insert_ignore", "get_row"}
# `access.get_owned(Model, id, tenant)` is the scoped loader a view may call: the tenant came from access_tenant.

# Modules where views and pages live: they may not query at all.
VIEW_MODULES = ("federation/web/", "/views.py", "/pages.py")

# The scoped reads and writes of each concept, and the jobs that act across tenants by design, each checked by the
# firewall at the point it acts (docs/architecture.md, "One data path").
SCOPED_MODULES = {
    "federation/access.py": "the scoped loader itself",
    "federation/notices/reads.py": "notices: officers' and recipients' reads",
    "federation/twoway/service.py": "comments: one union's thread, by the standing the notice gives the caller",
    "federation/twoway/notify.py": "job: pushes about a thread, each person asked of the firewall when sent",
    "federation/reports/service.py": "upward reports: requests by their federation, answers by the answering union",
    "federation/reports/reminders.py": "job: reminders to unanswered unions' admins, asked of the firewall when sent",
    "federation/kpi/service.py": "KPI board: counts of the union access_tenant returned, or of each union the firewall "
                                 "lets its federation read",
    "federation/notices/service.py": "notices: writes",
    "federation/ballots/service.py": "ballots: the lifecycle and its reads, by the tenant access_tenant returned",
    "federation/ballots/notify.py": "ballots: the opening and reminder pushes (jobs that re-read the roll)",
    "federation/notices/inbox.py": "the member's inbox, read marks and stamps, stats and receipts queries",
    "federation/notices/inbox_cache.py": "the inbox counters bumped with every change",
    "federation/notices/audience.py": "resolving an audience inside the author's reach",
    "federation/notices/cascade.py": "job: deliveries, each union asked of the firewall when made",
    "federation/scheduler/notices.py": "job: claiming due notices and reminders, re-checked at delivery",
    "federation/push/": "job and the user's own devices: subscriptions by user id, sends by delivery",
    "federation/space/": "the union space's services, each by the tenant access_tenant returned",
    "federation/auth/": "sign-in, sessions and throttling: by tenant slug and login id",
    "federation/audit/": "the auditor's queries: policy, roles and counts, never content (F1)",
    "federation/firewall/": "the policy and the role grants the enforcer compiles",
    "federation/database.py": "migrations and the platform tenant",
    "federation/health.py": "readiness: a count of nothing tenant-specific",
    "tenants/": "tenants, units, members, roles, affiliations: reads and writes by the tenant given",
}
# The demo and the operator's CLI build and change worlds of their own through the services; they are not a request's
# or a job's path. (Benchmarks, fault drills and the local push service live outside the package, in devtools/.)
NOT_PRODUCT = ("federation/demo.py", "federation/cli.py")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def tenant_owned_models() -> set[str]:
    """Class names of every mapped model with a tenant column (or the affiliation, which joins two tenants)."""
    from federation import create_app  # noqa: F401  (imports every model module)
    from federation.extensions import db

    import_all_models()
    names = set()
    for mapper in db.Model.registry.mappers:
        columns = {c.key for c in mapper.columns}
        if columns & {"tenant_id", "union_id", "federation_id"}:
            names.add(mapper.class_.__name__)
    return names


def import_all_models() -> None:
    import importlib

    for path in sorted((ROOT / "federation").rglob("models.py")) + [ROOT / "tenants" / "models.py",
                                                                     ROOT / "federation" / "push" / "records.py",
                                                                     ROOT / "federation" / "audit" / "chain.py"]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        importlib.import_module(module)


def _is_session_call(node: ast.Call) -> str | None:
    # db.session.X(...)
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr in ROW_CALLS and isinstance(func.value, ast.Attribute) \
            and func.value.attr == "session":
        return f"db.session.{func.attr}"
    return None


def _called_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and func.attr in QUERY_BUILDERS and isinstance(func.value, ast.Name) \
            and func.value.id in ("sa", "sqlalchemy", "dbutil", "access"):
        return func.attr
    return None


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def check_source(path: str, source: str, owned: set[str]) -> list[Finding]:
    tree = ast.parse(source, filename=path)
    is_view = any(marker in path if marker.startswith("/") else path.startswith(marker) for marker in VIEW_MODULES)
    scoped = any(path == m or (m.endswith("/") and path.startswith(m)) for m in SCOPED_MODULES)
    out: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "query" and isinstance(node.value, ast.Name) \
                and node.value.id in owned:
            out.append(Finding(path, node.lineno, f"{node.value.id}.query: use the concept's reads"))
        if not isinstance(node, ast.Call):
            continue
        session = _is_session_call(node)
        builder = _called_name(node)
        if is_view and (session or builder in QUERY_BUILDERS):
            out.append(Finding(path, node.lineno, f"{session or builder}() in a view or page: call the concept's "
                                                  "reads or services"))
            continue
        if scoped or builder not in QUERY_BUILDERS and session is None:
            continue
        touched = set()
        for arg in node.args:
            touched |= _names_in(arg) & owned
        if touched:
            out.append(Finding(path, node.lineno, f"{session or builder}() of {', '.join(sorted(touched))} outside "
                                                  "the scoped reads and services"))
    return out


def product_files() -> list[Path]:
    files = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(rel == p or (p.endswith("/") and rel.startswith(p)) for p in NOT_PRODUCT):
                continue
            files.append(path)
    return files


def test_no_view_or_page_queries_and_tenant_rows_are_read_only_where_scoped() -> None:
    owned = tenant_owned_models()
    assert {"Notice", "Document", "Survey", "Application", "Invitation", "OrgUnit", "User"} <= owned
    findings = []
    for path in product_files():
        findings += check_source(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"), owned)
    assert findings == [], "\n".join(str(f) for f in findings)


def test_every_scoped_module_named_exists() -> None:
    for path in (*SCOPED_MODULES, *NOT_PRODUCT):
        assert (ROOT / path).exists(), f"{path} is listed here but does not exist: update the list"


UNSCOPED_VIEW = '''
from sqlalchemy import select
from federation.extensions import db

def get(self, slug, document_id):
    return db.session.execute(select(Document).where(Document.id == document_id)).scalar_one()
'''

UNSCOPED_HELPER = '''
from sqlalchemy import select
from federation.extensions import db

def documents_everywhere():
    return db.session.execute(select(Document)).scalars().all()
'''


@pytest.mark.parametrize("path,source,expected", [
    ("federation/space/documents/views.py", UNSCOPED_VIEW, 2),  # the select and the execute
    ("federation/web/documents.py", UNSCOPED_VIEW, 2),
    ("federation/reports/helpers.py", UNSCOPED_HELPER, 2),  # not a scoped module: the select and the execute
])
def test_the_checker_fails_on_a_deliberately_unscoped_query(path: str, source: str, expected: int) -> None:
    findings = check_source(path, source, {"Document"})
    assert len(findings) == expected, findings


def test_the_checker_accepts_the_same_query_in_the_concepts_scoped_module() -> None:
    assert check_source("federation/space/documents/service.py", UNSCOPED_HELPER, {"Document"}) == []
