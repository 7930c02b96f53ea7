"""The CSV import page: officers check a file (every row's problem listed, nothing changed), then import all rows or
none; members and other tenants cannot reach it; a form without its token is refused."""
from __future__ import annotations

import io

from web_support import Browser

GOOD = "社員番号,氏名,よみ,所属,役割\n30001,新人 一郎,しんじん いちろう,a本社支部,\n30002,新人 二郎,シンジン ジロウ,,\n"


def upload(browser: Browser, op: str, content: str, encoding: str = "utf-8", *, token: bool = True):  # type: ignore[no-untyped-def]
    data = {"op": op, "file": (io.BytesIO(content.encode(encoding)), "members.csv")}
    return browser.post("/t/union-a/members/import", data, token=token)


def test_check_lists_problems_in_japanese_and_changes_nothing_then_import_adds_everyone(world, app):
    admin = Browser(app, "union-a", "aadmin")
    bad = GOOD + "30001,重複 三郎,ちょうふく さぶろう,,\n"
    r = upload(admin, "import", bad, "cp932")
    assert r.status_code == 422
    page = r.get_data(as_text=True)
    assert "4行目" in page and "2行目と重複しています" in page and "何も取り込んでいません" in page
    members = admin.text("/t/union-a/members?q=しんじん")
    assert "新人 一郎" not in members
    r = upload(admin, "check", GOOD)
    assert r.status_code == 200 and "2行を取り込めます" in r.get_data(as_text=True)
    assert "新人 一郎" not in admin.text("/t/union-a/members?q=しんじん")
    r = upload(admin, "import", GOOD)
    assert r.status_code == 200 and "2人を取り込みました" in r.get_data(as_text=True)
    members = admin.text("/t/union-a/members?q=しんじん")
    assert "新人 一郎" in members and "新人 二郎" in members


def test_only_the_unions_own_member_managers_reach_the_page(world, app):
    assert Browser(app, "union-a", "a1").get("/t/union-a/members/import").status_code == 403
    assert Browser(app, "union-b", "badmin").get("/t/union-a/members/import").status_code == 404
    assert Browser(app, "fed", "fadmin").get("/t/union-a/members/import").status_code == 404
    assert Browser(app, "union-a", "aadmin").get("/t/union-a/members/import").status_code == 200


def test_an_upload_without_the_pages_token_is_refused(world, app):
    admin = Browser(app, "union-a", "aadmin")
    r = upload(admin, "import", GOOD, token=False)
    assert r.status_code == 403
    assert "新人 一郎" not in admin.text("/t/union-a/members?q=しんじん")


def test_english_headers_and_the_words_offices_write_for_roles_are_understood(world, app):
    admin = Browser(app, "union-a", "aadmin")
    english = ("Employee Number,Name,Reading,Unit,Role\n"
               "30011,新人 一郎,しんじん いちろう,a本社支部,組合員\n"
               "30012,新人 二郎,シンジン ジロウ,,member\n"
               "30013,新人 三郎,しんじん さぶろう,,組合編集者\n")
    r = upload(admin, "import", english)
    assert r.status_code == 200 and "3人を取り込みました" in r.get_data(as_text=True), r.get_data(as_text=True)
    roles = world.as_("union-a", "aadmin").get("/api/v1/tenants/union-a/roles").get_json()
    granted = {g["login_id"]: g["role"] for g in roles["items"]}
    assert granted.get("30013") == "union_editor" and "30011" not in granted and "30012" not in granted
    # 職員番号 (a city hall union's word) is the same column.
    r = upload(admin, "check", "職員番号,氏名,読み仮名\n30021,市職 花子,しょく はなこ\n")
    assert r.status_code == 200 and "1行を取り込めます" in r.get_data(as_text=True)


def test_a_missing_column_and_an_unknown_role_are_named_and_nothing_is_imported(world, app):
    admin = Browser(app, "union-a", "aadmin")
    r = upload(admin, "import", "番号,氏名\n30031,新人 四郎\n")
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and 'id="header-error"' in page
    assert "足りない列: 社員番号、よみ" in page and "1行目にある列名: 番号、氏名" in page
    r = upload(admin, "import", "社員番号,氏名,よみ,役割\n30032,新人 五郎,しんじん ごろう,委員長\n")
    page = r.get_data(as_text=True)
    assert r.status_code == 422 and "2行目" in page and "委員長" in page and "組合管理者" in page
    assert "新人" not in admin.text("/t/union-a/members?q=しんじん")
