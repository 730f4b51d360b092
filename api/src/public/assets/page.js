// The recipient page: talks to /graphql with the public operations only. When the page is
// framed (embedded by the organization, see /p/embed.js) it also tells its parent what happens.
(function () {
  "use strict";
  var app = document.getElementById("app");
  var data = app.dataset;
  var grant = null;
  var invitationId = null;

  // ---- embedding -------------------------------------------------------------------------

  var framed = window.parent !== window;
  var allowed = (data.embedOrigins || "").split(" ").filter(Boolean);

  // The parent's origin, when it is one the organization allows. The browser already refused
  // to show this page in any other parent (frame-ancestors); the target origin of every message
  // makes sure that only that parent can read it.
  function parentOrigin() {
    var candidates = [];
    if (window.location.ancestorOrigins && window.location.ancestorOrigins.length) {
      candidates.push(window.location.ancestorOrigins[0]);
    }
    try { if (document.referrer) candidates.push(new URL(document.referrer).origin); } catch (e) { /* no referrer */ }
    var origin = new URLSearchParams(window.location.search).get("embedOrigin");
    if (origin) candidates.push(origin);
    for (var i = 0; i < candidates.length; i++) {
      if (allowed.indexOf(candidates[i]) >= 0) return candidates[i];
    }
    return null;
  }

  var target = framed ? parentOrigin() : null;

  function notify(type, extra) {
    if (!target) return;
    var message = { type: type };
    if (invitationId) message.invitationId = invitationId;
    Object.keys(extra || {}).forEach(function (k) { if (extra[k] != null) message[k] = extra[k]; });
    window.parent.postMessage(message, target);
  }

  // ---- DOM helpers -----------------------------------------------------------------------

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (attrs[k] !== false && attrs[k] != null) node.setAttribute(k, attrs[k] === true ? "" : attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function gql(query, variables) {
    return fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ query: query, variables: variables })
    }).then(function (r) { return r.json(); }).then(function (body) {
      if (body.errors && body.errors.length) {
        var first = body.errors[0];
        var e = new Error(first.message);
        var ext = first.extensions || {};
        e.code = ext.code;
        e.reason = ext.reason;
        e.field = ext.field;
        throw e;
      }
      return body.data;
    });
  }

  function show(children, focusHeading) {
    app.textContent = "";
    children.forEach(function (c) { app.appendChild(c); });
    var focus = focusHeading ? app.querySelector("h1") : app.querySelector("input:not([readonly]):not([disabled]), button");
    if (focusHeading && focus) focus.setAttribute("tabindex", "-1");
    if (focus) focus.focus();
  }

  function exitButton() {
    if (!target) return null;
    var b = el("button", { type: "button", "class": "secondary", text: "Cancel" });
    b.addEventListener("click", function () { notify("invitation.exit", { reason: "USER_EXIT" }); });
    return b;
  }

  // One control with its label, a hint (for locked values) and a place for its error.
  function field(id, label, type, value, opts) {
    opts = opts || {};
    var described = [id + "-error"];
    var hint = null;
    if (opts.hint) { hint = el("p", { id: id + "-hint", "class": "hint", text: opts.hint }); described.unshift(id + "-hint"); }
    var input = el("input", {
      id: id, name: id, type: type || "text",
      required: !!opts.required, readonly: !!opts.readonly,
      autocomplete: opts.autocomplete || false,
      maxlength: opts.maxlength || false,
      "aria-describedby": described.join(" ")
    });
    if (value) input.value = value;
    return el("div", { "class": "field" }, [el("label", { "for": id, text: label }), hint, input, errorSlot(id)]);
  }

  function errorSlot(id) { return el("p", { id: id + "-error", "class": "field-error", hidden: true }); }

  // Checkboxes in a fieldset: `options` are [value, label]; `locked` shows them read-only.
  function checkboxes(name, legend, options, checked, locked, hint) {
    var boxes = options.map(function (o) {
      var id = name + "-" + o[0];
      var box = el("input", { type: "checkbox", id: id, name: name, value: o[0], disabled: !!locked });
      box.checked = checked.indexOf(o[0]) >= 0;
      return el("span", { "class": "choice" }, [box, el("label", { "for": id, text: o[1] })]);
    });
    var parts = [el("legend", { text: legend })];
    if (hint) parts.push(el("p", { id: name + "-hint", "class": "hint", text: hint }));
    var set = el("fieldset", { id: name, "aria-describedby": (hint ? name + "-hint " : "") + name + "-error" }, parts.concat(boxes));
    set.appendChild(errorSlot(name));
    return set;
  }

  function checked(f, name) {
    return Array.prototype.filter.call(f.querySelectorAll("input[name=" + name + "]"), function (b) { return b.checked; })
      .map(function (b) { return b.value; });
  }

  // Which control a server error's `field` is about.
  var FIELD_IDS = {
    datasourceId: "providerUrl", url: "providerUrl", providerUrl: "providerUrl", providerName: "providerUrl",
    country: "country", utilityTypes: "utilityTypes", initialSites: "sites", siteIds: "sites",
    connectionOwnerEmail: "ownerEmail", ownerEmail: "ownerEmail", dataCollectionStartDate: "startDate",
    utilityUsername: "username", utilityPassword: "password", email: "email", code: "code"
  };

  function clearErrors(f) {
    Array.prototype.forEach.call(f.querySelectorAll(".field-error"), function (p) { p.hidden = true; p.textContent = ""; });
    Array.prototype.forEach.call(f.querySelectorAll("[aria-invalid]"), function (i) { i.removeAttribute("aria-invalid"); });
  }

  // Shows `text` next to the control `id`; false when the form has no such control.
  function fieldError(f, id, text) {
    var slot = f.querySelector("#" + id + "-error");
    var control = f.querySelector("#" + id);
    if (!slot || !control) return false;
    slot.textContent = text;
    slot.hidden = false;
    control.setAttribute("aria-invalid", "true");
    var focusable = control.tagName === "FIELDSET" ? control.querySelector("input:not([disabled])") : control;
    if (focusable) focusable.focus();
    return true;
  }

  function form(children, onSubmit, buttonText) {
    var err = el("p", { "class": "error", role: "alert" });
    var button = el("button", { type: "submit", text: buttonText });
    var actions = el("div", { "class": "actions" }, [button, exitButton()]);
    var f = el("form", { novalidate: true }, children.concat([actions, err]));
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors(f);
      err.textContent = "";
      var missing = Array.prototype.filter.call(f.querySelectorAll("input[required]"), function (i) { return !i.value.trim(); });
      if (missing.length) {
        missing.reverse().forEach(function (i) { fieldError(f, i.id, "Please fill in this field."); });
        return;
      }
      button.disabled = true;
      Promise.resolve(onSubmit(f)).catch(function (e) {
        var id = e.field && FIELD_IDS[e.field.replace(/\[\d+\]$/, "").replace(/^prefill\./, "")];
        if (e.code === "BAD_USER_INPUT" && id && fieldError(f, id, e.message)) return;
        err.textContent = message(e);
        if (e.code === "INVITATION_NOT_ACTIVE") notify("invitation.error", { reason: e.reason });
      }).then(function () { button.disabled = false; });
    });
    return f;
  }

  function message(e) {
    if (e.code === "INVITATION_NOT_ACTIVE") return "This invitation can no longer be used (" + (e.reason || "").toLowerCase() + ").";
    if (e.code === "EMAIL_NOT_VERIFIED") return e.reason === "TOO_MANY_ATTEMPTS" ? "Too many attempts: ask for a new code." :
      e.reason === "CODE_EXPIRED" ? "The code has expired: ask for a new one." : "That code is not right.";
    if (e.code === "RATE_LIMITED") return "Too many attempts. Please wait a minute and try again.";
    if (e.code === "BAD_USER_INPUT") return e.message;
    return "Something went wrong. Please try again.";
  }

  function value(f, name) { var i = f.elements[name]; return i && i.value.trim() ? i.value.trim() : null; }

  // ---- the details form --------------------------------------------------------------------

  var SUBMIT_FIELDS = "connectionId invitationStatus";
  var TYPES = ["ELECTRICITY", "GAS", "WATER", "SOLAR", "FUEL", "WASTE", "DISTRICT"];

  function detailsForm(info, submit) {
    var p = info.prefill || {};
    var locked = info.lockedFields || [];
    var isLocked = function (name) { return locked.indexOf(name) >= 0; };
    var lockHint = function (name) { return isLocked(name) ? "Set by " + info.companyName + "; it cannot be changed." : null; };
    var edit = info.invitationType === "EDIT_CONNECTION";
    var children = [el("h1", { text: info.companyName + " asks you to " + (edit ? "update your utility login" : "connect your utility account") })];
    if (edit) {
      if (info.connectionProvider) children.push(el("p", { text: "Provider: " + info.connectionProvider }));
    } else {
      if (p.datasourceId) {
        children.push(field("datasourceId", "Utility provider", "text", p.datasourceId,
          { readonly: isLocked("DATASOURCE_ID"), hint: lockHint("DATASOURCE_ID") }));
      }
      children.push(
        field("providerUrl", "Utility provider website", "url", p.url, { readonly: isLocked("URL"), hint: lockHint("URL"), required: !p.datasourceId }),
        field("country", "Country (two letters, e.g. FR)", "text", p.country, { readonly: isLocked("COUNTRY"), hint: lockHint("COUNTRY"), autocomplete: "country", maxlength: 2 }),
        checkboxes("utilityTypes", "Utility types", TYPES.map(function (t) { return [t, t.charAt(0) + t.slice(1).toLowerCase()]; }),
          p.utilityTypes || [], isLocked("UTILITY_TYPES"), lockHint("UTILITY_TYPES"))
      );
      var sites = info.sites || [];
      if (sites.length) {
        children.push(checkboxes("sites", "Sites this account supplies", sites.map(function (s) { return [s.id, s.name]; }),
          p.initialSites || [], isLocked("INITIAL_SITES"), lockHint("INITIAL_SITES")));
      }
      children.push(
        field("ownerEmail", "Account owner email", "email", p.connectionOwnerEmail,
          { readonly: isLocked("CONNECTION_OWNER_EMAIL"), hint: lockHint("CONNECTION_OWNER_EMAIL"), autocomplete: "email" }),
        field("startDate", "Collect data from", "date", p.dataCollectionStartDate,
          { readonly: isLocked("DATA_COLLECTION_START_DATE"), hint: lockHint("DATA_COLLECTION_START_DATE") })
      );
    }
    children.push(
      field("username", "Utility account username", "text", info.connectionUsername, { required: true, autocomplete: "username" }),
      field("password", "Utility account password", "password", null, { required: true, autocomplete: "current-password" })
    );
    var mfa = el("input", { type: "checkbox", id: "mfaForwarding", name: "mfaForwarding" });
    mfa.checked = !!info.connectionMfaForwarding;
    children.push(el("div", { "class": "field choice" }, [mfa,
      el("label", { "for": "mfaForwarding", text: "Send me the one-time sign-in codes my utility asks for (MFA forwarding)" })]));
    children.push(el("p", { "class": "note", text: "Your password is encrypted and never shown to anyone, including " + info.companyName + "." }));
    return form(children, function (f) {
      var input = { utilityUsername: value(f, "username"), utilityPassword: f.elements.password.value, mfaForwarding: mfa.checked };
      if (!edit) {
        input.datasourceId = value(f, "datasourceId");
        input.providerUrl = value(f, "providerUrl");
        input.country = value(f, "country");
        input.ownerEmail = value(f, "ownerEmail");
        input.dataCollectionStartDate = value(f, "startDate");
        input.utilityTypes = checked(f, "utilityTypes");
        if (f.querySelector("#sites")) input.siteIds = checked(f, "sites");
      }
      return submit(input).then(function (result) {
        show([el("h1", { text: "Thank you" }), el("p", { text: "Your details were sent to " + info.companyName + ". You can close this page." })], true);
        notify("invitation.submitted", { connectionId: result.connectionId });
      });
    }, "Submit");
  }

  // ---- the email gate ----------------------------------------------------------------------

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
      form([field("email", "Your email address", "email", null, { required: true, autocomplete: "email" })], function (f) {
        var email = value(f, "email");
        return gql("mutation($t: String!, $e: String!) { requestEmailVerification(token: $t, email: $e) }", { t: data.token, e: email })
          .then(function () { askCode(info, email, done); });
      }, "Send code")]);
  }

  function askCode(info, email, done) {
    show([el("h1", { text: "Check your inbox" }),
      el("p", { text: "If " + email + " may use this invitation, a code is on its way. It is valid for 10 minutes." }),
      form([field("code", "6-digit code", "text", null, { required: true, autocomplete: "one-time-code", maxlength: 6 })], function (f) {
        return gql("mutation($t: String!, $e: String!, $c: String!) { verifyEmail(token: $t, email: $e, code: $c) { grant } }",
          { t: data.token, e: email, c: value(f, "code") })
          .then(function (d) { grant = d.verifyEmail.grant; done(); });
      }, "Verify")]);
  }

  // ---- the flows ---------------------------------------------------------------------------

  function failedToOpen(title, e) {
    show([el("h1", { text: title }), el("p", { text: message(e) })], true);
    notify("invitation.error", { reason: e.reason || e.code || "INTERNAL_SERVER_ERROR" });
  }

  var PUBLIC_FIELDS = "invitationId invitationType companyName lockedFields emailVerificationRequired expiresAt " +
    "connectionProvider connectionUsername connectionMfaForwarding sites { id name } " +
    "prefill { datasourceId url country initialSites utilityTypes connectionOwnerEmail dataCollectionStartDate }";

  function startInvitation() {
    gql("query($t: String!) { publicInvitation(token: $t) { " + PUBLIC_FIELDS + " } }", { t: data.token }).then(function (d) {
      var info = d.publicInvitation;
      invitationId = info.invitationId;
      gql("mutation($t: String!) { recordInvitationView(token: $t) }", { t: data.token }).catch(function () {});
      var showForm = function () {
        show([detailsForm(info, function (input) {
          return gql("mutation($t: String!, $g: String, $i: ConnectionInput!) { submitInvitation(token: $t, grant: $g, input: $i) { " + SUBMIT_FIELDS + " } }",
            { t: data.token, g: grant, i: input }).then(function (r) { return r.submitInvitation; });
        })]);
      };
      if (info.emailVerificationRequired) emailGate(info, showForm); else showForm();
      notify("invitation.loaded");
    }).catch(function (e) { failedToOpen("This invitation cannot be used", e); });
  }

  function startLink(edit) {
    var vars = { p: data.publicId, s: data.secret, e: edit };
    gql("query($p: String!, $s: String!, $e: Boolean!) { publicMagicLink(publicCompanyId: $p, secret: $s, edit: $e) { " +
        "invitationType companyName connectionProvider connectionUsername connectionMfaForwarding sites { id name } } }", vars)
      .then(function (d) {
        show([detailsForm(d.publicMagicLink, function (input) {
          return gql("mutation($p: String!, $s: String!, $e: Boolean!, $i: ConnectionInput!) { submitMagicLink(publicCompanyId: $p, secret: $s, edit: $e, input: $i) { " + SUBMIT_FIELDS + " } }",
            { p: data.publicId, s: data.secret, e: edit, i: input }).then(function (r) { return r.submitMagicLink; });
        })]);
        notify("invitation.loaded");
      }).catch(function (e) { failedToOpen("This link cannot be used", e); });
  }

  function startExpired() {
    notify("invitation.error", { reason: "EXPIRED" });
    var f = document.getElementById("renewal");
    if (!f) return;
    f.addEventListener("submit", function (ev) {
      ev.preventDefault();
      clearErrors(f);
      var email = f.elements.email.value.trim();
      if (!email) { fieldError(f, "renewal-email", "Please enter your email address."); return; }
      gql("mutation($t: String!, $e: String!) { requestInvitationRenewal(token: $t, email: $e) }", { t: data.token, e: email })
        .then(function () {
          show([el("h1", { text: "Request sent" }), el("p", { text: "If your address was invited, the sender has been told you need a new link." })], true);
        })
        .catch(function (e) { fieldError(f, "renewal-email", message(e)); });
    });
  }

  if (data.kind === "invitation") startInvitation();
  else if (data.kind === "company-link") startLink(false);
  else if (data.kind === "edit-link") startLink(true);
  else if (data.kind === "expired") startExpired();
  else if (data.kind === "revoked") notify("invitation.error", { reason: "REVOKED" });
  else if (data.kind === "fulfilled") notify("invitation.error", { reason: "FULFILLED" });
})();
