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
