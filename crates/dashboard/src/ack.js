// Acknowledge a breach from its KRI page (only on a live page with a token configured). The
// token is read from its field at click time and sent only in the Authorization header of that
// request, to this same server; it is never stored.
(function () {
  "use strict";
  var form = document.getElementById("ack-form");
  var out = document.getElementById("ack-status");
  if (!form || !out) { return; }
  function say(text) { out.textContent = text; }
  function send(body) {
    var token = document.getElementById("ack-token").value.trim();
    if (token === "") {
      say("Type the API token first.");
      document.getElementById("ack-token").focus();
      return;
    }
    var tenant = form.getAttribute("data-tenant") || "";
    if (tenant !== "") { body.tenant = tenant; }
    body.slug = form.getAttribute("data-slug") || "";
    say(body.clear ? "Clearing…" : "Acknowledging…");
    fetch("../api/v1/ack", {
      method: "POST",
      headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      body: JSON.stringify(body)
    }).then(function (res) {
      return res.json().then(function (b) { return { res: res, body: b || {} }; },
        function () { return { res: res, body: {} }; });
    }).then(function (a) {
      var b = a.body;
      if (a.res.ok) {
        if (body.clear) {
          say(b.cleared ? "Acknowledgement cleared." : "There was no acknowledgement to clear.");
        } else {
          say("Acknowledged (" + b.band + ")" + (b.by ? " by " + b.by : "") + ": " + b.note +
            ". Reload the page to see it in the breach log.");
        }
      } else {
        var msg = typeof b.error === "string" && b.error !== "" ? b.error : (a.res.statusText || "refused");
        say("HTTP " + a.res.status + ": " + msg);
      }
    }, function (err) { say("Request failed: " + err); });
  }
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var body = { note: document.getElementById("ack-note").value };
    var until = document.getElementById("ack-until").value;
    var by = document.getElementById("ack-by").value.trim();
    if (until !== "") { body.until = until; }
    if (by !== "") { body.by = by; }
    send(body);
  });
  var clear = document.getElementById("ack-clear");
  if (clear) { clear.addEventListener("click", function () { send({ clear: true }); }); }
})();
