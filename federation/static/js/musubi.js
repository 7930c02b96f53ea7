// musubi's page script. The pages work without it; it adds push notifications, the live audience count, the
// Markdown preview in place and the live stats. Writes go to the JSON API with the session's CSRF token.
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function api(method, path, body) {
    return fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return String(values[key]); });
  }

  // --- the service worker and push ------------------------------------------------------------------------------

  var pushSupported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(function () { /* offline page only */ });
  }

  function base64UrlToBytes(text) {
    var padded = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
    var raw = atob(padded);
    var out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }

  function setupPush(box) {
    if (!pushSupported || !csrfToken()) return;
    var toggle = box.querySelector("[data-push-toggle]");
    var state = box.querySelector("[data-push-state]");
    var labelEl = box.querySelector(".switch-label");
    box.hidden = false;

    function show(on, message) {
      toggle.setAttribute("aria-checked", on ? "true" : "false");
      labelEl.textContent = labelEl.getAttribute(on ? "data-label-on" : "data-label-off");
      state.textContent = state.getAttribute("data-" + (message || (on ? "on" : "off")));
    }

    function current() {
      return navigator.serviceWorker.ready.then(function (reg) { return reg.pushManager.getSubscription(); });
    }

    current().then(function (sub) {
      if (Notification.permission === "denied") show(false, "denied");
      else show(Boolean(sub));
      // The inbox offers the switch only until it is on; settings always shows it.
      if (sub && box.hasAttribute("data-hide-when-on")) box.hidden = true;
    });

    function turnOn() {
      return Notification.requestPermission().then(function (permission) {
        if (permission !== "granted") { show(false, "denied"); return; }
        return Promise.all([
          navigator.serviceWorker.ready,
          fetch("/api/v1/push/vapid-public-key", { credentials: "same-origin" }).then(function (r) {
            if (!r.ok) throw new Error("no key");
            return r.json();
          }),
        ]).then(function (both) {
          return both[0].pushManager.subscribe({
            userVisibleOnly: true, applicationServerKey: base64UrlToBytes(both[1].public_key),
          });
        }).then(function (sub) {
          var json = typeof sub.toJSON === "function" ? sub.toJSON() : sub;
          return api("POST", "/api/v1/me/push-subscriptions", {
            endpoint: json.endpoint, expirationTime: json.expirationTime || null,
            keys: { p256dh: json.keys.p256dh, auth: json.keys.auth },
          });
        }).then(function (r) {
          if (!r.ok) throw new Error("refused");
          show(true);
        });
      });
    }

    function turnOff() {
      return current().then(function (sub) {
        if (!sub) { show(false); return; }
        var json = typeof sub.toJSON === "function" ? sub.toJSON() : sub;
        return api("DELETE", "/api/v1/me/push-subscriptions", { endpoint: json.endpoint })
          .then(function () { return sub.unsubscribe(); })
          .then(function () { show(false); });
      });
    }

    toggle.addEventListener("click", function () {
      var on = toggle.getAttribute("aria-checked") === "true";
      toggle.disabled = true;
      (on ? turnOff() : turnOn()).catch(function () { show(on, "failed"); }).then(function () {
        toggle.disabled = false;
      });
    });
  }

  // --- compose: shown-when-checked fields, the audience tree, the live count, the preview ------------------------

  function setupToggles(form) {
    var toggles = form.querySelectorAll("[data-toggle]");
    function sync() {
      toggles.forEach(function (input) {
        var target = document.getElementById(input.getAttribute("data-toggle"));
        if (!target) return;
        target.hidden = !input.checked;
        // Hidden fields are not sent: what the writer cannot see is not saved either.
        target.querySelectorAll("input, select, textarea").forEach(function (f) { f.disabled = !input.checked; });
      });
    }
    form.addEventListener("change", sync);
    sync();
  }

  function setupAudience(form) {
    var reach = form.querySelector("[data-reach]");
    var all = form.querySelector("[data-all]");
    var tree = form.querySelector("[data-tree]");
    var url = form.getAttribute("data-count-url");
    var kind = form.getAttribute("data-kind");
    if (!reach) return;

    function descendants(input) {
      var li = input.closest("li");
      return li ? li.querySelectorAll(":scope > details > ul [data-node], :scope > ul [data-node]") : [];
    }

    // A checked unit covers everything under it: those boxes show as included and are not sent twice.
    function syncTree() {
      if (!tree) return;
      var nodes = tree.querySelectorAll("[data-node]");
      nodes.forEach(function (n) { n.disabled = Boolean(all && all.checked); });
      if (all && all.checked) return;
      nodes.forEach(function (n) {
        if (n.checked && !n.disabled) {
          descendants(n).forEach(function (d) { d.checked = true; d.disabled = true; });
        }
      });
    }

    var officers = form.querySelector('input[name="audience_officers"]');
    function audience() {
      var channel = officers && officers.checked;
      if (all && all.checked) return channel ? { officers: true } : { all: true };
      var out = channel ? { officers: true } : {};
      var units = [], unions = [];
      form.querySelectorAll('input[name="audience_unit"]:checked:not(:disabled)').forEach(function (n) {
        units.push(parseInt(n.value, 10));
      });
      form.querySelectorAll('input[name="audience_union"]:checked:not(:disabled)').forEach(function (n) {
        unions.push(n.value);
      });
      if (units.length) out.units = units;
      if (unions.length) out.unions = unions;
      return out;
    }

    var timer = null, seq = 0;
    function count() {
      var body = audience();
      if (!Object.keys(body).length || (body.officers && Object.keys(body).length === 1 && !(all && all.checked))) {
        reach.textContent = reach.getAttribute("data-none"); return;
      }
      var mine = ++seq;
      api("POST", url, { audience: body }).then(function (r) { return r.ok ? r.json() : null; }).then(function (n) {
        if (mine !== seq || !n) return;
        if (body.officers) {
          reach.textContent = fill(reach.getAttribute("data-officers"), { officers: n.officers, relay: n.relay_unions });
          return;
        }
        var text = fill(reach.getAttribute("data-direct"), { members: n.members, unions: n.unions });
        if (kind === "federation" && n.relay_unions) {
          text += "・" + fill(reach.getAttribute("data-relay"), { relay: n.relay_unions });
        }
        reach.textContent = text;
      }).catch(function () { /* the count is a help, not a gate */ });
    }

    form.addEventListener("change", function (event) {
      var t = event.target;
      if (t.matches && t.matches("[data-node]") && !t.checked) {
        descendants(t).forEach(function (d) { d.checked = false; d.disabled = false; });
      }
      if (t === all || t === officers || (t.matches && t.matches("[data-node]"))) {
        syncTree();
        clearTimeout(timer);
        timer = setTimeout(count, 150);
      }
    });
    syncTree();
    if (Object.keys(audience()).length) count();
  }

  function setupPreview(form) {
    var button = form.querySelector("[data-preview-button]");
    var box = form.querySelector("[data-preview]");
    var body = form.querySelector("[data-preview-body]");
    if (!button || !box) return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      var data = new FormData();
      data.append("csrf_token", csrfToken());
      data.append("body", form.querySelector("#body").value);
      fetch(form.getAttribute("data-markdown-url"), { method: "POST", body: data, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r); })
        .then(function (html) {
          // The server rendered and sanitized this with the same code a published notice goes through.
          body.innerHTML = html;
          box.hidden = false;
        })
        .catch(function () { form.requestSubmit(button); });
    });
  }

  // --- stats that fill in as the cascade runs ---------------------------------------------------------------------

  function setupLive(region) {
    if (region.getAttribute("data-live") !== "on") return;
    var rounds = 0;
    var timer = setInterval(function () {
      if (document.hidden) return;
      if (++rounds > 120) { clearInterval(timer); return; }
      fetch(location.href, { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById(region.id);
        if (!fresh) return;
        region.innerHTML = fresh.innerHTML;
        if (fresh.getAttribute("data-live") !== "on") clearInterval(timer);
      }).catch(function () { /* try again next round */ });
    }, 4000);
  }

  function setupConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  }

  // The bottom bar's メニュー closes on a tap elsewhere or on Escape, as a phone menu does.
  function setupMenu(menu) {
    document.addEventListener("click", function (event) {
      if (menu.open && !menu.contains(event.target)) menu.open = false;
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && menu.open) {
        menu.open = false;
        menu.querySelector("summary").focus();
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".bar-more").forEach(setupMenu);
    document.querySelectorAll("[data-push]").forEach(setupPush);
    document.querySelectorAll("[data-compose]").forEach(function (form) {
      setupToggles(form);
      setupAudience(form);
      setupPreview(form);
    });
    document.querySelectorAll("[data-live]").forEach(setupLive);
    document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  });
})();
