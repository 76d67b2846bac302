/* Live parts of the ingest pages, fed by live.js's `leadpulse:*` events.
   Events page: prepend rows for `event.ingested` (respecting the type filter); after a
   reconnect, take the rows of the re-fetched page (`leadpulse:resync`).
   Simulator: show the simulated lead's new score when its `lead.updated` arrives. */
(function () {
  "use strict";

  function cell(row, text, className) {
    var td = row.insertCell(-1);
    if (className) td.className = className;
    if (text !== undefined) td.textContent = text;
    return td;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function formatTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso || "";
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }

  // Mirror the header's socket state next to the page title.
  var indicator = document.querySelector("header [data-live]");
  var mirror = document.querySelector("[data-live-mirror]");
  if (indicator && mirror) {
    var sync = function () {
      var state = indicator.getAttribute("data-live");
      mirror.setAttribute("data-live", state);
      mirror.textContent = state === "on" ? "● live" : state === "connecting" ? "○ connecting…" : "○ offline";
    };
    new MutationObserver(sync).observe(indicator, { attributes: true, childList: true });
    sync();
  }

  var table = document.querySelector("table[data-events]");
  if (table) {
    var body = table.tBodies[0];
    var filter = table.getAttribute("data-filter") || "";
    var leadUrl = table.getAttribute("data-lead-url") || "/leads/0/";
    var limit = parseInt(table.getAttribute("data-limit"), 10) || 100;
    document.addEventListener("leadpulse:event.ingested", function (e) {
      var events = (e.detail && e.detail.events) || [];
      // The payload lists events in arrival order: insert each at the top, so the newest ends first.
      events.forEach(function (ev) {
        if (filter && ev.eventType !== filter) return;
        if (body.querySelector('tr[data-event-id="' + CSS.escape(String(ev.eventId)) + '"]')) return;
        var empty = body.querySelector("tr[data-empty]");
        if (empty) empty.remove();
        var row = body.insertRow(0);
        row.setAttribute("data-event-id", ev.eventId);
        row.className = "flash";
        var time = document.createElement("time");
        time.setAttribute("datetime", ev.timestamp);
        time.textContent = formatTime(ev.timestamp);
        cell(row).appendChild(time);
        var code = document.createElement("code");
        code.textContent = ev.eventType;
        cell(row).appendChild(code);
        var link = document.createElement("a");
        link.href = leadUrl.replace(/\/0\/$/, "/" + encodeURIComponent(ev.leadId) + "/");
        link.textContent = "lead #" + ev.leadId;
        cell(row).appendChild(link);
        cell(row, "", "muted");
        while (body.rows.length > limit) body.deleteRow(-1);
      });
    });
    // After a reconnect (events may have been missed): the fresh page's rows, new ones highlighted.
    document.addEventListener("leadpulse:resync", function (e) {
      var fresh = e.detail.querySelector("table[data-events] tbody");
      if (!fresh) return;
      Array.prototype.forEach.call(fresh.rows, function (row) {
        var id = row.getAttribute("data-event-id");
        if (id && !body.querySelector('tr[data-event-id="' + CSS.escape(id) + '"]')) row.className = "flash";
      });
      body.replaceWith(fresh);
      body = fresh;
    });
  }

  var simulated = document.querySelectorAll("[data-sim-lead]");
  if (simulated.length) {
    document.addEventListener("leadpulse:lead.updated", function (e) {
      var lead = e.detail || {};
      simulated.forEach(function (box) {
        if (String(box.getAttribute("data-sim-lead")) !== String(lead.id)) return;
        var score = box.querySelector("[data-field=currentScore]");
        var stage = box.querySelector("[data-field=leadStage]");
        if (score) {
          score.textContent = lead.currentScore + (lead.previousScore !== undefined && lead.previousScore !== null
            ? " (was " + lead.previousScore + ")" : "");
        }
        if (stage) {
          stage.textContent = lead.leadStage;
          stage.className = "stage stage-" + lead.leadStage;
        }
        box.classList.remove("flash");
        void box.offsetWidth; // restart the highlight
        box.classList.add("flash");
      });
    });
  }
})();
