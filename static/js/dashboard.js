/* Behaviour the pages declare with data- attributes (the Content-Security-Policy allows no
   inline scripts or on* handlers): select[data-autosubmit] submits its form on change,
   form[data-confirm] asks before submitting, button[data-copy] copies the text of the
   element its selector names and briefly shows the [data-copied] note beside it. */
(function () {
  "use strict";

  document.addEventListener("change", function (event) {
    var select = event.target;
    if (select.matches && select.matches("select[data-autosubmit]") && select.form) select.form.submit();
  });

  // Delegated, so forms loaded later (the re-score block) are covered too.
  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source || !navigator.clipboard) return;
    var done = button.parentNode.querySelector("[data-copied]");
    navigator.clipboard.writeText(source.textContent).then(function () {
      if (!done) return;
      done.hidden = false;
      setTimeout(function () { done.hidden = true; }, 1500);
    });
  });
})();
