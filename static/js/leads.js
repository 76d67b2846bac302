/* Leads pages: apply `leadpulse:lead.updated` (and, after a reconnect, `leadpulse:resync`) to any
   element marked data-lead-id (table rows, the lead header) in place, and refresh the re-score
   progress block while a job runs. */
(function () {
  "use strict";

  function flash(element) {
    element.classList.remove("flash");
    void element.offsetWidth; // restart the animation
    element.classList.add("flash");
  }

  document.addEventListener("leadpulse:lead.updated", function (event) {
    var lead = event.detail || {};
    if (lead.id === undefined || lead.id === null) return;
    var holders = document.querySelectorAll('[data-lead-id="' + String(lead.id).replace(/"/g, "") + '"]');
    Array.prototype.forEach.call(holders, function (holder) {
      // a page of another model than the primary shows that model's entry of the lead's `scores`
      var key = holder.getAttribute("data-model");
      var shown = key ? (lead.scores || {})[key] : null;
      if (key && !shown) return;
      var score = holder.querySelector(key ? '[data-field="modelScore"]' : '[data-field="currentScore"]');
      var value = key ? shown.score : lead.currentScore;
      if (score && value !== undefined && String(value) !== score.textContent) {
        score.textContent = value;
        flash(score);
      }
      var stage = holder.querySelector(key ? '[data-field="modelStage"]' : '[data-field="leadStage"]');
      var stageNow = key ? shown.stage : lead.leadStage;
      if (stage && stageNow && stageNow !== stage.textContent) {
        stage.textContent = stageNow;
        stage.className = "stage stage-" + stageNow;
        flash(stage);
      }
      var cell = holder.querySelector('[data-field="matrixCell"]');
      var cellNow = key ? shown.cell : lead.matrixCell;
      if (cell && cellNow && cellNow !== cell.textContent) {
        cell.textContent = cellNow;
        flash(cell);
      }
    });
  });

  // After a reconnect (updates may have been missed): take each shown lead's fields from the fresh page.
  document.addEventListener("leadpulse:resync", function (event) {
    var fresh = event.detail;
    Array.prototype.forEach.call(document.querySelectorAll("[data-lead-id]"), function (holder) {
      var twin = fresh.querySelector('[data-lead-id="' + CSS.escape(holder.getAttribute("data-lead-id")) + '"]');
      if (!twin) return;
      Array.prototype.forEach.call(holder.querySelectorAll("[data-field]"), function (field) {
        var same = twin.querySelector('[data-field="' + CSS.escape(field.getAttribute("data-field")) + '"]');
        if (!same || same.textContent === field.textContent) return;
        field.textContent = same.textContent;
        field.className = same.className;
        flash(field);
      });
    });
  });

  var jobs = document.getElementById("rescore-jobs");
  function refresh() {
    if (!jobs || !jobs.getAttribute("data-active")) return;
    fetch(jobs.getAttribute("data-refresh-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        var holder = document.createElement("div");
        holder.innerHTML = html;
        var fresh = holder.querySelector("#rescore-jobs");
        if (fresh) { jobs.replaceWith(fresh); jobs = fresh; }
        setTimeout(refresh, 2000);
      })
      .catch(function () { setTimeout(refresh, 5000); });
  }
  setTimeout(refresh, 2000);
})();
