"""Every page of the web app, in real Chromium, as each kind of person opens it: a federation editor, a union admin,
a member on a phone, an auditor, and someone not signed in.

On each page, at 360 px: nothing scrolls sideways, and the signed-in see the bottom bar (at most five
destinations, the top menu folded away); at 1280 px the top menu is back and the bar gone. axe-core (run in the
page) finds no serious or critical violation at either width. Each page is photographed at both widths into
artifacts/screenshots/pages/ (docs/screenshots/pages/ is refreshed from them on request,
MUSUBI_UPDATE_DOCS_SCREENSHOTS=1).

"Every page" is checked, not assumed: each HTML page route of the app must be visited below, so a new page fails
this module until it is added."""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_world import PW, SCREENSHOTS, ServedWorld, browser_missing_reason, sign_in

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(browser_missing_reason() is not None, reason=browser_missing_reason() or "")]

PHONE_360 = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
SHOTS = SCREENSHOTS / "pages"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "screenshots" / "pages"

# Page routes that are not pages a person reads: files, redirects, switches and service endpoints.
NOT_PAGES = {
    "web.home", "web.ballot_from_push", "web.survey_from_push", "web.report_from_push", "web.report_csv",
    "web.switch_language", "web.switch_text_size",
    "web.manifest", "web.service_worker", "healthz", "readyz", "web.applications_export",
    "web.application_attachment", "web.document_download", "web.invitation_qr_png", "web.invitation_qr_svg",
}
SERIOUS = ("serious", "critical")


class PagesWorld(ServedWorld):
    """The browser world, with one of everything a page can show: notices of both kinds (one still a draft), a
    survey, an application form and an application, a document, an invitation with a registration waiting, a
    ballot, and an officer's one-time sign-in link."""

    def build(self) -> None:
        super().build()
        from federation.demo import one_page_pdf

        staff, aadmin, a1 = self.api("fed", "staff"), self.api("union-a", "aadmin"), self.api("union-a", "a1")
        ids = self.ids
        ids["fed_notice"] = self.publish("秋季セミナーのご案内")
        draft = staff.call("POST", "/api/v1/tenants/fed/notices", {
            "title": "定期大会の準備", "body": "議案の締切", "category": "meeting",
            "audience": {"units": [ids["council"]]}})
        ids["fed_draft"] = draft["id"]
        mine = aadmin.call("POST", "/api/v1/tenants/union-a/notices", {
            "title": "職場集会のお知らせ", "body": "昼休みに食堂で", "category": "general", "audience": {"all": True},
            "comments": True})
        aadmin.call("POST", f"/api/v1/tenants/union-a/notices/{mine['id']}/publish")
        ids["union_notice"] = mine["id"]
        # Two-way: a comment, a question answered for everyone, and the officers' channel with a reply.
        end = time.time() + 30
        while mine["id"] not in [i["notice"]["id"] for i in a1.call("GET", "/api/v1/me/inbox")["items"]]:
            assert time.time() < end, "the union notice never reached its member"
            time.sleep(0.2)
        a1.call("POST", f"/api/v1/tenants/union-a/notices/{mine['id']}/comments", {"body": "食堂の席が足りません"})
        asked = a1.call("POST", f"/api/v1/tenants/union-a/notices/{ids['fed_notice']}/comments",
                        {"body": "オンラインでも参加できますか", "consent": True})
        staff.call("POST", f"/api/v1/tenants/fed/notices/{ids['fed_notice']}/comments/{asked['id']}/answer",
                   {"body": "はい、URLを後日お送りします", "public": True})
        ids["officers_notice"] = self.publish("担当役員の皆さまへ", category="general", audience={"officers": True})
        aadmin.call("POST", f"/api/v1/tenants/union-a/notices/{ids['officers_notice']}/comments",
                    {"body": "A労組は3名参加します"})
        # An upward report, answered by union A twice (a correction).
        ids["report"] = staff.call("POST", "/api/v1/federations/fed/reports", {
            "title": "2027春闘 回答集計", "due_at": "2099-01-01T00:00:00+09:00", "audience": {"all": True},
            "fields": [{"key": "raise_yen", "label": "賃上げ額", "type": "integer", "unit": "円"},
                       {"key": "status", "label": "妥結状況", "type": "choice", "choices": ["妥結", "継続交渉"]},
                       {"key": "note", "label": "備考", "type": "text", "required": False}]})["id"]
        for yen in (12000, 12500):
            aadmin.call("PUT", f"/api/v1/unions/union-a/reports/{ids['report']}/answer",
                        {"values": {"raise_yen": yen, "status": "妥結"}})
        survey = aadmin.call("POST", "/api/v1/tenants/union-a/surveys", {
            "title": "職場環境アンケート", "anonymous": False, "opens_at": "2026-01-01T00:00:00+09:00",
            "closes_at": "2099-01-01T00:00:00+09:00",
            "questions": [{"kind": "single", "text": "残業は増えましたか", "options": ["増えた", "減った"]},
                          {"kind": "text", "text": "ご意見", "required": False}]})
        ids["survey"] = survey["id"]
        kind = aadmin.call("POST", "/api/v1/tenants/union-a/application-types", {
            "name": "慶弔費申請", "fields": [{"key": "event", "label": "事由", "kind": "text", "required": True},
                                         {"key": "day", "label": "日付", "kind": "date", "required": True}]})
        ids["application"] = a1.call("POST", "/api/v1/tenants/union-a/applications", {
            "type_id": kind["id"], "values": {"event": "結婚", "day": "2026-12-05"}})["id"]
        r = aadmin.session.post(f"{self.base}/api/v1/tenants/union-a/documents", data={"title": "定期大会 議案書"},
                                files={"file": ("議案書.pdf", one_page_pdf("議案書"), "application/pdf")}, timeout=30)
        assert r.status_code == 201, r.text
        ids["document"] = r.json()["id"]
        invitation = aadmin.call("POST", "/api/v1/tenants/union-a/invitations",
                                 {"valid_days": 30, "needs_approval": True})
        ids["invitation"], self.token = invitation["id"], invitation["token"]
        r = self.api_anonymous("POST", f"/api/v1/register/{self.token}", {
            "login_id": "E20261201", "display_name": "新入 花子", "name_kana": "しんにゅう はなこ",
            "password": "Shinnyu-2026-pass!"})
        assert r.status_code == 201, r.text
        aadmin.call("POST", "/api/v1/tenants/union-a/roles", {"login_id": "aadmin", "role": "election_officer"})
        ids["ballot"] = aadmin.call("POST", "/api/v1/tenants/union-a/ballots", {
            "title": "役員選挙", "kind": "election", "options": [{"label": "渡辺 恵"}, {"label": "青木 健"}],
            "opens_at": "2026-01-01T00:00:00+09:00", "closes_at": "2099-01-01T00:00:00+09:00"})["id"]
        ids["tallied"] = self._tallied_ballot(aadmin, a1)
        # Two more unions on the council whose slugs sort the other way from their readings (50音).
        fadmin = self.api("fed", "fadmin")
        for slug, name, kana in (("z-union", "相川通信労働組合", "あいかわつうしんろうどうくみあい"),
                                 ("a-union", "若葉建設労働組合", "わかばけんせつろうどうくみあい")):
            self.cli("tenant", "create", slug, "--name", name, "--kind", "union", "--kana", kana)
            self.cli("user", "create", slug, "admin", "--name", "執行 委員", "--kana", "しっこう いいん",
                     "--password", PW, "--role", "union_admin")
            fadmin.call("POST", "/api/v1/federations/fed/affiliations", {"union": slug, "council_id": ids["council"]})
            self.api(slug, "admin").call("POST", f"/api/v1/unions/{slug}/affiliation/accept")
        reset = aadmin.call("POST", "/api/v1/tenants/union-a/members/a3/reset")
        self.reset_path = "/" + reset["reset_url"].split("/", 3)[3]

    @staticmethod
    def _tallied_ballot(aadmin, a1) -> int:  # type: ignore[no-untyped-def]
        """A ballot run to its published result: two trustees, one vote, both decryptions, the tally."""
        from federation.ballots import crypto

        base = "/api/v1/tenants/union-a/ballots"
        bid = aadmin.call("POST", base, {
            "title": "規約改正の投票", "kind": "referendum", "options": [{"label": "賛成"}, {"label": "反対"}],
            "opens_at": "2026-01-01T00:00:00+09:00", "closes_at": "2099-01-01T00:00:00+09:00"})["id"]
        keys = [crypto.new_trustee_key() for _ in range(2)]
        for n, key in enumerate(keys):
            aadmin.call("POST", f"{base}/{bid}/trustees", {
                "name": f"trustee{n}", "public_key": crypto.hx(key.public),
                "key_proof": crypto.prove_key(key, f"union-a/{bid}/trustee")})
        aadmin.call("POST", f"{base}/{bid}/open")
        a1.call("POST", f"{base}/{bid}/votes", {"choices": [1]})
        aadmin.call("POST", f"{base}/{bid}/close")
        board = aadmin.call("GET", f"{base}/{bid}/board")
        sums = [(bytes.fromhex(c["a"]), bytes.fromhex(c["b"])) for c in board["encrypted_tally"]]
        for n, key in enumerate(keys):
            aadmin.call("POST", f"{base}/{bid}/decryptions", {
                "trustee": f"trustee{n}", "factors": crypto.partial_decryption(key, sums, board["fingerprint"])})
        aadmin.call("POST", f"{base}/{bid}/tally")
        return int(bid)

    def api_anonymous(self, method: str, path: str, body: dict) -> object:
        import requests

        return requests.request(method, self.base + path, json=body, timeout=30)

    def pages(self) -> dict[tuple[str, str] | None, list[tuple[str, str]]]:
        i = self.ids
        return {
            None: [("signin", "/signin"), ("signin-help", "/signin/help"), ("offline", "/offline"),
                   ("register", f"/register/{self.token}"), ("account-link", self.reset_path)],
            ("fed", "staff"): [
                ("fed-notices", "/t/fed/notices"), ("fed-compose", "/t/fed/notices/new"),
                ("fed-edit", f"/t/fed/notices/{i['fed_draft']}/edit"),
                ("fed-stats", f"/t/fed/notices/{i['fed_notice']}/stats"),
                ("fed-receipts", f"/t/fed/notices/{i['fed_notice']}/receipts"), ("fed-units", "/t/fed/units"),
                ("fed-questions", f"/t/fed/notices/{i['fed_notice']}/comments"),
                ("fed-officers-channel", f"/t/fed/notices/{i['officers_notice']}/comments"),
                ("fed-reports", "/t/fed/reports"), ("fed-report-new", "/t/fed/reports/new"),
                ("fed-report", f"/t/fed/reports/{i['report']}"), ("fed-kpi", "/t/fed/kpi"),
                ("fed-settings", "/settings")],
            ("union-a", "aadmin"): [
                ("union-inbox", "/inbox"), ("union-notices", "/t/union-a/notices"),
                ("union-compose", "/t/union-a/notices/new"), ("union-relay", "/t/union-a/relay"),
                ("union-members", "/t/union-a/members"), ("union-members-import", "/t/union-a/members/import"),
                ("union-units", "/t/union-a/units"), ("union-roles", "/t/union-a/roles"),
                ("union-cascade", "/t/union-a/cascade"), ("union-documents", "/t/union-a/documents"),
                ("union-document", f"/t/union-a/documents/{i['document']}"),
                ("union-document-delete", f"/t/union-a/documents/{i['document']}/delete"),
                ("union-surveys", "/t/union-a/surveys"), ("union-survey-new", "/t/union-a/surveys/new"),
                ("union-survey", f"/t/union-a/surveys/{i['survey']}"),
                ("union-survey-delete", f"/t/union-a/surveys/{i['survey']}/delete"),
                ("union-applications", "/t/union-a/applications"),
                ("union-application", f"/t/union-a/applications/{i['application']}"),
                ("union-application-types", "/t/union-a/applications/types"),
                ("union-invitations", "/t/union-a/invitations"),
                ("union-invitation", f"/t/union-a/invitations/{i['invitation']}"),
                ("union-invitations-pending", "/t/union-a/invitations/pending"),
                ("union-invitations-report", "/t/union-a/invitations/report"),
                ("union-ballots", "/t/union-a/ballots"), ("union-ballot", f"/t/union-a/ballots/{i['ballot']}"),
                ("union-ballot-result", f"/t/union-a/ballots/{i['tallied']}/result"),
                ("union-notice-stats", f"/t/union-a/notices/{i['union_notice']}/stats"),
                ("union-notice-comments", f"/t/union-a/notices/{i['union_notice']}/comments"),
                ("union-officers-notice", f"/notices/{i['officers_notice']}"),
                ("union-reports", "/t/union-a/reports"), ("union-report", f"/t/union-a/reports/{i['report']}"),
                ("union-kpi", "/t/union-a/kpi")],
            ("union-a", "a1"): [
                ("member-inbox", "/inbox"), ("member-notice", f"/notices/{i['fed_notice']}"),
                ("member-union-notice", f"/notices/{i['union_notice']}"),
                ("member-surveys", "/t/union-a/surveys"), ("member-survey", f"/t/union-a/surveys/{i['survey']}"),
                ("member-applications", "/t/union-a/applications"),
                ("member-application-new", "/t/union-a/applications/new"),
                ("member-application", f"/t/union-a/applications/{i['application']}"),
                ("member-documents", "/t/union-a/documents"), ("member-ballots", "/t/union-a/ballots"),
                ("member-settings", "/settings"), ("member-password", "/settings/password")],
            ("platform", "aud"): [
                ("audit-check", "/audit"), ("audit-who-can", "/audit/who-can"),
                ("audit-exposure", "/audit/exposure"), ("audit-log", "/audit/log"), ("auditor-settings", "/settings")],
        }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PagesWorld]:
    world = PagesWorld(tmp_path_factory.mktemp("pages"))
    try:
        world.build()
        yield world
    finally:
        world.stop()


def _axe_source() -> str:
    import axe_playwright_python

    return (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text(encoding="utf-8")


def _serious(page) -> list[str]:  # type: ignore[no-untyped-def]
    """axe-core's serious and critical violations on the page as it is now, one line each with where."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=_axe_source())
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       where: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return [f"{v['id']} ({v['impact']}): {v['help']} at {v['where']}" for v in result if v["impact"] in SERIOUS]


def _overflow(page) -> int:  # type: ignore[no-untyped-def]
    return int(page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth"))


def _narrow_names(page) -> list[int]:  # type: ignore[no-untyped-def]
    """Widths of the name cells of people tables that a phone squeezed below six characters (a name read one
    character per line)."""
    return page.evaluate("""() => [...document.querySelectorAll('table.cards tbody th[scope=row]')]
        .map(th => Math.round(th.getBoundingClientRect().width)).filter(w => w > 0 && w < 96)""")


def _photo(page, path: Path, size: dict[str, int]) -> None:  # type: ignore[no-untyped-def]
    """The whole page in one viewport as tall as the page (up to 4,000 px), so the phone's fixed bottom bar sits at
    the bottom of the picture rather than across the middle."""
    height = min(4000, max(size["height"], int(page.evaluate("document.documentElement.scrollHeight"))))
    page.set_viewport_size({"width": size["width"], "height": height})
    _next_frame(page)
    page.screenshot(path=str(path), type="jpeg", quality=70)
    page.set_viewport_size(size)


def _next_frame(page) -> None:  # type: ignore[no-untyped-def]
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


ROLES = [None, ("fed", "staff"), ("union-a", "aadmin"), ("union-a", "a1"), ("platform", "aud")]


@pytest.mark.parametrize("who", ROLES, ids=lambda w: "anonymous" if w is None else "/".join(w))
def test_every_page_fits_a_phone_has_the_bottom_bar_and_no_serious_accessibility_violation(chromium, served, who):
    SHOTS.mkdir(parents=True, exist_ok=True)
    # axe is put into each page by the test; the pages' own policy forbids inline scripts, so it is set aside here.
    context = chromium.new_context(viewport=PHONE_360, locale="ja-JP", base_url=served.base, bypass_csp=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    problems: list[str] = []
    try:
        if who is not None:
            sign_in(page, *who)
        for name, path in served.pages()[who]:
            page.set_viewport_size(PHONE_360)
            response = page.goto(path)
            page.wait_for_load_state("load")
            if response is None or response.status != 200:
                problems.append(f"{path}: status {response.status if response else None}")
                continue
            _next_frame(page)
            if (wide := _overflow(page)) > 0:
                problems.append(f"{path}: {wide} px too wide at 360 px")
            if narrow := _narrow_names(page):
                problems.append(f"{path}: names squeezed to {narrow} px at 360 px")
            bar, top = page.locator("nav.bar"), page.locator("nav.nav")
            if who is not None:
                entries = bar.locator(":scope > ul > li")
                if not bar.is_visible() or top.is_visible():
                    problems.append(f"{path}: at 360 px the bottom bar should show and the top menu fold away")
                elif not 2 <= entries.count() <= 5:
                    problems.append(f"{path}: the bottom bar has {entries.count()} entries")
                elif not bar.get_by_text("メニュー").is_visible():
                    problems.append(f"{path}: the bottom bar has no メニュー")
            problems += [f"{path} at 360 px: {v}" for v in _serious(page)]
            _photo(page, SHOTS / f"{name}-360.jpg", PHONE_360)
            page.set_viewport_size(DESKTOP)
            _next_frame(page)
            if who is not None and (bar.is_visible() or not top.is_visible()):
                problems.append(f"{path}: at 1280 px the top menu should show and the bottom bar hide")
            problems += [f"{path} at 1280 px: {v}" for v in _serious(page)]
            _photo(page, SHOTS / f"{name}-1280.jpg", DESKTOP)
    finally:
        context.close()
    assert not problems, "\n".join(problems)
    if os.environ.get("MUSUBI_UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for name, _ in served.pages()[who]:
            for width in ("360", "1280"):
                shutil.copyfile(SHOTS / f"{name}-{width}.jpg", DOCS / f"{name}-{width}.jpg")


def test_the_pages_above_are_every_page_of_the_app(served):
    from federation import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://", "SECRET_KEY": "pages-" + "x" * 32})
    adapter = app.url_map.bind("localhost")
    visited = set()
    for pages in served.pages().values():
        for _, path in pages:
            endpoint, _ = adapter.match(path.split("?")[0], method="GET")
            visited.add(endpoint)
    pages = {r.endpoint for r in app.url_map.iter_rules()
             if "GET" in r.methods and not r.rule.startswith(("/api/", "/static"))} - NOT_PAGES
    assert pages - visited == set(), f"pages no test above opens: {sorted(pages - visited)}"


def test_the_bottom_bar_leads_to_the_rest_through_its_menu(chromium, served):
    context = chromium.new_context(viewport=PHONE_360, locale="ja-JP", base_url=served.base)
    page = context.new_page()
    try:
        sign_in(page, "union-a", "aadmin")
        bar = page.locator("nav.bar")
        labels = [t.strip() for t in bar.locator(":scope > ul > li > a").all_inner_texts()]
        assert labels == ["受信箱", "お知らせ", "転送待ち", "申請"], labels
        assert bar.locator("[aria-current=page]").inner_text().strip() == "受信箱"
        menu = bar.locator(".bar-menu")
        assert not menu.is_visible()
        bar.get_by_text("メニュー").click()
        assert menu.is_visible()
        # The menu holds what the bar has no room for, and signing out; it stays on screen at 360 px.
        assert menu.get_by_role("link", name="組合員").is_visible()
        assert menu.get_by_role("button", name="ログアウト").is_visible()
        box = menu.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360 and box["y"] >= 0
        page.keyboard.press("Escape")
        assert not menu.is_visible()
        bar.get_by_text("メニュー").click()
        menu.get_by_role("link", name="組合員").click()
        page.wait_for_url("**/t/union-a/members")
        # A page from the menu marks メニュー as where one is.
        assert page.locator("nav.bar summary[aria-current=page]").count() == 1
        # The member's bar is their own: inbox, surveys, applications, documents.
        other = chromium.new_context(viewport=PHONE_360, locale="ja-JP", base_url=served.base).new_page()
        sign_in(other, "union-a", "a1")
        mine = [t.strip() for t in other.locator("nav.bar > ul > li > a").all_inner_texts()]
        assert mine == ["受信箱", "申請", "アンケート", "文書"], mine
        other.context.close()
    finally:
        context.close()


def test_unions_are_offered_in_50_on_order_of_their_reading(chromium, served):
    context = chromium.new_context(viewport=DESKTOP, locale="ja-JP", base_url=served.base)
    page = context.new_page()
    try:
        sign_in(page, "fed", "staff")
        page.goto("/t/fed/notices/new")
        for summary in page.locator("details[data-branch] > summary").all():
            if summary.is_visible():
                summary.click()
        names = ["A通信労働組合", "B建設労働組合", "相川通信労働組合", "若葉建設労働組合"]
        shown = [t.strip() for t in page.locator("details[data-branch] label").all_inner_texts()]
        # Romaji slugs would give a-union (若葉), union-a, union-b, z-union (相川); the readings give this.
        assert [n for t in shown for n in names if t.startswith(n)] == names, shown
    finally:
        context.close()
