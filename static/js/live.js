/* LeadPulse live updates: one WebSocket per page, reconnecting with backoff.
   Pages listen for `leadpulse:<type>` events on document (event.ingested, lead.updated,
   lead.merged, automation.fired); the indicator shows the socket's state. Broadcasts sent
   while the socket was down are gone, so after a reconnect the page is fetched once more and
   `leadpulse:resync` hands the fresh document to the page scripts, which take what changed. */
(function () {
  "use strict";
  var indicator = document.querySelector("[data-live]");
  var project = document.body.getAttribute("data-project");
  var delay = 1000, socket = null, opens = 0;

  function show(state) {
    if (!indicator) return;
    indicator.setAttribute("data-live", state);
    indicator.textContent = state === "on" ? "● Live" : state === "connecting" ? "○ Connecting…" : "○ Offline";
  }

  // A fetched page as a document to read from. Its <style> elements (the charts') carry that response's CSP
  // nonce, not this page's: parsed, the browser reports each as a violation, so they are dropped first.
  function parse(html) {
    return new DOMParser().parseFromString(html.replace(/<style[\s\S]*?<\/style>/gi, ""), "text/html");
  }

  function resync() {
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        document.dispatchEvent(new CustomEvent("leadpulse:resync", { detail: parse(html) }));
      })
      .catch(function () {}); // the next reconnect tries again
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    show("connecting");
    socket = new WebSocket(scheme + location.host + "/ws/project/?project=" + encodeURIComponent(project || ""));
    socket.onopen = function () {
      delay = 1000;
      show("on");
      if (++opens > 1) resync();
    };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      // a scoring batch coalesces its leads into one `leads.updated`: pages see one lead.updated each
      var each = data.type === "leads.updated" ? (data.payload.leads || []) : [data.payload];
      var type = data.type === "leads.updated" ? "lead.updated" : data.type;
      each.forEach(function (payload) {
        document.dispatchEvent(new CustomEvent("leadpulse:" + type, { detail: payload }));
      });
    };
    socket.onclose = function (event) {
      show("off");
      if (event.code === 4401 || event.code === 4404) return; // refused: do not hammer
      setTimeout(connect, delay * (0.5 + Math.random() / 2)); // jitter: pages do not return in step
      delay = Math.min(delay * 2, 30000);
    };
  }

  window.LeadPulseLive = {
    socket: function () { return socket; }, opens: function () { return opens; }, parse: parse,
  };
  if (project) connect();
})();
