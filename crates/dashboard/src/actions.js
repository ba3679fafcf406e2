// Run now / Test (only on a live dashboard with a token configured). The token is read from
// the password field at click time and sent only in the Authorization header of that request,
// to this same server; it is never stored. A button with `data-tenant` acts for that tenant:
// the request carries `&tenant=NAME` and the messages name the tenant.
(function () {
  "use strict";
  var out = document.getElementById("action-status");
  var tokenField = document.getElementById("token");
  if (!out || !tokenField) { return; }
  function say(text) { out.textContent = text; }
  // A Test's result: asked for every half second, for at most a minute.
  function follow(id, who, tries) {
    fetch("api/v1/test/" + encodeURIComponent(id), { cache: "no-store" }).then(function (res) {
      return res.json();
    }).then(function (b) {
      if (b && b.state === "done" && b.probe) {
        say("Test of " + who + ": " + b.probe.status + " — " + b.probe.message);
      } else if (tries < 120) {
        setTimeout(function () { follow(id, who, tries + 1); }, 500);
      }
    }, function () {});
  }
  function act(button) {
    var module = button.getAttribute("data-module") || "";
    var tenant = button.getAttribute("data-tenant") || "";
    var who = tenant === "" ? module : module + " for " + tenant;
    var isRun = button.classList.contains("run-now");
    var token = tokenField.value.trim();
    if (token === "") {
      say("Type the API token first.");
      tokenField.focus();
      return;
    }
    var url = (isRun ? "api/v1/runs?module=" : "api/v1/test?module=") + encodeURIComponent(module) +
      (tenant === "" ? "" : "&tenant=" + encodeURIComponent(tenant));
    say((isRun ? "Starting a run of " : "Starting a test of ") + who + "…");
    fetch(url, {
      method: "POST",
      headers: { Authorization: "Bearer " + token },
      credentials: "same-origin",
      cache: "no-store"
    }).then(function (res) {
      return res.json().then(function (body) { return body; }, function () { return null; })
        .then(function (body) { return { res: res, body: body || {} }; });
    }).then(function (a) {
      var b = a.body;
      if (a.res.ok) {
        var id = isRun ? b.run_id : b.test_id;
        var again = b.status === "already_running" ? " is already in progress for " : " started for ";
        say((isRun ? "Run " : "Test ") + (id === undefined || id === null ? "(no id)" : id) + again + who);
        if (!isRun && typeof id === "string") { follow(id, who, 0); }
      } else {
        var msg = typeof b.message === "string" && b.message !== "" ? b.message : (a.res.statusText || "request refused");
        say("HTTP " + a.res.status + ": " + msg);
      }
    }, function (err) {
      say("Request failed: " + err);
    });
  }
  var buttons = document.querySelectorAll("button.run-now, button.test");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].addEventListener("click", function (ev) { act(ev.currentTarget); });
  }
})();
