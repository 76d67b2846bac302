/* Overview: its counts follow the project live. A scoring batch's `lead.updated` (and a merge, a new
   event) schedules one fetch of the page — at most one every REFRESH_MS, the last one after the burst
   — and the regions marked data-live-region (the KPI cards, the top leads, the heat map) take the fresh
   page's content; so does a resync after a reconnect. Charts stay as drawn: their nonced styles
   belong to the page they came with. */
(function () {
  "use strict";
  var REFRESH_MS = 2000;
  var timer = null, inFlight = false, again = false, last = 0;

  function flash(element) {
    element.classList.remove("flash");
    void element.offsetWidth;
    element.classList.add("flash");
  }

  function apply(fresh) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-live-region]"), function (region) {
      var name = region.getAttribute("data-live-region");
      var twin = fresh.querySelector('[data-live-region="' + CSS.escape(name) + '"]');
      if (!twin || twin.innerHTML === region.innerHTML) return;
      region.innerHTML = twin.innerHTML;
      flash(region);
    });
  }

  function refresh() {
    timer = null;
    if (inFlight) { again = true; return; }
    inFlight = true;
    last = Date.now();
    fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) { apply(window.LeadPulseLive.parse(html)); })
      .catch(function () {})
      .then(function () {
        inFlight = false;
        if (again) { again = false; schedule(); }
      });
  }

  function schedule() {
    if (timer) return;
    timer = setTimeout(refresh, Math.max(REFRESH_MS - (Date.now() - last), 250));
  }

  ["lead.updated", "lead.merged", "event.ingested"].forEach(function (type) {
    document.addEventListener("leadpulse:" + type, schedule);
  });
  document.addEventListener("leadpulse:resync", function (event) { apply(event.detail); });
  window.LeadPulseOverview = { refreshes: function () { return last; } };
})();
