"""Member CSV import: UTF-8 and Shift_JIS, a dry run that names every row's problem, all-or-nothing, and the same
one-line CLI errors as everywhere else."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

PROJECT = Path(__file__).resolve().parent.parent
GOOD = ("社員番号,氏名,よみ,所属,役割\n20001,山田 花子,やまだ はなこ,a本社支部,\n"
        "20002,青木 翔,アオキ ショウ,,union_editor\n")


def cli(app, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace(
        "postgresql+psycopg://", "postgresql://"), "MUSUBI_INSTANCE": str(tmp_path),
        "SECRET_KEY": "test-secret-key-0123456789abcdef"}
    return subprocess.run([sys.executable, "cli.py", *args], cwd=PROJECT, env=env, capture_output=True, text=True,
                          timeout=120)


def members(app, slug: str) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    from federation.extensions import db
    from tenants.models import Tenant, User

    with app.app_context():
        rows = db.session.execute(select(User.login_id, User.status, User.name_kana).join(
            Tenant, Tenant.id == User.tenant_id).where(Tenant.slug == slug)).all()
        return {r.login_id: (r.status, r.name_kana) for r in rows}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp932"])
def test_import_reads_utf8_and_shift_jis_and_creates_invited_members(world, app, tmp_path, encoding):
    path = tmp_path / "members.csv"
    path.write_bytes(GOOD.encode(encoding))
    r = cli(app, tmp_path, "members", "import", "union-a", str(path))
    assert r.returncode == 0, r.stderr
    assert "imported 2 members" in r.stdout
    got = members(app, "union-a")
    assert got["20001"] == ("invited", "やまだ はなこ")
    assert got["20002"] == ("invited", "アオキ ショウ")
    assert "20001" not in members(app, "union-b")  # the neighbour is untouched
    who = world.as_("union-a", "aadmin").get("/api/v1/tenants/union-a/roles").get_json()["items"]
    assert {"login_id": "20002", "role": "union_editor"} in [{"login_id": i["login_id"], "role": i["role"]}
                                                              for i in who]


def test_one_bad_row_changes_nothing_and_every_problem_is_named(world, app, tmp_path):
    from federation.audit.chain import AuditEntry
    from federation.extensions import db

    with app.app_context():
        before = db.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one()
    path = tmp_path / "bad.csv"
    path.write_text("社員番号,氏名,よみ,所属,役割\n20001,山田 花子,やまだ はなこ,,\n"
                    "20001,重複 太郎,ちょうふく たろう,,\n20003,漢字 読み,kanji,,\n"
                    "20004,所属 違い,しょぞく ちがい,存在しない支部,\n"
                    "a1,既存 会員,きぞん かいいん,,\n20006,役割 違い,やくわり ちがい,,fed_admin\n", encoding="utf-8")
    dry = cli(app, tmp_path, "members", "import", "union-a", str(path), "--dry-run")
    assert dry.returncode != 0
    lines = dry.stdout.splitlines()
    assert any(line.startswith("line 3:") and "also on line 2" in line for line in lines)
    assert any(line.startswith("line 4:") and "reading" in line for line in lines)
    assert any(line.startswith("line 5:") and "存在しない支部" in line for line in lines)
    assert any(line.startswith("line 6:") and "already a member" in line for line in lines)
    assert any(line.startswith("line 7:") and "fed_admin" in line for line in lines)
    assert dry.stderr.count("\n") == 1 and "5 problems" in dry.stderr
    real = cli(app, tmp_path, "members", "import", "union-a", str(path))
    assert real.returncode != 0 and "nothing imported" in real.stderr
    assert "20001" not in members(app, "union-a")
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(AuditEntry)).scalar_one() == before


def test_a_dry_run_of_a_good_file_changes_nothing(world, app, tmp_path):
    path = tmp_path / "members.csv"
    path.write_text(GOOD, encoding="utf-8")
    r = cli(app, tmp_path, "members", "import", "union-a", str(path), "--dry-run")
    assert r.returncode == 0 and "2 rows (UTF-8) would be imported" in r.stdout
    assert "20001" not in members(app, "union-a")


@pytest.mark.parametrize("content,needle", [
    (b"", "empty"),
    ("名前だけ\n山田\n".encode(), "the first line needs the columns 社員番号 (employee_number)"),
    ("社員番号,氏名,よみ\n".encode(), "no member rows"),
    (b"\xff\xfe\x00\x81\x00garbage", "neither UTF-8 nor Shift_JIS"),
])
def test_unusable_files_are_one_clear_line(world, app, tmp_path, content, needle):
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    r = cli(app, tmp_path, "members", "import", "union-a", str(path))
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_export_lists_every_member_in_kana_order_with_the_columns_the_import_reads(world, app, tmp_path):
    admin = world.as_("union-a", "aadmin")
    assert admin.patch("/api/v1/tenants/union-a/members/a2", json={"display_name": "=HYPERLINK(1)"}).status_code == 200
    r = admin.get("/api/v1/tenants/union-a/members/export")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    raw = r.get_data()
    assert raw.startswith("\ufeff".encode())  # Excel on Japanese Windows needs the BOM to read UTF-8
    rows = [line.split(",") for line in raw.decode("utf-8-sig").splitlines()]
    assert rows[0] == ["社員番号", "氏名", "よみ", "所属", "役割", "状態"]
    kana = [row[2] for row in rows[1:]]
    assert kana == ["あおき けん", "カトウ ショウ", "きょうせん ぶちょう", "しっこう いいんちょう", "わたなべ めぐみ"]
    by_login = {row[0]: row for row in rows[1:]}
    assert by_login["a2"][1] == "'=HYPERLINK(1)"  # kept as text, never evaluated
    assert by_login["aadmin"][4] == "union_admin" and by_login["a1"][3] == "a本社支部"
    assert "b1" not in by_login  # the neighbour's members are not in it
    out = tmp_path / "out.csv"
    r = cli(app, tmp_path, "members", "export", "union-a", str(out), "--encoding", "shift_jis")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().decode("cp932").splitlines()[0] == "社員番号,氏名,よみ,所属,役割,状態"


def test_only_the_unions_member_managers_may_export(world):
    assert world.as_("union-a", "a1").get("/api/v1/tenants/union-a/members/export").status_code == 403
    assert world.as_("union-a", "aeditor").get("/api/v1/tenants/union-a/members/export").status_code == 403
    for outsider in (("fed", "fadmin"), ("union-b", "badmin"), ("platform", "aud")):
        assert world.as_(*outsider).get("/api/v1/tenants/union-a/members/export").status_code == 404, outsider
