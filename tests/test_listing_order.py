"""The order unions and units are listed in: unions in 50-on order of their reading (not by their romaji slug),
blocks from north to south, councils by prefecture code (01 北海道 … 47 沖縄), on the pages and in the API's lists."""
from __future__ import annotations

from conftest import World
from web_support import Browser, visible_text

# Slug order (a, m, z) is the reverse of reading order (あ, み, わ); the middle one has no reading of its own and is
# listed by its name (katakana read as hiragana).
NEW_UNIONS = (("a-union", "ワカバ通信労組", "わかばつうしんろうそ"), ("m-union", "ミナト通信労組", None),
              ("z-union", "アサヒ通信労組", "アサヒツウシンロウソ"))
KANA_ORDER = ["アサヒ通信労組", "ミナト通信労組", "ワカバ通信労組"]


def _add_unions(world: World) -> None:
    from tenants import service as ts
    from tenants.models import Tenant

    ops = world.as_("platform", "ops")
    for slug, name, kana in NEW_UNIONS:
        body = {"slug": slug, "name": name, "kind": "union", **({"name_kana": kana} if kana else {})}
        r = ops.post("/api/v1/tenants", json=body)
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["name_kana"] == kana
    fadmin = world.as_("fed", "fadmin")
    for slug, _name, _kana in NEW_UNIONS:
        r = fadmin.post("/api/v1/federations/fed/affiliations",
                        json={"union": slug, "council_id": world.ids["council"]})
        assert r.status_code == 201, r.get_json()
    with world.app.app_context():
        from sqlalchemy import select

        from federation.extensions import db

        for slug, _name, _kana in NEW_UNIONS:
            ts.accept(db.session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one(), actor="operator:test")


def _in_page_order(text: str, names: list[str]) -> list[str]:
    assert all(n in text for n in names), [n for n in names if n not in text]
    return sorted(names, key=text.index)


def test_unions_are_listed_in_50_on_order_of_their_reading(world: World, app) -> None:  # type: ignore[no-untyped-def]
    _add_unions(world)
    tenants = world.as_("platform", "ops").get("/api/v1/tenants").get_json()
    new = {slug for slug, *_ in NEW_UNIONS}
    names = [t["name"] for t in tenants if t["slug"] in new]
    assert names == KANA_ORDER
    unions = [t["slug"] for t in tenants if t["kind"] == "union"]
    assert unions.index("z-union") < unions.index("m-union") < unions.index("a-union")

    affiliations = world.as_("fed", "fadmin").get("/api/v1/federations/fed/affiliations").get_json()["items"]
    order = [a["union"] for a in affiliations if a["union"] in ("a-union", "m-union", "z-union")]
    assert order == ["z-union", "m-union", "a-union"]

    # The compose page's audience picker (council → its unions), and the auditor's tenant picker.
    compose = visible_text(Browser(app, "fed", "staff").text("/t/fed/notices/new"))
    assert _in_page_order(compose, KANA_ORDER) == KANA_ORDER
    audit = Browser(app, "platform", "aud").text("/audit")
    assert _in_page_order(audit, ["z-union", "m-union", "a-union"]) == ["z-union", "m-union", "a-union"]


def test_a_union_reading_must_be_kana(shared_world: World) -> None:
    r = shared_world.as_("platform", "ops").post("/api/v1/tenants", json={
        "slug": "kanji-union", "name": "漢字労組", "kind": "union", "name_kana": "漢字"})
    assert r.status_code == 422 and "name_kana" in str(r.get_json())


def test_blocks_run_north_to_south_and_councils_by_prefecture_code(world: World, app) -> None:  # type: ignore[no-untyped-def]
    fadmin = world.as_("fed", "fadmin")

    def unit(name: str, kind: str, parent: int | None = None, prefecture: str | None = None, **extra) -> dict:  # type: ignore[no-untyped-def]
        r = fadmin.post("/api/v1/tenants/fed/units", json={"name": name, "kind": kind, "parent_id": parent,
                                                           "prefecture": prefecture, **extra})
        assert r.status_code == 201, r.get_json()
        return r.get_json()

    # Created out of order: the world has 関東 (東京都 13) and 近畿 (大阪府 27) already.
    kyushu = unit("九州・沖縄ブロック", "block")
    unit("沖縄県協", "council", kyushu["id"], "47")
    unit("福岡県協", "council", kyushu["id"], "40")
    hokkaido = unit("北海道ブロック", "block")
    unit("北海道協", "council", hokkaido["id"], "01")
    unit("神奈川県協", "council", world.ids["block"], "14")
    unit("茨城県協", "council", world.ids["block"], "08")
    tohoku = unit("東北ブロック", "block")
    assert (kyushu["position"], hokkaido["position"], tohoku["position"]) == (9, 1, 2)
    # A block whose name names no region goes after the known ones, unless its creator places it.
    unit("特別ブロック", "block")
    placed = unit("本部直轄", "block", position=0)
    expected = ["本部直轄", "北海道ブロック", "北海道協", "東北ブロック", "関東ブロック", "茨城県協", "東京県協",
                "神奈川県協", "近畿ブロック", "大阪県協", "九州・沖縄ブロック", "福岡県協", "沖縄県協", "特別ブロック"]
    assert placed["position"] == 0
    assert [u["name"] for u in fadmin.get("/api/v1/tenants/fed/units").get_json()] == expected

    page = visible_text(Browser(app, "fed", "fadmin").text("/t/fed/units"))
    assert _in_page_order(page, expected) == expected


def test_units_without_a_position_keep_the_order_they_were_created_in(world: World) -> None:
    """Branches and workplaces have no position by default: by creation (id), not by the text of their path."""
    admin = world.as_("union-a", "aadmin")
    names = [f"第{i}支部" for i in range(1, 13)]
    for name in names:
        assert admin.post("/api/v1/tenants/union-a/units", json={"name": name, "kind": "branch"}).status_code == 201
    listed = [u["name"] for u in admin.get("/api/v1/tenants/union-a/units").get_json() if u["name"] in names]
    assert listed == names
