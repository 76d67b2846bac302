/* Companies pages (and the leads pages' company cells): apply `leadpulse:company.updated` to any element
   marked data-company-id in place (a row, the company header, a lead's company cell or card), and after a
   reconnect (`leadpulse:resync`) take each shown company's fields from the fresh page; a page marked
   data-company-refresh also fetches itself again after an update, for the fields a broadcast lacks. An element with
   data-model shows that scoring model's entry of the company's `scores`; without it, the primary model's. */
(function () {
  "use strict";

  function flash(element) {
    element.classList.remove("flash");
    void element.offsetWidth; // restart the animation
    element.classList.add("flash");
  }

  function apply(holder, company) {
    var key = holder.getAttribute("data-model");
    var shown = key ? (company.scores || {})[key] : company;
    if (!shown || shown.score === undefined) return;
    var scores = holder.querySelectorAll('[data-field="score"], [data-field="companyScore"]');
    Array.prototype.forEach.call(scores, function (score) {
      if (String(shown.score) === score.textContent) return;
      score.textContent = shown.score;
      flash(score);
    });
    var stages = holder.querySelectorAll('[data-field="stage"], [data-field="companyStage"]');
    Array.prototype.forEach.call(stages, function (stage) {
      if (!shown.stage || shown.stage === stage.textContent) return;
      stage.textContent = shown.stage;
      stage.className = "stage stage-" + shown.stage;
      flash(stage);
    });
    var updated = holder.querySelector('[data-field="updated"]');
    if (updated) updated.textContent = "just now";
  }

  // The broadcast carries scores and stages; what else a shown company's row says (its member count, engaged
  // members) comes from the page fetched again, once for a burst of updates.
  var refreshing = null;
  function refreshSoon() {
    if (refreshing) return;
    refreshing = setTimeout(function () {
      fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
        .then(function (html) { take(new DOMParser().parseFromString(html, "text/html")); })
        .catch(function () {})
        .then(function () { refreshing = null; });
    }, 1000);
  }

  // one broadcast per recompute: {companies: [{id, name, domain, score, stage, scores: {model: {score, stage}}}]}
  document.addEventListener("leadpulse:company.updated", function (event) {
    var companies = (event.detail || {}).companies || [];
    var shown = false;
    companies.forEach(function (company) {
      if (company.id === undefined || company.id === null) return;
      var holders = document.querySelectorAll('[data-company-id="' + String(company.id).replace(/"/g, "") + '"]');
      Array.prototype.forEach.call(holders, function (holder) { apply(holder, company); shown = true; });
    });
    if (shown && document.querySelector("[data-company-refresh]")) refreshSoon();
  });

  document.addEventListener("leadpulse:resync", function (event) { take(event.detail); });

  function take(fresh) {
    Array.prototype.forEach.call(document.querySelectorAll("[data-company-id]"), function (holder) {
      var twin = fresh.querySelector('[data-company-id="' + CSS.escape(holder.getAttribute("data-company-id")) + '"]');
      if (!twin) return;
      Array.prototype.forEach.call(holder.querySelectorAll("[data-field]"), function (field) {
        var same = twin.querySelector('[data-field="' + CSS.escape(field.getAttribute("data-field")) + '"]');
        if (!same || same.textContent === field.textContent) return;
        field.textContent = same.textContent;
        field.className = same.className;
        flash(field);
      });
    });
  }
})();
