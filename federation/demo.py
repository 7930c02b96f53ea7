"""`python cli.py demo`: a realistic federation to try musubi with: 9 regional blocks, 47 prefecture councils,
30 unions with branches and workplaces, members with Japanese names and readings, some unions opted in, a few
notices already out. Everything is written through the same services as the API (bulk inserts for members)."""
from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta

import click
from sqlalchemy import insert, select

from federation.audit.chain import record
from federation.auth.passwords import hash_password
from federation.extensions import db, utcnow
from tenants import service as ts
from tenants.kana import kana_sort_key
from tenants.models import OrgUnit, Tenant, User
from tenants.regions import council_name

ACTOR = "system:demo"
PASSWORD = "musubi-demo-2026"
FEDERATION = ("ictu", "情報通信産業労働組合連合会")

BLOCKS = {
    "北海道ブロック": ["01"],
    "東北ブロック": ["02", "03", "04", "05", "06", "07"],
    "関東ブロック": ["08", "09", "10", "11", "12", "13", "14", "19"],
    "北陸ブロック": ["15", "16", "17", "18"],
    "東海ブロック": ["20", "21", "22", "23", "24"],
    "近畿ブロック": ["25", "26", "27", "28", "29", "30"],
    "中国ブロック": ["31", "32", "33", "34", "35"],
    "四国ブロック": ["36", "37", "38", "39"],
    "九州・沖縄ブロック": ["40", "41", "42", "43", "44", "45", "46", "47"],
}
# (slug stem, name, its reading): the union is 〈name〉労働組合, read 〈reading〉ろうどうくみあい.
UNION_STEMS = [("sakura", "さくら通信", "さくらつうしん"), ("midori", "みどり電話", "みどりでんわ"),
               ("aozora", "あおぞらネット", "あおぞらねっと"), ("hikari", "ひかり回線", "ひかりかいせん"),
               ("kaze", "かぜ通信サービス", "かぜつうしんさーびす"),
               ("umi", "うみ情報システム", "うみじょうほうしすてむ"),
               ("yama", "やまびこテレコム", "やまびこてれこむ"), ("hoshi", "ほし放送", "ほしほうそう"),
               ("tsuki", "つきよみデータ", "つきよみでーた"), ("kawa", "かわせみ通信", "かわせみつうしん"),
               ("mori", "もりの光", "もりのひかり"), ("nami", "なみ通信建設", "なみつうしんけんせつ"),
               ("sora", "そら衛星", "そらえいせい"), ("hana", "はなケーブル", "はなけーぶる"),
               ("kumo", "くもクラウド", "くもくらうど"), ("ishi", "いしずえ通信", "いしずえつうしん"),
               ("taki", "たき電気通信", "たきでんきつうしん"), ("kiri", "きりしま通信", "きりしまつうしん"),
               ("yuki", "ゆきぐに電話", "ゆきぐにでんわ"), ("haru", "はるかぜネット", "はるかぜねっと"),
               ("natsu", "なつめ情報", "なつめじょうほう"), ("aki", "あきつ通信", "あきつつうしん"),
               ("fuyu", "ふゆの星通信", "ふゆのほしつうしん"), ("tomo", "ともしび通信", "ともしびつうしん"),
               ("michi", "みちのく回線", "みちのくかいせん"), ("shio", "しおさい通信", "しおさいつうしん"),
               ("ine", "いなほネット", "いなほねっと"), ("take", "たけのこ情報", "たけのこじょうほう"),
               ("kaede", "かえで通信", "かえでつうしん"), ("suzu", "すずらん電話", "すずらんでんわ")]
SURNAMES = [("佐藤", "さとう"), ("鈴木", "すずき"), ("高橋", "たかはし"), ("田中", "たなか"), ("伊藤", "いとう"),
            ("渡辺", "わたなべ"), ("山本", "やまもと"), ("中村", "なかむら"), ("小林", "こばやし"), ("加藤", "かとう"),
            ("吉田", "よしだ"), ("山田", "やまだ"), ("佐々木", "ささき"), ("山口", "やまぐち"), ("松本", "まつもと"),
            ("井上", "いのうえ"), ("木村", "きむら"), ("林", "はやし"), ("清水", "しみず"), ("阿部", "あべ"),
            ("青木", "あおき"), ("石川", "いしかわ"), ("前田", "まえだ"), ("藤田", "ふじた"), ("岡田", "おかだ")]
GIVEN = [("翔", "しょう"), ("恵", "めぐみ"), ("健", "けん"), ("陽菜", "ひな"), ("大輔", "だいすけ"), ("美咲", "みさき"),
         ("蓮", "れん"), ("結衣", "ゆい"), ("拓也", "たくや"), ("さくら", "さくら"), ("直樹", "なおき"), ("彩", "あや"),
         ("亮", "りょう"), ("真由美", "まゆみ"), ("誠", "まこと"), ("愛", "あい"), ("隆", "たかし"), ("千尋", "ちひろ")]


def build_demo(*, members: int = 3000, progress: bool = False, seed: int = 2026) -> Iterator[str]:
    rng = random.Random(seed)
    existing = db.session.execute(select(Tenant).where(Tenant.slug == FEDERATION[0])).scalar_one_or_none()
    if existing is None:
        _build(rng, members, progress)
    else:
        yield "the demo data is already there; its sign-in lines:"
    fed_slug, _ = FEDERATION
    first_union = db.session.execute(
        select(Tenant.slug).where(Tenant.kind == "union").order_by(Tenant.id).limit(1)).scalar_one()
    yield ("start the web service with `python cli.py serve` (--port to choose one) and sign in at the address it "
           "prints, or POST /api/v1/auth/login:")
    yield f"  federation editor  tenant={fed_slug:<14} login_id=staff    password={PASSWORD}"
    yield f"  union admin        tenant={first_union:<14} login_id=10001    password={PASSWORD}"
    yield f"  member             tenant={first_union:<14} login_id=10003    password={PASSWORD}"
    yield f"  auditor            tenant={'platform':<14} login_id=auditor  password={PASSWORD}"


def _build(rng: random.Random, members: int, progress: bool) -> None:
    pw = hash_password(PASSWORD)  # one hash for every demo account: hashing thousands would take minutes
    platform = db.session.execute(select(Tenant).where(Tenant.slug == "platform")).scalar_one()
    for login, name, kana, role in (("auditor", "監査 太郎", "かんさ たろう", "auditor"),
                                    ("admin", "運用 花子", "うんよう はなこ", "platform_admin")):
        u = ts.create_user(platform, login_id=login, display_name=name, name_kana=kana, password=None,
                           password_hash=pw, actor=ACTOR)
        ts.grant_role(platform, u, role, None, actor=ACTOR)
    fed = ts.create_tenant(FEDERATION[0], FEDERATION[1], "federation", actor=ACTOR)
    councils = []
    for block_name, prefs in BLOCKS.items():
        block = ts.create_unit(fed, name=block_name, kind="block", parent_id=None, prefecture=None, actor=ACTOR)
        for code in prefs:
            # 東京都協, 北海道協, 大阪府協, 神奈川県協: the prefecture's own name, suffix and all, then 協.
            councils.append(ts.create_unit(fed, name=council_name(code), kind="council", parent_id=block.id,
                                           prefecture=code, actor=ACTOR))
    for login, name, kana, role in (("admin", "書記長 一郎", "しょきちょう いちろう", "fed_admin"),
                                    ("staff", "教宣 局子", "きょうせん きょくこ", "fed_editor")):
        u = ts.create_user(fed, login_id=login, display_name=name, name_kana=kana, password=None, password_hash=pw,
                           actor=ACTOR)
        ts.grant_role(fed, u, role, None, actor=ACTOR)
    kanto = next(c for c in councils if c.prefecture == "13")
    u = ts.create_user(fed, login_id="tokyo", display_name="東京都協 事務局",
                       name_kana="とうきょうときょう じむきょく", password=None, password_hash=pw, actor=ACTOR)
    ts.grant_role(fed, u, "unit_editor", kanto.id, actor=ACTOR)

    per_union = max(4, members // len(UNION_STEMS))
    bar = click.progressbar(UNION_STEMS, label="building 30 unions", file=None) if progress else None
    items = bar if bar is not None else UNION_STEMS
    if bar is not None:
        bar.__enter__()
    try:
        for n, (stem, name, reading) in enumerate(items):
            _union(rng, fed, councils, n, stem, name, reading, per_union, pw)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    _notices(fed)


def _union(rng: random.Random, fed: Tenant, councils: list, n: int, stem: str, name: str, reading: str, count: int,
           pw: str) -> None:
    union = ts.create_tenant(f"{stem}-roso", f"{name}労働組合", "union", name_kana=f"{reading}ろうどうくみあい",
                             actor=ACTOR)
    branches = []
    for b in range(rng.randint(2, 3)):
        branch = ts.create_unit(union, name=["本社支部", "東日本支部", "西日本支部"][b], kind="branch", parent_id=None,
                                prefecture=None, actor=ACTOR)
        workplaces = [ts.create_unit(union, name=f"{branch.name[:-2]}第{w + 1}分会", kind="workplace",
                                     parent_id=branch.id, prefecture=None, actor=ACTOR) for w in range(2)]
        branches.append((branch, workplaces))
    # The KPI board's figures (docs/kpi.md): a roster larger than those registered, and registrations spread over
    # the past year and a half with a few this month. Its own generator keeps the rest of the demo as it was.
    kpi_rng = random.Random(f"kpi-{n}")
    union.roster_size = round(count / kpi_rng.uniform(0.55, 0.95))
    now = utcnow()
    rows = []
    for i in range(count):
        joined = now - timedelta(days=kpi_rng.uniform(0, 540)) if kpi_rng.random() > 0.04 else now
        sur, sur_kana = rng.choice(SURNAMES)
        given, given_kana = rng.choice(GIVEN)
        _, workplaces = branches[i % len(branches)]
        kana = f"{sur_kana} {given_kana}"
        rows.append({"tenant_id": union.id, "login_id": str(10001 + i), "login_key": str(10001 + i),
                     "display_name": f"{sur} {given}",
                     "name_kana": kana, "kana_key": kana_sort_key(kana), "password_hash": pw, "status": "active",
                     "unit_id": workplaces[i % 2].id, "created_at": joined})
    db.session.execute(insert(User), rows)
    record("members.import", actor=ACTOR, tenant=union.slug, data={"created": count, "source": "demo"})
    db.session.commit()
    users = {u.login_id: u for u in db.session.execute(
        select(User).where(User.tenant_id == union.id, User.login_id.in_(["10001", "10002"]))).scalars()}
    ts.grant_role(union, users["10001"], "union_admin", None, actor=ACTOR)
    ts.grant_role(union, users["10002"], "union_editor", None, actor=ACTOR)
    if n % 10 == 9:
        return  # every tenth union runs on its own, outside the federation
    council = councils[(n * 7) % len(councils)] if n else next(c for c in councils if c.prefecture == "13")
    ts.invite(fed, union.slug, council.id, actor="user:ictu/admin")
    ts.accept(union, actor=f"user:{union.slug}/10001")
    if n % 3 != 2:
        ts.set_cascade(union, "opted_in", actor=f"user:{union.slug}/10001")


def _notices(fed: Tenant) -> None:
    from federation.auth.service import subject_of
    from federation.notices import service as ns

    staff = db.session.execute(select(User).where(User.tenant_id == fed.id, User.login_id == "staff")).scalar_one()
    subject = subject_of(staff)
    starts = (utcnow() + timedelta(days=10)).replace(hour=9, minute=0, second=0, microsecond=0)
    seminar = ns.create_notice(fed, staff, subject, {
        "title": "2027春闘 学習会のご案内",
        "body": "春闘に向けた学習会を開催します。\n\n- 講師: 中央執行委員\n- 対象: 全組合員\n\n"
                "**出席** を押すと、氏名・よみ・組合名が主催者に共有されます。",
        "category": "seminar", "audience": {"all": True},
        "event": {"starts_at": starts, "ends_at": starts + timedelta(hours=2), "place": "東京・連合会館",
                  "online_url": "https://meet.example.jp/shunto"}})
    ns.publish_now(seminar, subject)
    urgent = ns.create_notice(fed, staff, subject, {
        "title": "【緊急】台風接近に伴う安全確保のお願い",
        "body": "不要不急の外出は控え、安全を最優先してください。",
        "category": "urgent", "audience": {"all": True}})
    ns.publish_now(urgent, subject)
    first = db.session.execute(select(Tenant).where(Tenant.kind == "union").order_by(Tenant.id).limit(1)).scalar_one()
    admin = db.session.execute(select(User).where(User.tenant_id == first.id, User.login_id == "10001")).scalar_one()
    internal = ns.create_notice(first, admin, subject_of(admin), {
        "title": "定期大会 議案書の配布について",
        "body": "第25回定期大会の議案書を配布します。職場討議をお願いします。",
        "category": "meeting", "audience": {"all": True}})
    ns.publish_now(internal, subject_of(admin))
    _union_space(first, admin)
    _report(fed, subject)
    from federation import jobs

    jobs.drain(timeout=300)


def _report(fed: Tenant, subject) -> None:  # type: ignore[no-untyped-def]
    """A 春闘 report request to every affiliated union, answered by about two thirds of them (one corrected once):
    the answers page has totals per council and block and a list of who is missing."""
    from federation.auth.service import subject_of
    from federation.reports import service as reports
    from federation.reports.schemas import ReportIn
    from tenants.models import Affiliation

    request = reports.create(fed, subject, ReportIn().load({
        "title": "2027春闘 第1次回答集計", "due_at": (utcnow() + timedelta(days=14)).isoformat(),
        "audience": {"all": True},
        "fields": [{"key": "raise_yen", "label": "賃上げ額（平均）", "type": "integer", "unit": "円"},
                   {"key": "raise_pct", "label": "賃上げ率", "type": "decimal", "unit": "%"},
                   {"key": "status", "label": "妥結状況", "type": "choice", "choices": ["妥結", "継続交渉", "未回答"]},
                   {"key": "note", "label": "特記事項", "type": "text", "required": False}]}))
    unions = db.session.execute(select(Tenant).join(Affiliation, Affiliation.union_id == Tenant.id).where(
        Affiliation.federation_id == fed.id, Affiliation.status == "active").order_by(Tenant.id)).scalars().all()
    for n, union in enumerate(unions):
        if n % 3 == 2:
            continue  # not answered yet
        admin = db.session.execute(select(User).where(User.tenant_id == union.id, User.login_id == "10001")
                                   ).scalar_one()
        yen = 9000 + (n * 1370) % 6000
        values = {"raise_yen": yen, "raise_pct": round(yen / 3100, 2), "status": "妥結" if n % 4 else "継続交渉"}
        reports.submit(union, subject_of(admin), request, values)
        if n == 0:
            reports.submit(union, subject_of(admin), request, {**values, "raise_yen": yen + 500,
                                                               "note": "一時金は別途交渉"})


def one_page_pdf(title: str) -> bytes:
    """A one-page PDF with a correct cross-reference table and its title in the document information: any reader
    (a phone's viewer, the upload's content check) accepts it. The demo's documents and the browser tests use it."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
               b"<< /Title <FEFF" + title.encode("utf-16-be").hex().upper().encode() + b"> >>"]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def _union_space(union: Tenant, admin: User) -> None:
    """The first union's own space, so a trial shows every page with something on it: the congress documents, a
    survey, a 慶弔費 form with one application waiting, and an invitation for new hires. Every body goes through the
    API's own schema and service, as an officer's request would."""
    import io

    from werkzeug.datastructures import FileStorage

    from federation.auth.service import subject_of
    from federation.space.applications import service as apps
    from federation.space.applications.schemas import ApplicationTypeIn
    from federation.space.documents import service as docs
    from federation.space.documents.schemas import DocumentForm
    from federation.space.invitations import service as invitations
    from federation.space.invitations.schemas import InvitationIn
    from federation.space.surveys import service as surveys
    from federation.space.surveys.schemas import SurveyIn

    people = {u.login_id: u for u in db.session.execute(
        select(User).where(User.tenant_id == union.id, User.login_id.in_(["10002", "10003"]))).scalars()}
    editor, member = people["10002"], people["10003"]
    title = "第25回定期大会 議案書"
    docs.create_document(union, editor, subject_of(editor),
                         DocumentForm().load({"title": title, "folder": "定期大会", "tags": "大会,議案"}),
                         FileStorage(io.BytesIO(one_page_pdf(title)), filename=f"{title}.pdf"))
    now = utcnow()
    surveys.create_survey(union, editor, SurveyIn().load({
        "title": "2027春闘 要求アンケート", "description": "職場の声を要求づくりに生かします。無記名です。",
        "anonymous": True, "opens_at": (now - timedelta(hours=1)).isoformat(),
        "closes_at": (now + timedelta(days=14)).isoformat(),
        "questions": [
            {"kind": "single", "text": "今年の賃上げ要求で最も重視するものは",
             "options": ["ベースアップ", "一時金", "手当"]},
            {"kind": "multiple", "text": "改善してほしい働き方(複数可)",
             "options": ["残業削減", "在宅勤務", "休暇取得"]},
            {"kind": "text", "text": "ご意見・ご要望", "required": False}]}))
    kind = apps.create_type(union, admin, ApplicationTypeIn().load({
        "name": "慶弔費申請", "description": "結婚・出産・弔事の際に、組合規約に基づき慶弔費を給付します。",
        "fields": [{"key": "event", "label": "事由", "kind": "choice", "required": True,
                    "choices": ["結婚", "出産", "弔事"]},
                   {"key": "date", "label": "年月日", "kind": "date", "required": True},
                   {"key": "note", "label": "備考", "kind": "text"}],
        "approver_role": "union_editor", "second_approver_role": "union_admin"}))
    apps.submit(union, member, kind.id, {"event": "出産", "date": now.date().isoformat(), "note": "第一子です"})
    head_office = db.session.execute(select(OrgUnit).where(OrgUnit.tenant_id == union.id, OrgUnit.kind == "branch")
                                     .order_by(OrgUnit.id).limit(1)).scalar_one()
    invitations.create(union, admin, InvitationIn().load({"unit_id": head_office.id, "label": "2027年度 新入社員",
                                                          "valid_days": 60}))
