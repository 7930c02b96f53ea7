// musubi's service worker: shows pushes, withdraws them when a notice is retracted, opens the notice when tapped,
// and serves an offline page when the network is gone. Served from /sw.js so its scope is the whole site.
"use strict";

var CACHE = "musubi-shell-v1";
var SHELL = ["/offline", "/static/css/musubi.css", "/static/icons/icon-192.png", "/static/icons/badge-72.png"];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    // Fetched without cookies: the offline page must not carry anyone's name.
    return cache.addAll(SHELL.map(function (url) { return new Request(url, { credentials: "omit" }); }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (keys) {
    return Promise.all(keys.filter(function (k) { return k !== CACHE; }).map(function (k) { return caches.delete(k); }));
  }).then(function () { return self.clients.claim(); }));
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;
  var url = new URL(request.url);
  if (url.origin !== self.location.origin || url.pathname.indexOf("/api/") === 0) return;
  if (request.mode === "navigate") {
    // Pages are always fresh from the network (they are personal and marked no-store); offline, a friendly page.
    event.respondWith(fetch(request).catch(function () { return caches.match("/offline"); }));
    return;
  }
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(fetch(request).then(function (response) {
      if (response.ok) {
        var copy = response.clone();
        caches.open(CACHE).then(function (cache) { cache.put(request, copy); });
      }
      return response;
    }).catch(function () { return caches.match(request); }));
  }
});

function tagOf(data) {
  // The same tag for a notice and its retraction, as the sender uses one Topic for both.
  return "notice-" + data.notice_id;
}

self.addEventListener("push", function (event) {
  var data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = { title: event.data ? event.data.text() : "" };
  }
  if (data.kind === "retract") {
    event.waitUntil(self.registration.getNotifications({ tag: tagOf(data) }).then(function (shown) {
      shown.forEach(function (n) { n.close(); });
    }));
    return;
  }
  var title = data.title || "musubi";
  if (data.kind === "reminder" || data.kind === "report_reminder") title = "⏰ " + title;
  var lines = [];
  if (data.tenant) lines.push(data.tenant);
  if (data.excerpt) lines.push(data.excerpt);
  event.waitUntil(self.registration.showNotification(title, {
    body: lines.join("\n"),
    tag: tagOf(data),
    renotify: data.kind === "reminder" || data.kind === "report_reminder",
    icon: "/static/icons/icon-192.png",
    badge: "/static/icons/badge-72.png",
    lang: "ja",
    requireInteraction: data.category === "urgent",
    data: { url: data.url || "/", notice_id: data.notice_id },
  }));
});

self.addEventListener("notificationclick", function (event) {
  event.notification.close();
  var target = new URL((event.notification.data && event.notification.data.url) || "/", self.location.origin);
  if (target.origin !== self.location.origin) target = new URL("/", self.location.origin);
  event.waitUntil(self.clients.matchAll({ type: "window", includeUncontrolled: true }).then(function (windows) {
    for (var i = 0; i < windows.length; i++) {
      var w = windows[i];
      if (new URL(w.url).pathname === target.pathname && "focus" in w) return w.focus();
    }
    return self.clients.openWindow(target.href);
  }));
});
