/* The predictions page follows a running training job: poll its JSON, move the progress bar, reload when done. */
(function () {
  "use strict";

  var block = document.getElementById("training-progress");
  if (!block) return;
  var bar = block.querySelector("progress");
  var percent = block.querySelector("[data-progress]");
  var message = block.querySelector("[data-message]");
  var FINISHED = ["succeeded", "failed", "refused"];

  function poll() {
    fetch(block.getAttribute("data-job-url"), { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : Promise.reject(response.status); })
      .then(function (job) {
        bar.value = job.progress;
        percent.textContent = job.progress + "%";
        message.textContent = job.message;
        if (FINISHED.indexOf(job.status) >= 0) {
          window.location.reload();
          return;
        }
        setTimeout(poll, 1500);
      })
      .catch(function () { setTimeout(poll, 5000); });
  }
  setTimeout(poll, 1000);
})();
