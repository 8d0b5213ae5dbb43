// The IdP settings form: rows of group -> role rules added and removed, and the live preview of
// what the last test login would produce with the settings as edited (nothing is saved).
// Served as a file the page's Content-Security-Policy allows by its hash; it writes text only.
(function () {
  "use strict";
  var form = document.getElementById("settings-form");
  var output = document.getElementById("settings-preview");
  if (!form || !output) {
    return;
  }
  var rules = document.getElementById("role-rules");
  var template = document.getElementById("role-rule-template");
  var status = document.getElementById("preview-status");
  var problems = document.getElementById("preview-problems");
  var claims = document.getElementById("preview-claims");
  var pending = null;
  var sent = 0;
  var inFlight = null;  // the AbortController of the preview request still under way

  function show(text, kind) {
    status.textContent = text;
    status.className = kind || "";
  }

  function render(body) {
    problems.textContent = "";
    claims.textContent = "";
    (body.problems || []).forEach(function (problem) {
      var item = document.createElement("li");
      item.textContent = problem;
      problems.appendChild(item);
    });
    if (body.outcome === "accepted") {
      Object.keys(body.claims).forEach(function (version) {
        var title = document.createElement("h4");
        title.textContent = version;
        var block = document.createElement("pre");
        block.id = "preview-" + version;
        block.className = "claims";
        var outcome = body.claims[version];
        block.textContent = JSON.stringify(outcome.claims || outcome.refused, null, 2);
        claims.appendChild(title);
        claims.appendChild(block);
      });
    }
    show(body.message || body.title || "The preview could not be computed.",
         body.outcome === "accepted" ? "ok" : "warning");
    output.dataset.outcome = body.outcome;
  }

  // The settings as edited last: in the form, or in the TOML below it.
  var toml = document.getElementById("settings");
  var edited = form;

  function preview() {
    var number = ++sent;
    output.dataset.outcome = "pending";
    // A newer edit cancels the request for the one before, whose answer would not be shown
    // (what one request may cost the server is bounded by the settings' own limits).
    if (inFlight) {
      inFlight.abort();
    }
    var controller = new AbortController();
    inFlight = controller;
    fetch(form.dataset.previewUrl, {
      method: "POST", body: new FormData(edited), credentials: "same-origin",
      headers: {"Accept": "application/json"}, signal: controller.signal
    }).then(function (response) {
      if (response.redirected) {  // to the sign-in page: the admin session has ended
        return {outcome: "failed", message: "Your admin session has ended: sign in again."};
      }
      return response.json();
    }).then(function (body) {
      if (number === sent) {  // an answer to an older edit is not shown over a newer one
        inFlight = null;
        render(body);
      }
    }).catch(function () {
      if (number === sent) {  // an aborted request is always an older one
        inFlight = null;
        show("The preview could not be computed; the settings can still be saved.", "warning");
        output.dataset.outcome = "failed";
      }
    });
  }

  function later() {
    clearTimeout(pending);
    pending = setTimeout(preview, 300);
  }

  function removable(row) {
    var button = row.querySelector("button.remove-rule");
    button.hidden = false;
    button.addEventListener("click", function () {
      row.remove();
      edited = form;
      later();
    });
  }

  if (rules && template) {
    rules.querySelectorAll("tr.role-rule").forEach(removable);
    var add = document.getElementById("add-role-rule");
    add.hidden = false;
    add.addEventListener("click", function () {
      var row = template.content.firstElementChild.cloneNode(true);
      rules.appendChild(row);
      removable(row);
      row.querySelector("input").focus();
    });
  }
  [form, toml].forEach(function (source) {
    if (!source) {
      return;
    }
    ["input", "change"].forEach(function (kind) {
      source.addEventListener(kind, function () {
        edited = source;
        later();
      });
    });
  });
  output.hidden = false;
  preview();
}());
