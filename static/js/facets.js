/* Lead facets, live: the leads list's facet cells (td[data-facet] in a row marked data-lead-id) and the lead page's
   facet cards (section[data-facet] beside #lead-header) follow the broadcasts of the apps that own them, without a
   reload. One registry below names, per facet, the broadcast that changes it, the items it carries and how to apply
   one to a shown cell or card; after a reconnect (`leadpulse:resync`) each shown facet takes the fresh page's. */
(function () {
  "use strict";

  function flash(element) {
    element.classList.remove("flash");
    void element.offsetWidth; // restart the animation
    element.classList.add("flash");
  }

  function setText(element, text) {
    if (!element || element.textContent === String(text)) return false;
    element.textContent = text;
    flash(element);
    return true;
  }

  function percent(probability) { return Math.round(probability * 100) + "%"; }

  // The lead a facet element belongs to: its row's, or on the lead page the header's.
  function leadOf(element) {
    var holder = element.closest("[data-lead-id]") || document.getElementById("lead-header");
    return holder ? holder.getAttribute("data-lead-id") : null;
  }

  function shown(key) {
    return Array.prototype.slice.call(document.querySelectorAll('[data-facet="' + key + '"]'))
      .filter(function (element) { return element.tagName !== "TH"; });
  }

  var registry = [
    {
      // companies: `company.updated` {companies: [{id, score, stage, scores}]}; the top-level score is the primary
      // model's (the facet's), present only when that model's score moved
      facet: "associatedCompany", event: "company.updated",
      items: function (detail) { return detail.companies || []; },
      apply: function (element, company) {
        if (company.score === undefined) return;
        Array.prototype.forEach.call(
          element.querySelectorAll('[data-company-id="' + String(company.id).replace(/"/g, "") + '"]'),
          function (holder) {
            setText(holder.querySelector('[data-field="companyScore"]'), company.score);
            var stage = holder.querySelector('[data-field="companyStage"]');
            if (stage && company.stage && setText(stage, company.stage)) stage.className = "stage stage-" + company.stage;
          });
      },
    },
    {
      // predictions: `predictions.updated` {leads: [{id, conversionProbability: {probability, factors} | null}]}
      facet: "conversionProbability", event: "predictions.updated",
      items: function (detail) { return detail.leads || []; },
      apply: function (element, lead) {
        if (String(lead.id) !== leadOf(element)) return;
        var value = lead.conversionProbability;
        var labels = value ? (value.factors || []).map(function (factor) { return factor.label; }) : [];
        if (element.tagName === "TD") {
          var cell = element.querySelector("[data-probability]");
          if (!value) {
            if (cell) element.innerHTML = '<span class="muted">—</span>';
            return;
          }
          if (!cell) {
            element.textContent = "";
            cell = element.appendChild(document.createElement("span"));
          }
          cell.setAttribute("data-probability", String(value.probability));
          cell.setAttribute("title", labels.join("; "));
          setText(cell, percent(value.probability));
          return;
        }
        if (!value) return; // a card keeps what it said until the page is fetched again
        var current = element.querySelector("#probability-current strong");
        if (!current) {
          var none = element.querySelector("#probability-none");
          if (none) none.remove();
          var line = element.appendChild(document.createElement("p"));
          line.id = "probability-current";
          line.innerHTML = '<strong></strong> <span class="muted">likely to be won</span>';
          current = line.querySelector("strong");
          element.appendChild(document.createElement("ul")).id = "probability-factors";
        }
        setText(current, percent(value.probability));
        var list = element.querySelector("#probability-factors");
        if (list && list.textContent !== labels.join("")) {
          list.textContent = "";
          labels.forEach(function (label) { list.appendChild(document.createElement("li")).textContent = label; });
        }
      },
    },
  ];

  registry.forEach(function (updater) {
    document.addEventListener("leadpulse:" + updater.event, function (event) {
      var elements = shown(updater.facet);
      if (!elements.length) return;
      updater.items(event.detail || {}).forEach(function (item) {
        if (!item || item.id === undefined || item.id === null) return;
        elements.forEach(function (element) { updater.apply(element, item); });
      });
    });
  });

  // After a reconnect: each shown facet cell or card takes the fresh page's, as rendered by its own template.
  document.addEventListener("leadpulse:resync", function (event) {
    var fresh = event.detail;
    Array.prototype.forEach.call(document.querySelectorAll("td[data-facet], section[data-facet]"), function (element) {
      var key = CSS.escape(element.getAttribute("data-facet"));
      var twin = element.tagName === "TD"
        ? fresh.querySelector('[data-lead-id="' + CSS.escape(leadOf(element) || "") + '"] td[data-facet="' + key + '"]')
        : fresh.querySelector('section[data-facet="' + key + '"]');
      if (!twin || twin.innerHTML === element.innerHTML) return;
      element.innerHTML = twin.innerHTML;
      flash(element);
    });
  });

  window.LeadPulseFacets = { registry: registry };
})();
