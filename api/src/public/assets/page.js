// The recipient page: talks to /graphql with the public operations only.
(function () {
  "use strict";
  var app = document.getElementById("app");
  var data = app.dataset;
  var grant = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }

  function gql(query, variables) {
    return fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ query: query, variables: variables })
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (body.errors && body.errors.length) {
        var e = new Error(body.errors[0].message);
        e.code = (body.errors[0].extensions || {}).code;
        e.reason = (body.errors[0].extensions || {}).reason;
        e.field = (body.errors[0].extensions || {}).field;
        throw e;
      }
      return body.data;
    });
  }

  function show(children) {
    app.textContent = "";
    children.forEach(function (c) { app.appendChild(c); });
    var focus = app.querySelector("input:not([readonly]), button");
    if (focus) focus.focus();
  }

  function field(id, label, type, value, opts) {
    opts = opts || {};
    var input = el("input", { id: id, name: id, type: type || "text" });
    if (value) input.value = value;
    if (opts.required) input.required = true;
    if (opts.readonly) input.readOnly = true;
    if (opts.autocomplete) input.setAttribute("autocomplete", opts.autocomplete);
    return [el("label", { "for": id, text: label }), input];
  }

  function errorBox() { return el("p", { "class": "error", role: "alert" }); }

  function form(children, onSubmit, buttonText) {
    var err = errorBox();
    var button = el("button", { type: "submit", text: buttonText });
    var f = el("form", { novalidate: "" }, children.concat([button, err]));
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!f.checkValidity()) { err.textContent = "Please fill in the required fields."; return; }
      button.disabled = true;
      err.textContent = "";
      Promise.resolve(onSubmit(f)).catch(function (e) {
        err.textContent = message(e);
      }).then(function () { button.disabled = false; });
    });
    return f;
  }

  function message(e) {
    if (e.code === "INVITATION_NOT_ACTIVE") return "This invitation can no longer be used (" + (e.reason || "").toLowerCase() + ").";
    if (e.code === "EMAIL_NOT_VERIFIED") return e.reason === "TOO_MANY_ATTEMPTS" ? "Too many attempts: ask for a new code." :
      e.reason === "CODE_EXPIRED" ? "The code has expired: ask for a new one." : "That code is not right.";
    if (e.code === "RATE_LIMITED") return "Too many attempts. Please wait a minute and try again.";
    if (e.code === "BAD_USER_INPUT") return e.message + (e.field ? " (" + e.field + ")" : "");
    return "Something went wrong. Please try again.";
  }

  function value(f, name) { var i = f.elements[name]; return i && i.value.trim() ? i.value.trim() : null; }

  var SUBMIT_FIELDS = "connectionId invitationStatus";

  function detailsForm(info, submit) {
    var p = info.prefill || {};
    var locked = info.lockedFields || [];
    var isLocked = function (name) { return locked.indexOf(name) >= 0; };
    var children = [el("h1", { text: info.companyName + " asks you to " + (info.invitationType === "EDIT_CONNECTION" ? "update your utility login" : "connect your utility account") })];
    if (info.invitationType === "EDIT_CONNECTION") {
      if (info.connectionProvider) children.push(el("p", { text: "Provider: " + info.connectionProvider }));
    } else {
      children = children.concat(
        field("providerUrl", "Utility provider website", "url", p.url, { readonly: isLocked("URL") }),
        field("country", "Country (two letters)", "text", p.country, { readonly: isLocked("COUNTRY") }),
        field("ownerEmail", "Account owner email", "email", p.connectionOwnerEmail, { readonly: isLocked("CONNECTION_OWNER_EMAIL"), autocomplete: "email" }),
        field("startDate", "Collect data from (YYYY-MM-DD)", "text", p.dataCollectionStartDate, { readonly: isLocked("DATA_COLLECTION_START_DATE") })
      );
      var types = ["ELECTRICITY", "GAS", "WATER", "SOLAR", "FUEL", "WASTE", "DISTRICT"];
      var boxes = types.map(function (t) {
        var id = "type-" + t;
        var box = el("input", { type: "checkbox", id: id, name: "utilityTypes", value: t });
        if ((p.utilityTypes || []).indexOf(t) >= 0) box.checked = true;
        if (isLocked("UTILITY_TYPES")) box.disabled = true;
        return el("span", {}, [box, el("label", { "for": id, text: t.charAt(0) + t.slice(1).toLowerCase() })]);
      });
      children.push(el("fieldset", {}, [el("legend", { text: "Utility types" })].concat(boxes)));
    }
    children = children.concat(
      field("username", "Utility account username", "text", info.connectionUsername, { required: true, autocomplete: "username" }),
      field("password", "Utility account password", "password", null, { required: true, autocomplete: "current-password" }),
      [el("p", { "class": "note", text: "Your password is encrypted and never shown to anyone, including the sender." })]
    );
    return form(children, function (f) {
      var input = { utilityUsername: value(f, "username"), utilityPassword: f.elements.password.value };
      if (info.invitationType !== "EDIT_CONNECTION") {
        input.providerUrl = value(f, "providerUrl");
        input.country = value(f, "country");
        input.ownerEmail = value(f, "ownerEmail");
        input.dataCollectionStartDate = value(f, "startDate");
        input.utilityTypes = Array.prototype.filter.call(f.querySelectorAll("input[name=utilityTypes]"), function (b) { return b.checked; })
          .map(function (b) { return b.value; });
        if (p.initialSites && p.initialSites.length) input.siteIds = p.initialSites;
      }
      return submit(input).then(function () {
        show([el("h1", { text: "Thank you" }), el("p", { text: "Your details were sent to " + info.companyName + ". You can close this page." })]);
      });
    }, "Submit");
  }

  function emailGate(info, done) {
    var params = new URLSearchParams(window.location.search);
    if (params.get("email") && params.get("sig")) {
      return gql("mutation($t: String!, $e: String!, $s: String!) { verifyEmailLink(token: $t, email: $e, signature: $s) { grant } }",
        { t: data.token, e: params.get("email"), s: params.get("sig") })
        .then(function (d) { grant = d.verifyEmailLink.grant; done(); })
        .catch(function () { askEmail(info, done); });
    }
    askEmail(info, done);
  }

  function askEmail(info, done) {
    show([el("h1", { text: info.companyName + " invited you" }),
      el("p", { text: "First, confirm your email address. We will send you a 6-digit code." }),
      form(field("email", "Your email address", "email", null, { required: true, autocomplete: "email" }), function (f) {
        var email = value(f, "email");
        return gql("mutation($t: String!, $e: String!) { requestEmailVerification(token: $t, email: $e) }", { t: data.token, e: email })
          .then(function () { askCode(info, email, done); });
      }, "Send code")]);
  }

  function askCode(info, email, done) {
    show([el("h1", { text: "Check your inbox" }),
      el("p", { text: "If " + email + " may use this invitation, a code is on its way. It is valid for 10 minutes." }),
      form(field("code", "6-digit code", "text", null, { required: true, autocomplete: "one-time-code" }), function (f) {
        return gql("mutation($t: String!, $e: String!, $c: String!) { verifyEmail(token: $t, email: $e, code: $c) { grant } }",
          { t: data.token, e: email, c: value(f, "code") })
          .then(function (d) { grant = d.verifyEmail.grant; done(); });
      }, "Verify")]);
  }

  var PUBLIC_FIELDS = "invitationType companyName lockedFields emailVerificationRequired expiresAt connectionProvider connectionUsername " +
    "prefill { datasourceId url country initialSites utilityTypes connectionOwnerEmail dataCollectionStartDate }";

  function startInvitation() {
    gql("query($t: String!) { publicInvitation(token: $t) { " + PUBLIC_FIELDS + " } }", { t: data.token }).then(function (d) {
      var info = d.publicInvitation;
      gql("mutation($t: String!) { recordInvitationView(token: $t) }", { t: data.token }).catch(function () {});
      var showForm = function () {
        show([detailsForm(info, function (input) {
          return gql("mutation($t: String!, $g: String, $i: ConnectionInput!) { submitInvitation(token: $t, grant: $g, input: $i) { " + SUBMIT_FIELDS + " } }",
            { t: data.token, g: grant, i: input });
        })]);
      };
      if (info.emailVerificationRequired) emailGate(info, showForm); else showForm();
    }).catch(function (e) { show([el("h1", { text: "This invitation cannot be used" }), el("p", { text: message(e) })]); });
  }

  function startLink(edit) {
    var vars = { p: data.publicId, s: data.secret, e: edit };
    gql("query($p: String!, $s: String!, $e: Boolean!) { publicMagicLink(publicCompanyId: $p, secret: $s, edit: $e) { invitationType companyName connectionProvider connectionUsername } }", vars)
      .then(function (d) {
        show([detailsForm(d.publicMagicLink, function (input) {
          return gql("mutation($p: String!, $s: String!, $e: Boolean!, $i: ConnectionInput!) { submitMagicLink(publicCompanyId: $p, secret: $s, edit: $e, input: $i) { " + SUBMIT_FIELDS + " } }",
            { p: data.publicId, s: data.secret, e: edit, i: input });
        })]);
      }).catch(function (e) { show([el("h1", { text: "This link cannot be used" }), el("p", { text: message(e) })]); });
  }

  function startExpired() {
    var f = document.getElementById("renewal");
    if (!f) return;
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      gql("mutation($t: String!, $e: String!) { requestInvitationRenewal(token: $t, email: $e) }", { t: data.token, e: f.elements.email.value })
        .then(function () { show([el("h1", { text: "Request sent" }), el("p", { text: "If your address was invited, the sender has been told you need a new link." })]); })
        .catch(function (e) { f.appendChild(el("p", { "class": "error", role: "alert", text: message(e) })); });
    });
  }

  if (data.kind === "invitation") startInvitation();
  else if (data.kind === "company-link") startLink(false);
  else if (data.kind === "edit-link") startLink(true);
  else if (data.kind === "expired") startExpired();
})();
