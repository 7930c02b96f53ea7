"""Member CSV import and export: employee number, name, reading, unit, role. A dry run lists every row's problem; a
real import is all-or-nothing. UTF-8 (with or without BOM) and Shift_JIS (as Excel on Japanese Windows saves it)
are accepted; an export uses the same columns, so it can be edited and imported into another union.

Imported members start as `invited` (no password): they become active when they set one through an invitation."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import insert, select

from federation.audit.chain import record
from federation.errors import APIError
from federation.extensions import db, utcnow
from federation.firewall.templates import GRANTABLE, UNIT_SCOPED
from tenants.kana import is_kana, kana_sort_key, normalize_kana
from tenants.login_ids import LoginIdError, login_key, normalize_login_id
from tenants.models import OrgUnit, RoleGrant, Tenant, User

# Header names a union office is likely to use, in Japanese or English. Compared after NFKC, case folding and
# without spaces, "_" and "-": "Employee number", "employee_number" and "ＥｍｐｌｏｙｅｅＮｏ" are one header.
COLUMNS = {
    "login_id": ("login_id", "社員番号", "職員番号", "従業員番号", "組合員番号", "社員no", "職員no", "employee_number",
                 "employee_no", "employee_id", "staff_number", "staff_no", "member_number", "id"),
    "display_name": ("display_name", "氏名", "名前", "お名前", "name", "full_name"),
    "name_kana": ("name_kana", "よみ", "読み", "よみがな", "読み仮名", "フリガナ", "ふりがな", "カナ", "氏名カナ",
                  "氏名(カナ)", "kana", "reading", "furigana"),
    "unit": ("unit", "所属", "支部", "分会", "職場", "unit_id", "branch", "workplace"),
    "role": ("role", "役割", "役職", "権限"),
}
# The words an office writes for a role, in Japanese or English; an empty cell or "組合員" is an ordinary member.
ROLE_WORDS = {
    "union_admin": ("union_admin", "組合管理者", "管理者", "union administrator", "administrator", "admin"),
    "union_editor": ("union_editor", "組合編集者", "編集者", "union editor", "editor"),
    "election_officer": ("election_officer", "選挙管理委員", "election officer"),
    "": ("member", "組合員", "一般", "一般組合員", "なし", "-"),
}


def _key(text: str) -> str:
    import unicodedata

    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if not ch.isspace() and ch not in "_-・")


HEADERS = {_key(name): column for column, names in COLUMNS.items() for name in names}
ROLES = {_key(word): role for role, words in ROLE_WORDS.items() for word in words}
MAX_ROWS = 50_000
MAX_BYTES = 10 * 1024 * 1024


@dataclass
class Row:
    line: int
    login_id: str
    display_name: str
    name_kana: str
    unit_id: int | None
    role: str | None
    # (message, parameters): English here and in the CLI; the web page translates the message (catalogue msgids).
    issues: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def problem(self, message: str, **params: object) -> None:
        self.issues.append((message, params))

    @property
    def problems(self) -> list[str]:
        return [message % params for message, params in self.issues]


@dataclass
class ImportReport:
    rows: list[Row]
    encoding: str

    @property
    def problems(self) -> list[str]:
        return [f"line {r.line}: {p}" for r in self.rows for p in r.problems]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.problems


def decode(data: bytes) -> tuple[str, str]:
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding), "UTF-8" if encoding == "utf-8-sig" else "Shift_JIS"
        except UnicodeDecodeError:
            continue
    raise APIError(422, "file: neither UTF-8 nor Shift_JIS", fields={"file": ["unreadable encoding"]})


def _header_map(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, name in enumerate(header):
        column = HEADERS.get(_key(name))
        if column and column not in found:
            found[column] = i
    missing = [k for k in ("login_id", "display_name", "name_kana") if k not in found]
    if missing:
        wanted = {"login_id": "社員番号 (employee_number)", "display_name": "氏名 (name)",
                  "name_kana": "よみ (reading)"}
        seen = ", ".join(h.strip() for h in header if h.strip()) or "nothing"
        raise HeaderError(missing, [h.strip() for h in header if h.strip()],
                          f"file: the first line needs the columns {', '.join(wanted[k] for k in missing)}; "
                          f"it has {seen}")
    return found


class HeaderError(APIError):
    """The first line lacks a column the import needs: which ones, and what the line had instead."""

    def __init__(self, missing: list[str], found: list[str], message: str) -> None:
        super().__init__(422, message, fields={"file": [f"missing columns: {', '.join(missing)}"]})
        self.missing, self.found = missing, found


def check(tenant: Tenant, data: bytes) -> ImportReport:
    if len(data) > MAX_BYTES:
        raise APIError(413, "file: larger than 10 MB", fields={"file": ["too large"]})
    text, encoding = decode(data)
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise APIError(422, "file: empty", fields={"file": ["empty"]}) from None
    cols = _header_map(header)
    units = {u.id: u for u in db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == tenant.id)).scalars()}
    by_name: dict[str, list[OrgUnit]] = {}
    for u in units.values():
        by_name.setdefault(u.name, []).append(u)
    existing = set(db.session.execute(select(User.login_key).where(User.tenant_id == tenant.id)).scalars())
    seen: dict[str, int] = {}
    rows: list[Row] = []
    grantable = GRANTABLE.get(tenant.kind, ())
    for line, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(rows) >= MAX_ROWS:
            raise APIError(413, f"file: more than {MAX_ROWS} rows", fields={"file": ["too many rows"]})

        values = {key: (cells[i].strip() if i < len(cells) else "") for key, i in cols.items()}
        role_text = values.get("role", "")
        role = ROLES.get(_key(role_text), role_text) if role_text else ""
        row = Row(line, values["login_id"], values["display_name"], normalize_kana(values["name_kana"]), None,
                  role or None)
        try:
            # The one form of a login id: ＥＭＰ００１ and emp001 are one person (one key), here as at sign-in.
            row.login_id = normalize_login_id(row.login_id) if row.login_id else ""
            invisible = False
        except LoginIdError:
            invisible = not any(ch.isspace() for ch in row.login_id)  # a space has its own message below
        if invisible:
            row.problem("employee number: contains an invisible or control character; type it again")
        elif not row.login_id or len(row.login_id) > 254 or any(ch.isspace() for ch in row.login_id):
            row.problem("employee number: 1-254 characters without spaces")
        elif login_key(row.login_id) in existing:
            row.problem("employee number %(login_id)s is already a member", login_id=row.login_id)
        elif login_key(row.login_id) in seen:
            row.problem("employee number %(login_id)s also on line %(other)s", login_id=row.login_id,
                        other=seen[login_key(row.login_id)])
        else:
            seen[login_key(row.login_id)] = line
        if not row.display_name or len(row.display_name) > 100:
            row.problem("name: 1-100 characters")
        if not row.name_kana or not is_kana(row.name_kana) or len(row.name_kana) > 100:
            row.problem("reading: hiragana or katakana")
        unit_text = values.get("unit", "")
        if unit_text:
            if unit_text.isdigit() and int(unit_text) in units:
                row.unit_id = int(unit_text)
            elif len(by_name.get(unit_text, [])) == 1:
                row.unit_id = by_name[unit_text][0].id
            elif len(by_name.get(unit_text, [])) > 1:
                row.problem("unit %(unit)s names several units: use its id", unit=unit_text)
            else:
                row.problem("no unit %(unit)s in %(tenant)s", unit=unit_text, tenant=tenant.slug)
        if row.role and (row.role not in grantable or row.role in UNIT_SCOPED):
            words = [w for r, ws in ROLE_WORDS.items() if r in grantable and r not in UNIT_SCOPED for w in ws[1:2]]
            row.problem("role %(role)s: one of %(roles)s, or empty for a member", role=row.role,
                        roles=", ".join(words))
        rows.append(row)
    if not rows:
        raise APIError(422, "file: no member rows under the header", fields={"file": ["no rows"]})
    return ImportReport(rows, encoding)


def commit(tenant: Tenant, report: ImportReport, *, actor: str) -> int:
    """All or nothing: refuses the whole file if any row has a problem."""
    if not report.ok:
        raise APIError(422, f"{len(report.problems)} problems; nothing imported",
                       fields={"file": report.problems[:50]})
    now = utcnow()
    db.session.execute(insert(User), [
        {"tenant_id": tenant.id, "login_id": r.login_id, "login_key": login_key(r.login_id),
         "display_name": r.display_name, "name_kana": r.name_kana,
         "kana_key": kana_sort_key(r.name_kana), "password_hash": None, "status": "invited", "unit_id": r.unit_id,
         "created_at": now} for r in report.rows])
    with_roles = [r for r in report.rows if r.role]
    if with_roles:
        from federation.firewall.models import bump_policy_version

        ids = dict(db.session.execute(select(User.login_id, User.id).where(
            User.tenant_id == tenant.id, User.login_key.in_([login_key(r.login_id) for r in with_roles]))).all())
        db.session.execute(insert(RoleGrant), [
            {"tenant_id": tenant.id, "user_id": ids[r.login_id], "role": r.role, "unit_id": 0, "granted_by": actor,
             "granted_at": now} for r in with_roles])
        for r in with_roles:
            record("role.grant", actor=actor, tenant=tenant.slug,
                   data={"subject": f"user:{tenant.slug}/{r.login_id}", "role": r.role, "unit_id": None,
                         "source": "csv import"})
        bump_policy_version()
    record("members.import", actor=actor, tenant=tenant.slug,
           data={"created": len(report.rows), "roles": len(with_roles), "encoding": report.encoding})
    db.session.commit()
    return len(report.rows)


EXPORT_HEADER = ("社員番号", "氏名", "よみ", "所属", "役割", "状態")


def _cell(value: str) -> str:
    # A cell a spreadsheet would evaluate (=, +, -, @) is kept as text: an export must never run as a formula.
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def export_csv(tenant: Tenant) -> str:
    """Every member in 50-on order, with the columns the import reads (and their status)."""
    units = dict(db.session.execute(select(OrgUnit.id, OrgUnit.name).where(OrgUnit.tenant_id == tenant.id)).all())
    roles: dict[int, list[str]] = {}
    for user_id, role in db.session.execute(select(RoleGrant.user_id, RoleGrant.role).where(
            RoleGrant.tenant_id == tenant.id).order_by(RoleGrant.role)):
        roles.setdefault(user_id, []).append(role)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_HEADER)
    for user in db.session.execute(select(User).where(User.tenant_id == tenant.id)
                                   .order_by(User.kana_key, User.id)).scalars():
        writer.writerow([_cell(user.login_id), _cell(user.display_name), _cell(user.name_kana),
                         _cell(units.get(user.unit_id, "") if user.unit_id else ""),
                         " ".join(roles.get(user.id, [])), user.status])
    return out.getvalue()
