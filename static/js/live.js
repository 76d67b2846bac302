/* LeadPulse live updates: one WebSocket per page, reconnecting with backoff.
   Pages listen for `leadpulse:<type>` events on document (event.ingested, lead.updated,
   lead.merged, automation.fired); the indicator shows the socket's state. */
(function () {
  "use strict";
  var indicator = document.querySelector("[data-live]");
  var project = document.body.getAttribute("data-project");
  var delay = 1000, socket = null;

  function show(state) {
    if (!indicator) return;
    indicator.setAttribute("data-live", state);
    indicator.textContent = state === "on" ? "● Live" : state === "connecting" ? "○ Connecting…" : "○ Offline";
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    show("connecting");
    socket = new WebSocket(scheme + location.host + "/ws/project/?project=" + encodeURIComponent(project || ""));
    socket.onopen = function () { delay = 1000; show("on"); };
    socket.onmessage = function (message) {
      var data;
      try { data = JSON.parse(message.data); } catch (e) { return; }
      document.dispatchEvent(new CustomEvent("leadpulse:" + data.type, { detail: data.payload }));
    };
    socket.onclose = function (event) {
      show("off");
      if (event.code === 4401 || event.code === 4404) return; // refused: do not hammer
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    };
  }

  window.LeadPulseLive = { socket: function () { return socket; } };
  if (project) connect();
})();
