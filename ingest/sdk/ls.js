/*! LeadPulse browser SDK 1.0.0: Segment-spec messages to {host}/v1/batch. No dependencies. */
(function (w, d) {
  "use strict";
  var prev = w.LS;
  if (prev && prev.__leadpulse) return; // loaded twice: keep the first

  var VERSION = "1.0.0";
  var ANON = "ls_anon_id", USER = "ls_user_id", SID = "ls_session_id", SEEN = "ls_session_ts";
  var IDLE = 30 * 60 * 1000, BATCH = 20, DELAY = 1000, TRIES = 6, MAX_BACKOFF = 30000;
  var script = d.currentScript || d.querySelector('script[src*="/sdk/ls.js"]');
  var cfg = null; // {key, url} once initialised
  var queue = []; // built messages not yet handed to the network
  var retrying = []; // [batch, timer] waiting for their next attempt
  var timer = 0, mem = {}, hooked = false, lastUrl = "", referrer = d.referrer;

  // --- storage: localStorage, first-party cookie when it throws, memory last ---------------
  function cookieGet(k) {
    try {
      var m = d.cookie.match(new RegExp("(?:^|; )" + k + "=([^;]*)"));
      return m ? decodeURIComponent(m[1]) : null;
    } catch (e) { return null; }
  }
  function cookieSet(k, v, age) {
    try {
      d.cookie = k + "=" + encodeURIComponent(v) + "; path=/; max-age=" + age + "; SameSite=Lax" +
        (location.protocol === "https:" ? "; Secure" : "");
    } catch (e) { /* no storage at all: memory only */ }
  }
  function get(k) {
    var v = null;
    try { v = w.localStorage.getItem(k); } catch (e) { /* fall back */ }
    if (v == null) v = cookieGet(k);
    return v != null ? v : mem[k] != null ? mem[k] : null;
  }
  function set(k, v) {
    mem[k] = v;
    try { w.localStorage.setItem(k, v); } catch (e) { cookieSet(k, v, 31536000); }
  }
  function del(k) {
    delete mem[k];
    try { w.localStorage.removeItem(k); } catch (e) { /* ignore */ }
    if (cookieGet(k) != null) cookieSet(k, "", 0);
  }

  // --- ids ------------------------------------------------------------------------------------
  function uuid() {
    var c = w.crypto, b = new Uint8Array(16), i, h = "";
    try {
      if (c && c.randomUUID) return c.randomUUID();
      c.getRandomValues(b);
    } catch (e) {
      for (i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    for (i = 0; i < 16; i++) h += (b[i] + 256).toString(16).slice(1) + (i === 3 || i === 5 || i === 7 || i === 9 ? "-" : "");
    return h;
  }
  function anonymousId() {
    var id = get(ANON);
    if (!id) set(ANON, (id = uuid()));
    return id;
  }
  function sessionId() {
    var now = Date.now(), id = get(SID), seen = +get(SEEN) || 0;
    if (!id || now - seen > IDLE) set(SID, (id = uuid()));
    set(SEEN, String(now));
    return id;
  }

  // --- messages -------------------------------------------------------------------------------
  function assign(to, from) {
    if (from && typeof from === "object") for (var k in from) if (Object.prototype.hasOwnProperty.call(from, k)) to[k] = from[k];
    return to;
  }
  function pageInfo() {
    return { url: location.href, path: location.pathname, referrer: referrer, title: d.title };
  }
  function enqueue(type, fields) {
    var m = assign({
      type: type,
      anonymousId: anonymousId(),
      messageId: uuid(),
      timestamp: new Date().toISOString(),
      context: {
        sessionId: sessionId(),
        library: { name: "leadpulse.js", version: VERSION },
        page: pageInfo(),
        userAgent: navigator.userAgent
      }
    }, fields);
    var user = get(USER);
    if (user) m.userId = user;
    queue.push(m);
    if (queue.length >= BATCH) flush();
    else if (!timer) timer = setTimeout(flush, DELAY);
  }

  // --- transport ------------------------------------------------------------------------------
  function body(batch) {
    return JSON.stringify({ writeKey: cfg.key, batch: batch, sentAt: new Date().toISOString() });
  }
  function send(batch, attempt) {
    var data = body(batch);
    function again() {
      if (attempt + 1 >= TRIES) return; // give up: the server never saw it or keeps failing
      var entry = [batch];
      entry[1] = setTimeout(function () {
        retrying.splice(retrying.indexOf(entry), 1);
        send(batch, attempt + 1);
      }, Math.min(DELAY * Math.pow(2, attempt), MAX_BACKOFF));
      retrying.push(entry);
    }
    try {
      w.fetch(cfg.url, {
        method: "POST",
        body: data,
        headers: { "Content-Type": "text/plain" },
        credentials: "omit",
        // The first attempt survives the page going away; retries go without (keepalive has a 64 KB quota).
        keepalive: !attempt && data.length < 60000
      }).then(function (r) {
        if (r.status >= 500 || r.status === 429) again(); // other 4xx: the server will never take it
      }, again);
    } catch (e) {
      again();
    }
  }
  // At most BATCH messages and about `max` characters of JSON per request (server and beacon limits).
  function chunks(list, max) {
    var out = [], cur = [], size = 0;
    list.forEach(function (m) {
      var n = JSON.stringify(m).length;
      if (cur.length && (cur.length >= BATCH || size + n > max)) {
        out.push(cur);
        cur = [];
        size = 0;
      }
      cur.push(m);
      size += n;
    });
    if (cur.length) out.push(cur);
    return out;
  }
  function flush() {
    clearTimeout(timer);
    timer = 0;
    if (!cfg) return;
    chunks(queue.splice(0), 400000).forEach(function (batch) { send(batch, 0); });
  }
  // The page is going away (or may be frozen): hand everything to the browser now.
  function beacon() {
    if (!cfg) return;
    clearTimeout(timer);
    timer = 0;
    var all = queue.splice(0);
    retrying.splice(0).forEach(function (entry) {
      clearTimeout(entry[1]);
      all = all.concat(entry[0]);
    });
    chunks(all, 60000).forEach(function (batch) {
      var data = body(batch), sent = false;
      try { sent = navigator.sendBeacon(cfg.url, new Blob([data], { type: "text/plain" })); } catch (e) { /* fall back */ }
      if (!sent) {
        try {
          w.fetch(cfg.url, { method: "POST", body: data, headers: { "Content-Type": "text/plain" }, credentials: "omit", keepalive: true })
            .catch(function () {});
        } catch (e) { /* nothing else to try */ }
      }
    });
  }

  // --- automatic tracking ---------------------------------------------------------------------
  function autoPage() {
    if (location.href === lastUrl) return;
    if (lastUrl) referrer = lastUrl;
    lastUrl = location.href;
    page();
  }
  function onClick(e) {
    var el = e.target && e.target.closest && e.target.closest("[data-ls-event]");
    if (!el) return;
    var props = {}, ds = el.dataset, k;
    for (k in ds) if (/^ls[A-Z]/.test(k) && k !== "lsEvent") props[k.charAt(2).toLowerCase() + k.slice(3)] = ds[k];
    track(el.getAttribute("data-ls-event"), props);
  }
  function onSubmit(e) {
    var f = e.target, fields = [], els, i, el, n, type;
    if (!(f instanceof HTMLFormElement)) return;
    // Read through the prototype: inputs named "elements", "id" or "action" shadow the form's properties.
    els = Object.getOwnPropertyDescriptor(HTMLFormElement.prototype, "elements").get.call(f);
    for (i = 0; i < els.length; i++) {
      el = els[i];
      n = el.getAttribute("name");
      type = (el.getAttribute("type") || "").toLowerCase();
      if (n && el.tagName !== "FIELDSET" && el.tagName !== "BUTTON" && !/^(submit|button|reset|image)$/.test(type) &&
        fields.indexOf(n) < 0) fields.push(n);
    }
    var action = f.getAttribute("action");
    track("form_submit", {
      formId: f.getAttribute("id") || "",
      formName: f.getAttribute("name") || "",
      action: action ? new URL(action, location.href).href : location.href,
      fields: fields // names only: values never leave the page
    });
  }
  function hook() {
    if (hooked) return;
    hooked = true;
    ["pushState", "replaceState"].forEach(function (k) {
      var orig = history[k];
      if (typeof orig !== "function") return;
      history[k] = function () {
        var r = orig.apply(this, arguments);
        setTimeout(safe(autoPage), 0); // after the app had a chance to set the title
        return r;
      };
    });
    w.addEventListener("popstate", safe(autoPage));
    d.addEventListener("click", safe(onClick), true);
    d.addEventListener("submit", safe(onSubmit), true);
    d.addEventListener("visibilitychange", safe(function () { if (d.visibilityState === "hidden") beacon(); }));
    w.addEventListener("pagehide", safe(beacon));
  }

  // --- public API -----------------------------------------------------------------------------
  function safe(fn) {
    return function () {
      try { return fn.apply(this, arguments); } catch (e) { /* never break the host page */ }
    };
  }
  function init(o) {
    if (cfg || !o || !o.apiKey) return;
    var host = String(o.host || (script && script.src ? new URL(script.src, location.href).origin : location.origin));
    cfg = { key: String(o.apiKey), url: host.replace(/\/+$/, "") + "/v1/batch" };
    if (o.autoTrack !== false) {
      hook();
      autoPage();
    }
    if (queue.length) flush(); // calls made before init
  }
  function track(event, properties) {
    if (!event || typeof event !== "string") return;
    enqueue("track", { event: event, properties: assign({}, properties) });
  }
  function identify(id, traits) {
    var t = assign({}, traits), fields = { traits: t };
    if (id != null && id !== "") {
      id = String(id);
      if (id.indexOf("@") >= 0) t.email = id;
      else set(USER, id);
    }
    enqueue("identify", fields);
  }
  function page(properties) {
    var p = assign(pageInfo(), properties), fields = { properties: p };
    if (p.name) fields.name = String(p.name);
    enqueue("page", fields);
  }
  function reset() {
    del(USER);
    set(ANON, uuid());
    set(SID, uuid());
    set(SEEN, String(Date.now()));
  }

  var LS = {
    __leadpulse: VERSION,
    VERSION: VERSION,
    init: safe(init),
    track: safe(track),
    identify: safe(identify),
    page: safe(page),
    reset: safe(reset),
    flush: safe(flush),
    anonymousId: safe(anonymousId),
    userId: safe(function () { return get(USER); })
  };
  w.LS = LS;

  safe(function () {
    // A snippet may have queued calls as `window.LS = window.LS || []; LS.push(["track", "x"])`.
    if (prev && typeof prev.length === "number") {
      for (var i = 0; i < prev.length; i++) if (prev[i] && LS[prev[i][0]]) LS[prev[i][0]].apply(LS, [].slice.call(prev[i], 1));
    }
    var key = script && script.getAttribute("data-api-key");
    if (key) init({ apiKey: key, host: script.getAttribute("data-host") || undefined });
  })();
})(window, document);
