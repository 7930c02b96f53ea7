"""The real service worker in headless Chromium, fed by a real push through the local push service.

Chromium here cannot reach a vendor's push service, so the test replaces `PushManager.prototype.subscribe` in the
page (test side only) with one that hands back a subscription the local push service issued. Everything after that
is real: the page POSTs the subscription with its CSRF token, the server publishes and pywebpush encrypts and sends
to the local service, which verifies VAPID and decrypts; the decrypted payload is then delivered to the service
worker with the DevTools protocol's ServiceWorker.deliverPushMessage, and the notification it shows is read back with
registration.getNotifications(). A retraction closes it the same way."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from browser_world import CHROMIUM, CHROMIUM_ARGS, PHONE, PW, SCREENSHOTS, ServedWorld, browser_missing_reason

from devtools.local_push import LocalPushService

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(browser_missing_reason() is not None, reason=browser_missing_reason() or "")]

# Test side only: the browser's own subscribe() would call a vendor's push service, which this machine cannot reach.
FAKE_PUSH_MANAGER = """
(() => {
  const sub = %s;
  const subscribed = () => sessionStorage.getItem("fake-push") === "on";
  const fake = {
    endpoint: sub.endpoint, expirationTime: null, options: null,
    toJSON() { return {endpoint: sub.endpoint, expirationTime: null, keys: sub.keys}; },
    unsubscribe() { sessionStorage.removeItem("fake-push"); return Promise.resolve(true); },
  };
  PushManager.prototype.subscribe = function (options) {
    const key = new Uint8Array(options.applicationServerKey);
    sessionStorage.setItem("fake-push-options", JSON.stringify({
      userVisibleOnly: options.userVisibleOnly,
      key: btoa(String.fromCharCode.apply(null, key)).replace(/\\+/g, "-").replace(/\\//g, "_").replace(/=+$/, ""),
    }));
    sessionStorage.setItem("fake-push", "on");
    return Promise.resolve(fake);
  };
  PushManager.prototype.getSubscription = function () { return Promise.resolve(subscribed() ? fake : null); };
})();
"""

NOTIFICATIONS = """
() => navigator.serviceWorker.ready
  .then(r => r.getNotifications())
  .then(list => list.map(n => ({title: n.title, body: n.body, tag: n.tag, url: n.data && n.data.url})))
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorld]:
    world = ServedWorld(tmp_path_factory.mktemp("push-browser"))
    try:
        world.build()
        yield world
    finally:
        world.stop()


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_service_worker_shows_a_real_push_and_closes_it_on_retraction(served):
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with LocalPushService() as push, sync_playwright() as p:
        subscription = push.new_subscription()
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=PHONE, locale="ja-JP", base_url=served.base)
            context.set_default_timeout(15_000)
            context.grant_permissions(["notifications"], origin=served.base)
            context.add_init_script(FAKE_PUSH_MANAGER % json.dumps(subscription))
            page = context.new_page()

            registrations: list[dict] = []
            cdp = context.new_cdp_session(page)
            cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
            cdp.send("ServiceWorker.enable")

            page.goto("/signin")
            page.get_by_label("組合・産別のコード").fill("union-a")
            page.get_by_label("社員番号またはメールアドレス").fill("a2")
            page.get_by_label("パスワード").fill(PW)
            page.get_by_role("button", name="ログイン").click()
            page.wait_for_url("**/inbox")
            page.goto("/settings")
            switch = page.get_by_role("switch", name="この端末への通知")
            assert switch.get_attribute("aria-checked") == "false"
            with page.expect_request("**/api/v1/me/push-subscriptions") as posted:
                switch.click()
            request = posted.value
            assert request.method == "POST"
            assert request.headers.get("x-csrf-token")  # the cookie alone would be refused
            assert json.loads(request.post_data or "{}")["endpoint"] == subscription["endpoint"]
            page.wait_for_selector('[data-push-toggle][aria-checked="true"]')
            options = json.loads(page.evaluate("sessionStorage.getItem('fake-push-options')"))
            key = served.api("union-a", "a2").call("GET", "/api/v1/push/vapid-public-key")["public_key"]
            assert options == {"userVisibleOnly": True, "key": key}
            devices = served.api("union-a", "a2").call("GET", "/api/v1/me/push-subscriptions")
            assert [d["endpoint"] for d in devices] == [subscription["endpoint"]]
            page.screenshot(path=str(SCREENSHOTS / "push-on-phone.png"), full_page=True)

            notice_id = served.publish("【緊急】台風接近に伴う集会の延期")
            message = _wait(lambda: push.messages(subscription["endpoint"]), what="the push to arrive")[0]
            data = json.loads(message.payload)
            assert data["kind"] == "notice" and data["notice_id"] == notice_id
            assert message.topic == f"n{notice_id}"

            page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            live = _wait(lambda: [r for r in registrations if not r["isDeleted"]
                                  and r["scopeURL"] == served.base + "/"], what="the worker's registration")
            cdp.send("ServiceWorker.deliverPushMessage", {"origin": served.base,
                                                          "registrationId": live[-1]["registrationId"],
                                                          "data": message.payload.decode("utf-8")})
            shown = _wait(lambda: page.evaluate(NOTIFICATIONS), what="the notification")
            assert shown[0]["title"] == "【緊急】台風接近に伴う集会の延期"
            assert shown[0]["body"].startswith("情報通信産業労働組合連合会\n秋の研修会を開きます。")
            assert shown[0]["url"] == f"/notices/{notice_id}"

            served.api("fed", "staff").call("DELETE", f"/api/v1/tenants/fed/notices/{notice_id}")
            retraction = _wait(lambda: push.messages(subscription["endpoint"])[1:], what="the retraction")[0]
            assert json.loads(retraction.payload)["kind"] == "retract"
            assert retraction.topic == message.topic  # replaces the push if the device has not fetched it yet
            cdp.send("ServiceWorker.deliverPushMessage", {"origin": served.base,
                                                          "registrationId": live[-1]["registrationId"],
                                                          "data": retraction.payload.decode("utf-8")})
            _wait(lambda: page.evaluate(NOTIFICATIONS) == [], what="the notification to close")

            # A survey that opens pushes too; the notification leads to it, and the inbox lists it as waiting.
            survey = served.api("union-a", "aadmin").call("POST", "/api/v1/tenants/union-a/surveys", {
                "title": "年末一時金アンケート", "anonymous": True, "opens_at": "2026-01-01T00:00:00+09:00",
                "closes_at": "2099-01-01T00:00:00+09:00",
                "questions": [{"kind": "single", "text": "要求額は妥当ですか", "options": ["はい", "いいえ"]}]})
            opened = _wait(lambda: [m for m in push.messages(subscription["endpoint"])
                                    if json.loads(m.payload)["kind"] == "survey_opened"], what="the survey's push")[0]
            cdp.send("ServiceWorker.deliverPushMessage", {"origin": served.base,
                                                          "registrationId": live[-1]["registrationId"],
                                                          "data": opened.payload.decode("utf-8")})
            shown = _wait(lambda: page.evaluate(NOTIFICATIONS), what="the survey's notification")
            assert shown[0]["title"] == "年末一時金アンケート"
            assert shown[0]["url"] == f"/surveys/{survey['id']}"
            page.goto(shown[0]["url"])
            page.wait_for_url(f"**/t/union-a/surveys/{survey['id']}")
            page.goto("/inbox")
            todo = page.locator("#todo")
            assert "未回答のアンケート" in todo.inner_text() and "年末一時金アンケート" in todo.inner_text()

            # Turning the switch off removes the device on the server too.
            page.goto("/settings")
            with page.expect_request(lambda r: r.method == "DELETE" and "push-subscriptions" in r.url):
                switch.click()
            page.wait_for_selector('[data-push-toggle][aria-checked="false"]')
            assert served.api("union-a", "a2").call("GET", "/api/v1/me/push-subscriptions") == []
            context.close()
        finally:
            browser.close()


def test_the_service_worker_serves_the_offline_page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=PHONE, locale="ja-JP", base_url=served.base)
            page = context.new_page()
            page.goto("/signin")
            page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            page.reload()  # now controlled by the worker
            assert page.evaluate("Boolean(navigator.serviceWorker.controller)")
            context.set_offline(True)
            page.goto("/inbox")
            assert "オフラインです" in page.locator("h1").inner_text()
            page.screenshot(path=str(SCREENSHOTS / "offline-phone.png"), full_page=True)
            context.set_offline(False)
            context.close()
        finally:
            browser.close()
