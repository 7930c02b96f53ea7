"""`python cli.py demo`: the embedded trial builds a federation whose pages all have something on them, through the
same services as real use, and running it twice changes nothing."""
from __future__ import annotations

from sqlalchemy import func, select


def test_demo_builds_a_federation_with_a_union_space_to_look_at(app):
    from federation.audit.chain import verify
    from federation.demo import PASSWORD, build_demo
    from federation.extensions import db
    from federation.space.applications.models import Application
    from federation.space.documents.models import Document
    from federation.space.invitations.models import Invitation
    from federation.space.surveys.models import Survey
    from tenants.models import Tenant

    with app.app_context():
        lines = list(build_demo(members=60))
        assert any("union admin" in line and PASSWORD in line for line in lines)
        first = db.session.execute(select(Tenant).where(Tenant.kind == "union").order_by(Tenant.id).limit(1)
                                   ).scalar_one()

        def count(model) -> int:  # type: ignore[no-untyped-def]
            return db.session.execute(select(func.count()).select_from(model)
                                      .where(model.tenant_id == first.id)).scalar_one()

        assert [count(m) for m in (Document, Survey, Application, Invitation)] == [1, 1, 1, 1]
        _councils_are_named_and_ordered_as_a_federation_does()
        # Only the first union has a space filled in: nothing leaks into the others.
        assert db.session.execute(select(func.count()).select_from(Document)).scalar_one() == 1
        _a_report_request_is_partly_answered()
        assert verify().ok
        again = list(build_demo(members=60))
        assert again[0].startswith("the demo data is already there")
        assert [count(m) for m in (Document, Survey, Application, Invitation)] == [1, 1, 1, 1]
    client = app.test_client()
    r = client.post("/api/v1/auth/login", json={"tenant": first.slug, "login_id": "10003", "password": PASSWORD})
    assert r.status_code == 200
    headers = {"Authorization": f"Bearer {r.get_json()['token']}"}
    titles = [i["notice"]["title"] for i in client.get("/api/v1/me/inbox", headers=headers).get_json()["items"]]
    assert "2027春闘 学習会のご案内" in titles and "定期大会 議案書の配布について" in titles
    docs = client.get(f"/api/v1/tenants/{first.slug}/documents", headers=headers).get_json()["items"]
    assert [d["title"] for d in docs] == ["第25回定期大会 議案書"]
    download = client.get(f"/api/v1/tenants/{first.slug}/documents/{docs[0]['id']}/download", headers=headers)
    assert download.status_code == 200 and download.data.startswith(b"%PDF-")


def _a_report_request_is_partly_answered() -> None:
    """The federation's report request: two of every three affiliated unions answered, the first one twice."""
    from federation.auth.service import subject_of
    from federation.extensions import db
    from federation.reports import service as reports
    from federation.reports.models import ReportAnswer, ReportRequest
    from tenants.models import Tenant, User

    fed = db.session.execute(select(Tenant).where(Tenant.slug == "ictu")).scalar_one()
    staff = db.session.execute(select(User).where(User.tenant_id == fed.id, User.login_id == "staff")).scalar_one()
    [request] = db.session.execute(select(ReportRequest)).scalars().all()
    data = reports.answers(request, subject_of(staff))
    assert data["addressed"] == 27 and data["answered"] == 18 and len(data["unanswered"]) == 9
    assert db.session.execute(select(func.count()).select_from(ReportAnswer)).scalar_one() == 19
    assert sum(c["answered"] for c in data["councils"]) == 18


def _councils_are_named_and_ordered_as_a_federation_does() -> None:
    """Each council takes its prefecture's own name (東京都, 北海道, 大阪府, 京都府, 神奈川県) and 協; blocks run north
    to south and the councils of each by prefecture code; unions come in 50-on order of their reading."""
    from federation.extensions import db
    from tenants import reads, service
    from tenants.models import Tenant

    fed = db.session.execute(select(Tenant).where(Tenant.slug == "ictu")).scalar_one()
    units = service.units_of(fed)
    councils = {u.prefecture: u.name for u in units if u.kind == "council"}
    assert len(councils) == 47
    assert (councils["01"], councils["13"], councils["26"], councils["27"], councils["14"]) == (
        "北海道協", "東京都協", "京都府協", "大阪府協", "神奈川県協")
    assert not any(name.endswith(("都県協", "府県協", "道県協")) or name == "東京県協" for name in councils.values())
    blocks = [u.name for u in units if u.kind == "block"]
    assert blocks == ["北海道ブロック", "東北ブロック", "関東ブロック", "東海ブロック", "北陸ブロック", "近畿ブロック",
                      "中国ブロック", "四国ブロック", "九州・沖縄ブロック"]
    in_order = [u.prefecture for u in units if u.kind == "council"]
    by_block: dict[int, list[str]] = {}
    for u in units:
        if u.kind == "council":
            by_block.setdefault(u.parent_id, []).append(u.prefecture)
    assert all(codes == sorted(codes) for codes in by_block.values()) and in_order[0] == "01"
    unions = [t for t in reads.all_tenants() if t.kind == "union"]
    assert len(unions) == 30 and all(t.name_kana for t in unions)
    assert [t.kana_key for t in unions] == sorted(t.kana_key for t in unions)
    # あおぞら before あきつ by reading, although "aki-roso" comes before "aozora-roso" by slug.
    assert [t.slug for t in unions[:2]] == ["aozora-roso", "aki-roso"]
