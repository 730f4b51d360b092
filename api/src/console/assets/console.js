// The operator console: sign in with an API key, then companies, their live Invitations
// table, invitation details with revoke and resend, and webhook endpoints. Every read and
// write is a public GraphQL operation (see api.js).

import { ApiError, Live, allPages, gql, session, whenUnauthenticated } from "./api.js";
import {
  badge, checkboxes, checkedValues, copyable, empty, field, formBanner, formatTime, h, input, modal,
  onSubmit, row, select, showError, table, time, typeName,
} from "./views.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const indicator = document.getElementById("live");
const announcer = document.getElementById("announcer");

const PAGE_SIZE = 20;
// How far back the Invitations table's live feed starts (an RFC 3339 `since`), so an event
// committed between the table's read and the subscription is not missed; replayed events only
// refresh rows, so seeing one twice is harmless.
const REPLAY_MARGIN_MS = 5 * 60 * 1000;

const STATES = { connecting: "Connecting…", live: "Live", offline: "Offline: reconnecting…" };
const live = new Live((state) => {
  indicator.dataset.state = state;
  indicator.textContent = STATES[state];
});

function announce(text) { announcer.textContent = text; }

// ---- GraphQL documents ----------------------------------------------------------------

const ROW = `fragment Row on Invitation {
  id status invitationType allowedEmails useCount maxUses expiresAt createdAt lastActivityAt }`;

const Q = {
  viewer: "query { viewer { apiKeyName organization { name } } }",
  companies: "query($after: ID) { companies(first: 100, after: $after) { id name displayName createdAt } }",
  createCompany: "mutation($input: CreateCompanyInput!) { createCompany(input: $input) { id } }",
  company: `query($id: ID!) { company(id: $id) { id name displayName sites(first: 100) { id name } } }`,
  connections: `query($id: ID!) { connections(companyId: $id, first: 100) {
    id status providerName providerUrl utilityUsername } }`,
  invitations: `${ROW} query($c: ID!, $filter: InvitationFilter, $first: Int, $after: String) {
    invitations(companyId: $c, filter: $filter, first: $first, after: $after) {
      totalCount pageInfo { hasNextPage endCursor } nodes { ...Row } } }`,
  row: `${ROW} query($id: ID!) { invitation(id: $id) { ...Row } }`,
  companyActivity: `subscription($c: ID!, $since: String) { companyActivity(companyId: $c, since: $since) {
    cursor invitationId eventType occurredAt } }`,
  invitationActivity: "subscription($id: ID!) { invitationActivity(invitationId: $id) { id eventType } }",
  detail: `${ROW} query($id: ID!) { invitation(id: $id) { ...Row invitationUrl companyId company { id name }
    connectionId connection { id providerName utilityUsername } createdBy revokedAt revokedReason fulfilledAt
    remainingUses remindBeforeExpirySeconds lockedFields
    prefill { datasourceId url country initialSites utilityTypes connectionOwnerEmail dataCollectionStartDate }
    deliveries(first: 100) { id kind recipient status attempts lastError createdAt sentAt }
    createdConnections(first: 100) { id status providerName utilityUsername createdAt } } }`,
  events: `query($id: ID!, $after: String) { invitation(id: $id) { events(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor } nodes { id eventType occurredAt actor email connectionId detail } } } }`,
  createContributor: `mutation($c: ID!, $input: InvitationInput!) {
    createContributorInvitation(companyId: $c, input: $input) { id invitationUrl } }`,
  createReconnect: `mutation($conn: ID!, $input: InvitationInput!) {
    createReconnectInvitation(connectionId: $conn, input: $input) { id invitationUrl } }`,
  revoke: "mutation($id: ID!, $reason: String) { revokeInvitation(id: $id, reason: $reason) { id status } }",
  resend: `mutation($id: ID!, $input: ResendInvitationInput) {
    resendInvitation(id: $id, input: $input) { id status invitationUrl } }`,
  endpoints: `query($after: String) { webhookEventTypes webhookEndpoints(first: 100, after: $after) {
    pageInfo { hasNextPage endCursor } nodes { id url description eventTypes status createdAt } } }`,
  endpoint: `query($id: ID!, $after: String) { webhookEventTypes webhookEndpoint(id: $id) {
      id url description eventTypes status disabledReason failingSince previousSecretExpiresAt createdAt }
    webhookDeliveries(endpointId: $id, first: 20, after: $after) { pageInfo { hasNextPage endCursor }
      nodes { id eventType status attemptCount nextAttemptAt lastError replayOf createdAt finishedAt
        attempts { attemptedAt durationMs outcome httpStatus error } } } }`,
  createEndpoint: `mutation($input: CreateWebhookEndpointInput!) {
    createWebhookEndpoint(input: $input) { secret endpoint { id } } }`,
  updateEndpoint: `mutation($id: ID!, $input: UpdateWebhookEndpointInput!) {
    updateWebhookEndpoint(id: $id, input: $input) { id } }`,
  enableEndpoint: "mutation($id: ID!) { enableWebhookEndpoint(id: $id) { id } }",
  disableEndpoint: "mutation($id: ID!) { disableWebhookEndpoint(id: $id) { id } }",
  rotateSecret: "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { secret } }",
  deleteEndpoint: "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }",
  replay: "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id } }",
};

// ---- layout ---------------------------------------------------------------------------

// Replaces the view; the heading takes the focus so screen readers announce the new page.
function show(title, ...children) {
  document.title = `${title} · Invitations console`;
  const heading = h("h1", { tabindex: "-1", text: title });
  main.replaceChildren(heading, ...children);
  heading.focus();
  return heading;
}

function backLink(href, text) { return h("p", { class: "back" }, h("a", { href, text })); }

// A section whose content failed to load shows why, and how to get back.
function failure(error) {
  return h("div", { class: "failure", role: "alert" },
    h("p", { text: `This could not be loaded: ${error.message} (${error.code || "ERROR"}).` }),
    h("p", {}, h("a", { href: "#/", text: "Back to the companies" })));
}

function usesText(inv) { return `${inv.useCount} / ${inv.maxUses == null ? "∞" : inv.maxUses}`; }

// ---- sign in --------------------------------------------------------------------------

function signInView() {
  nav.hidden = true;
  indicator.hidden = true;
  const key = input({ type: "password", id: "api-key", autocomplete: "off", spellcheck: "false", required: true });
  const form = h("form", { id: "sign-in", novalidate: true },
    field("API key", key, {
      field: "apiKey",
      hint: "The key printed when the gateway first started, or one made with “invitations api-key create”. "
        + "It is kept only in this browser tab.",
    }),
    formBanner(),
    h("button", { type: "submit", text: "Sign in" }));
  onSubmit(form, async () => {
    const value = key.value.trim();
    if (!value) throw new ApiError("Paste an API key.", { code: "BAD_USER_INPUT", field: "apiKey" });
    try {
      await gql(Q.viewer, {}, value);
    } catch (e) {
      if (e.code === "UNAUTHENTICATED") {
        throw new ApiError("This API key was not accepted. Check that you pasted the whole key and that it "
          + "has not been revoked.", { code: e.code, field: "apiKey" });
      }
      throw e;
    }
    session.set(value);
    await start();
  });
  show("Sign in to the Invitations console",
    h("p", { text: "Manage your organization's invitations and webhooks with an API key." }), form);
  key.focus();
}

function signOut() {
  live.stop();
  session.clear();
  location.hash = "#/";
  route();
}

whenUnauthenticated(() => {
  signOut();
  const banner = h("p", { class: "form-error", role: "alert", text: "The API key is no longer accepted: sign in again." });
  main.querySelector("form").before(banner);
});

async function start() {
  const { viewer } = await gql(Q.viewer);
  document.getElementById("org").textContent = `${viewer.organization.name} · key “${viewer.apiKeyName}”`;
  nav.hidden = false;
  indicator.hidden = false;
  live.start();
  await route();
}

// ---- companies ------------------------------------------------------------------------

async function companiesView() {
  const list = h("div", { id: "companies" }, h("p", { text: "Loading…" }));
  const name = input({ id: "company-name", required: true, maxlength: "200" });
  const display = input({ id: "company-display-name", maxlength: "200" });
  const form = h("form", { id: "create-company", class: "card", novalidate: true },
    h("h2", { text: "New company" }),
    field("Name", name, { field: "name" }),
    field("Display name (shown to recipients; optional)", display, { field: "displayName" }),
    formBanner(),
    h("button", { type: "submit", text: "Create company" }));
  onSubmit(form, async () => {
    const input = { name: name.value.trim() };
    if (display.value.trim()) input.displayName = display.value.trim();
    const { createCompany } = await gql(Q.createCompany, { input });
    location.hash = `#/companies/${createCompany.id}`;
  });
  show("Companies", list, form);
  let companies;
  try {
    companies = [];
    let after = null;
    for (;;) {
      const page = (await gql(Q.companies, { after })).companies;
      companies.push(...page);
      if (page.length < 100) break;
      after = page[page.length - 1].id;
    }
  } catch (e) {
    list.replaceChildren(failure(e));
    return;
  }
  if (companies.length === 0) {
    list.replaceChildren(empty("No companies yet. Invitations belong to a company: create the first one below."));
    return;
  }
  const columns = ["Company", "Shown to recipients as", "Created"];
  list.replaceChildren(table("Companies", columns, companies.map((c) => row(columns, [
    h("a", { href: `#/companies/${c.id}`, text: c.name }), c.displayName, time(c.createdAt),
  ]))));
}

// ---- the Invitations table -------------------------------------------------------------

const STATUS_OPTIONS = [["", "Any status"], ["ACTIVE", "Active"], ["EXPIRED", "Expired"], ["REVOKED", "Revoked"], ["FULFILLED", "Fulfilled"]];
const TYPE_OPTIONS = [["", "Any type"], ["CREATE_CONNECTION", "Contributor"], ["EDIT_CONNECTION", "Reconnect"]];
const TABLE_COLUMNS = ["Status", "Type", "Allowed emails", "Uses", "Expires", "Created", "Last activity", ""];

function invitationRow(inv) {
  return row(TABLE_COLUMNS, [
    badge(inv.status),
    typeName(inv.invitationType),
    inv.allowedEmails.length ? inv.allowedEmails.join(", ") : h("span", { class: "muted", text: "anyone with the link" }),
    usesText(inv),
    time(inv.expiresAt, "never"),
    time(inv.createdAt),
    time(inv.lastActivityAt),
    h("a", {
      href: `#/invitations/${inv.id}`,
      "aria-label": `Details of the ${typeName(inv.invitationType).toLowerCase()} invitation for `
        + `${inv.allowedEmails.join(", ") || "anyone with the link"}, created ${formatTime(inv.createdAt)}`,
      text: "Details",
    }),
  ], { "data-id": inv.id });
}

// A date input's day as an instant: the start of the day (UTC), or of the next day for an
// inclusive "to" date.
function dayStart(value, next) {
  if (!value) return undefined;
  const day = new Date(`${value}T00:00:00Z`);
  if (next) day.setUTCDate(day.getUTCDate() + 1);
  return day.toISOString();
}

async function companyView(companyId) {
  let company;
  try {
    company = (await gql(Q.company, { id: companyId })).company;
  } catch (e) {
    show("Company not found", failure(e));
    return null;
  }
  const status = select({ id: "filter-status" }, STATUS_OPTIONS, "");
  const type = select({ id: "filter-type" }, TYPE_OPTIONS, "");
  const email = input({ id: "filter-email", type: "email", autocomplete: "off" });
  const from = input({ id: "filter-from", type: "date" });
  const to = input({ id: "filter-to", type: "date" });
  const filters = h("form", { id: "filters", class: "filters", novalidate: true, "aria-label": "Filter invitations" },
    field("Status", status, { field: "filter.status" }),
    field("Type", type, { field: "filter.invitationType" }),
    field("Allowed email", email, { field: "filter.email" }),
    field("Created from", from, { field: "filter.createdAfter" }),
    field("Created to", to, { field: "filter.createdBefore" }),
    formBanner(),
    h("div", { class: "actions" },
      h("button", { type: "submit", text: "Apply filters" }),
      h("button", { type: "reset", class: "secondary", text: "Clear" })));
  const summary = h("p", { id: "table-summary", class: "summary", "aria-live": "polite" });
  const results = h("div", { id: "invitations" }, h("p", { text: "Loading…" }));
  const previous = h("button", { type: "button", class: "secondary", id: "page-previous", text: "Previous page" });
  const next = h("button", { type: "button", class: "secondary", id: "page-next", text: "Next page" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of invitations" }, previous, next);

  // `cursors[i]` is the `after` of page i.
  let cursors = [null];
  // What each row shows, so a live event that changed nothing leaves its row alone.
  const shownRows = new Map();
  let page = 0;
  let filter = {};

  async function load() {
    let data;
    try {
      data = (await gql(Q.invitations, { c: companyId, filter, first: PAGE_SIZE, after: cursors[page] })).invitations;
    } catch (e) {
      showError(filters, e);
      results.replaceChildren();
      summary.textContent = "";
      return;
    }
    cursors[page + 1] = data.pageInfo.endCursor;
    previous.disabled = page === 0;
    next.disabled = !data.pageInfo.hasNextPage;
    pager.hidden = page === 0 && !data.pageInfo.hasNextPage;
    const filtered = Object.keys(filter).length > 0;
    const first = page * PAGE_SIZE + 1;
    summary.textContent = data.totalCount === 0 ? ""
      : `Invitations ${first}–${first + data.nodes.length - 1} of ${data.totalCount}${filtered ? " matching the filters" : ""}`;
    if (data.nodes.length === 0) {
      results.replaceChildren(filtered
        ? empty("No invitation matches these filters. Clear them to see every invitation.")
        : empty("This company has no invitations yet. Create one to send a link to the person who holds the utility account.",
          h("a", { class: "button", href: `#/companies/${companyId}/new`, text: "New contributor invitation" })));
      return;
    }
    shownRows.clear();
    data.nodes.forEach((inv) => shownRows.set(inv.id, JSON.stringify(inv)));
    results.replaceChildren(table("Invitations", TABLE_COLUMNS, data.nodes.map(invitationRow)));
  }

  onSubmit(filters, async () => {
    filter = {};
    if (status.value) filter.status = status.value;
    if (type.value) filter.invitationType = type.value;
    if (email.value.trim()) filter.email = email.value.trim();
    if (from.value) filter.createdAfter = dayStart(from.value, false);
    if (to.value) filter.createdBefore = dayStart(to.value, true);
    cursors = [null];
    page = 0;
    await load();
  });
  filters.addEventListener("reset", () => {
    filter = {};
    cursors = [null];
    page = 0;
    setTimeout(load);
  });
  previous.addEventListener("click", () => { page = Math.max(0, page - 1); load(); });
  next.addEventListener("click", () => { page += 1; load(); });

  show(company.name,
    backLink("#/", "All companies"),
    h("div", { class: "actions" },
      h("a", { class: "button", id: "new-invitation", href: `#/companies/${companyId}/new`, text: "New contributor invitation" }),
      h("a", { class: "button secondary", href: `#/companies/${companyId}/reconnect`, text: "New reconnect invitation" })),
    h("h2", { text: "Invitations" }),
    filters, summary, results, pager);
  await load();

  // Live: a row changes in place when its invitation has an event; a new invitation appears
  // on the first page. Events are gathered for a moment, so a burst (the replay at the start,
  // a bulk create) costs one read per row shown, or one reload of the page.
  let cursor = null;
  const since = new Date(Date.now() - REPLAY_MARGIN_MS).toISOString();
  const stale = new Set();
  let added = false;
  let timer = null;
  const flush = async () => {
    timer = null;
    const ids = [...stale];
    stale.clear();
    if (added && page === 0) {
      added = false;
      await load();
      announce("New invitations were added to the table.");
      return;
    }
    added = false;
    for (const id of ids) {
      const current = results.querySelector(`tr[data-id="${id}"]`);
      if (!current) continue;
      const { invitation } = await gql(Q.row, { id });
      const json = JSON.stringify(invitation);
      if (shownRows.get(id) === json) continue;
      shownRows.set(id, json);
      const before = current.querySelector("[data-status]").dataset.status;
      const target = results.querySelector(`tr[data-id="${id}"]`);
      if (target) target.replaceWith(invitationRow(invitation));
      if (before !== invitation.status) announce(`An invitation is now ${invitation.status}.`);
    }
  };
  return live.subscribe(Q.companyActivity, () => ({ c: companyId, since: cursor || since }), (data) => {
    const event = data.companyActivity;
    if (event.cursor) cursor = event.cursor;
    if (results.querySelector(`tr[data-id="${event.invitationId}"]`)) stale.add(event.invitationId);
    else if (event.eventType === "CREATED") added = true;
    if (!timer) timer = setTimeout(() => { flush().catch(() => {}); }, 100);
  });
}

// ---- creating invitations -------------------------------------------------------------

const UNITS = [["60", "minutes"], ["3600", "hours"], ["86400", "days"]];

// A number of minutes, hours or days, given to the API in seconds.
function duration(label, apiField, opts) {
  const amount = input({ type: "number", min: "1", step: "1", inputmode: "numeric" });
  const unit = select({ "aria-label": `${label}: unit` }, UNITS, (opts && opts.unit) || "86400");
  if (opts && opts.value) amount.value = opts.value;
  const node = h("div", { class: "duration" }, field(label, amount, { field: apiField, hint: opts && opts.hint }), unit);
  return {
    node,
    seconds() {
      if (amount.value.trim() === "") return undefined;
      return Math.round(Number(amount.value) * Number(unit.value));
    },
  };
}

function emailList(text) { return text.split(/[\s,;]+/).map((e) => e.trim()).filter(Boolean); }

// The settings both kinds of invitation share (SPEC 3.1).
function invitationSettings() {
  const emails = h("textarea", { rows: "3", autocomplete: "off", spellcheck: "false" });
  const expires = duration("Expires in", "expiresInSeconds", { value: "7", hint: "Leave empty for a link that never expires." });
  const maxUses = input({ type: "number", min: "1", step: "1", inputmode: "numeric" });
  const send = h("input", { type: "checkbox" });
  const remind = duration("Reminder before expiry", "remindBeforeExpirySeconds", {
    unit: "3600", hint: "Emails the allowed addresses this long before the deadline if the link is unused. Optional.",
  });
  const node = h("fieldset", { class: "card" }, h("legend", { text: "Link settings" }),
    field("Allowed emails", emails, {
      field: "allowedEmails",
      hint: "One per line. Only these people can use the link (they prove it with a code). Empty: anyone with the link.",
    }),
    expires.node,
    field("Maximum uses", maxUses, { field: "maxUses", hint: "Leave empty for unlimited uses." }),
    field("Email the link to the allowed addresses", send, { field: "sendEmail", inline: true }),
    remind.node);
  return {
    node,
    values() {
      const v = { allowedEmails: emailList(emails.value), sendEmail: send.checked };
      const expiry = expires.seconds();
      if (expiry !== undefined) v.expiresInSeconds = expiry;
      if (maxUses.value.trim()) v.maxUses = Number(maxUses.value);
      const reminder = remind.seconds();
      if (reminder !== undefined) v.remindBeforeExpirySeconds = reminder;
      return v;
    },
  };
}

const UTILITY_TYPES = ["ELECTRICITY", "GAS", "WATER", "SOLAR", "FUEL", "WASTE", "DISTRICT"];
const LOCKS = [
  ["DATASOURCE_ID", "Provider id"], ["URL", "Provider website"], ["COUNTRY", "Country"],
  ["INITIAL_SITES", "Sites"], ["UTILITY_TYPES", "Utility types"],
  ["CONNECTION_OWNER_EMAIL", "Connection owner"], ["DATA_COLLECTION_START_DATE", "Collection start date"],
];
const capitalized = (s) => s.charAt(0) + s.slice(1).toLowerCase();

function prefillSettings(company) {
  const datasource = input({ autocomplete: "off" });
  const url = input({ type: "url", autocomplete: "off", placeholder: "https://" });
  const country = input({ maxlength: "2", autocomplete: "off", class: "short" });
  const owner = input({ type: "email", autocomplete: "off" });
  const start = input({ type: "date" });
  const sites = checkboxes("Sites", "prefill-sites", company.sites.map((s) => [s.id, s.name]), [],
    { field: "prefill.initialSites", empty: "This company has no sites." });
  const types = checkboxes("Utility types", "prefill-types", UTILITY_TYPES.map((t) => [t, capitalized(t)]), [],
    { field: "prefill.utilityTypes" });
  const locks = checkboxes("Locked fields", "locked", LOCKS, [],
    { field: "lockedFields", hint: "The recipient sees these prefilled values but cannot change them." });
  const node = h("fieldset", { class: "card" }, h("legend", { text: "Prefill (optional)" }),
    field("Provider id", datasource, { field: "prefill.datasourceId" }),
    field("Provider website", url, { field: "prefill.url" }),
    field("Country (ISO code, e.g. FR)", country, { field: "prefill.country" }),
    types, sites,
    field("Connection owner email", owner, { field: "prefill.connectionOwnerEmail" }),
    field("Collect data from", start, { field: "prefill.dataCollectionStartDate" }),
    locks);
  return {
    node,
    values(root) {
      const prefill = {};
      if (datasource.value.trim()) prefill.datasourceId = datasource.value.trim();
      if (url.value.trim()) prefill.url = url.value.trim();
      if (country.value.trim()) prefill.country = country.value.trim().toUpperCase();
      if (owner.value.trim()) prefill.connectionOwnerEmail = owner.value.trim();
      if (start.value) prefill.dataCollectionStartDate = start.value;
      const chosenSites = checkedValues(root, "prefill-sites");
      if (chosenSites.length) prefill.initialSites = chosenSites;
      const chosenTypes = checkedValues(root, "prefill-types");
      if (chosenTypes.length) prefill.utilityTypes = chosenTypes;
      return { prefill, lockedFields: checkedValues(root, "locked") };
    },
  };
}

// What the operator sees once an invitation exists: its link, ready to copy.
function created(invitation, companyId) {
  const panel = h("section", { id: "created", class: "card success", "aria-labelledby": "created-title" },
    h("h2", { id: "created-title", tabindex: "-1", text: "Invitation created" }),
    h("p", { text: "Send this link to the person who holds the utility account." }),
    copyable("Link", invitation.invitationUrl, { id: "new-link" }),
    h("p", { class: "actions" },
      h("a", { href: `#/invitations/${invitation.id}`, text: "Open its details" }),
      h("a", { href: `#/companies/${companyId}`, text: "Back to the invitations" })));
  return panel;
}

async function newInvitationView(companyId, reconnect) {
  let company;
  let connections = [];
  try {
    company = (await gql(Q.company, { id: companyId })).company;
    if (reconnect) connections = (await gql(Q.connections, { id: companyId })).connections;
  } catch (e) {
    show("Company not found", failure(e));
    return;
  }
  const title = reconnect ? "New reconnect invitation" : "New contributor invitation";
  const settings = invitationSettings();
  const prefill = reconnect ? null : prefillSettings(company);
  const connection = reconnect ? select({ id: "connection", required: true },
    connections.map((c) => [c.id, `${c.providerName || c.providerUrl || "Connection"} · ${c.utilityUsername || "no username"} · ${c.status}`]))
    : null;
  if (reconnect && connections.length === 0) {
    show(title, backLink(`#/companies/${companyId}`, company.name),
      empty("This company has no connections to repair yet. A reconnect invitation is for an existing connection; "
        + "create a contributor invitation to get a first one.",
      h("a", { class: "button", href: `#/companies/${companyId}/new`, text: "New contributor invitation" })));
    return;
  }
  const form = h("form", { id: "create-invitation", novalidate: true },
    reconnect ? field("Connection to repair", connection, { field: "connectionId" }) : null,
    settings.node,
    prefill ? prefill.node : null,
    formBanner(),
    h("button", { type: "submit", text: reconnect ? "Create reconnect invitation" : "Create invitation" }));
  const area = h("div", {}, form);
  onSubmit(form, async () => {
    const values = Object.assign(settings.values(), prefill ? prefill.values(form) : {});
    const invitation = reconnect
      ? (await gql(Q.createReconnect, { conn: connection.value, input: values })).createReconnectInvitation
      : (await gql(Q.createContributor, { c: companyId, input: values })).createContributorInvitation;
    const panel = created(invitation, companyId);
    area.replaceChildren(panel);
    panel.querySelector("h2").focus();
  });
  show(title, backLink(`#/companies/${companyId}`, `${company.name}: invitations`),
    h("p", { text: `For ${company.name}.` }), area);
}

// ---- invitation detail ----------------------------------------------------------------

function detailText(detail) {
  if (!detail || typeof detail !== "object" || Object.keys(detail).length === 0) return null;
  if (detail.smtpReply) return `SMTP reply: ${detail.smtpReply}`;
  return Object.entries(detail).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("; ");
}

function timeline(events) {
  if (events.length === 0) return empty("No activity yet.");
  return h("ol", { id: "timeline", class: "timeline" }, events.map((e) => h("li", { "data-event": e.eventType },
    h("strong", { text: e.eventType }), " ",
    time(e.occurredAt), " ",
    h("span", { class: "actor", text: `by ${e.actor}` }),
    e.email ? h("span", { class: "muted", text: ` · ${e.email}` }) : null,
    detailText(e.detail) ? h("p", { class: "event-detail", text: detailText(e.detail) }) : null)));
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).flatMap(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)]));
}

function revokeDialog(inv, done) {
  modal("Revoke this invitation?", (close) => {
    const reason = h("textarea", { rows: "2", maxlength: "500" });
    const form = h("form", { id: "revoke-form", novalidate: true },
      h("p", { text: "The link stops working at once for everyone. This cannot be undone." }),
      field("Reason (optional, kept in the activity log)", reason, { field: "reason" }),
      formBanner(),
      h("div", { class: "actions" },
        h("button", { type: "submit", class: "danger", id: "revoke-confirm", text: "Revoke invitation" }),
        h("button", { type: "button", class: "secondary", onclick: close, text: "Cancel" })));
    onSubmit(form, async () => {
      await gql(Q.revoke, { id: inv.id, reason: reason.value.trim() || null });
      close();
      done("The invitation was revoked.");
    });
    return form;
  });
}

function resendDialog(inv, done) {
  modal("Resend the invitation email", (close) => {
    const emails = checkboxes("Send to", "resend-emails", inv.allowedEmails.map((e) => [e, e]), inv.allowedEmails,
      { field: "emails" });
    const extend = duration("Extend the deadline to", "extendExpiresInSeconds", {
      hint: inv.status === "EXPIRED" ? "Required: an expired invitation becomes active again only with a new deadline."
        : "From now. Leave empty to keep the current deadline.",
    });
    const rotate = h("input", { type: "checkbox", id: "resend-rotate" });
    const form = h("form", { id: "resend-form", novalidate: true },
      emails, extend.node,
      field("Issue a new link (the old one stops working at once)", rotate, { field: "rotateToken", inline: true }),
      formBanner(),
      h("div", { class: "actions" },
        h("button", { type: "submit", id: "resend-confirm", text: "Resend" }),
        h("button", { type: "button", class: "secondary", onclick: close, text: "Cancel" })));
    onSubmit(form, async () => {
      const input = { emails: checkedValues(form, "resend-emails"), rotateToken: rotate.checked };
      if (input.emails.length === 0) {
        throw new ApiError("Choose at least one address.", { code: "BAD_USER_INPUT", field: "emails" });
      }
      const seconds = extend.seconds();
      if (seconds !== undefined) input.extendExpiresInSeconds = seconds;
      await gql(Q.resend, { id: inv.id, input });
      close();
      done(rotate.checked ? "The invitation was resent with a new link." : "The invitation was resent.");
    });
    return form;
  });
}

async function invitationView(id) {
  const body = h("div", { id: "detail" }, h("p", { text: "Loading…" }));
  const heading = show("Invitation", body);
  const status = h("p", { class: "notice", role: "status", id: "detail-notice" });
  let shown = null;

  async function load() {
    let inv;
    let events;
    try {
      inv = (await gql(Q.detail, { id })).invitation;
      events = await allPages(async (after) => (await gql(Q.events, { id, after })).invitation.events, 1000);
    } catch (e) {
      body.replaceChildren(failure(e));
      return;
    }
    // Live events often change nothing shown (a replayed event, a second event of one
    // commit): then the page stays as it is, and so does whatever the operator is pointing at.
    const snapshot = JSON.stringify([inv, events]);
    if (snapshot === shown) return;
    shown = snapshot;
    const active = document.activeElement;
    const focused = active && body.contains(active) ? active.id : null;
    heading.replaceChildren(`${typeName(inv.invitationType)} invitation `, badge(inv.status));
    const actions = h("div", { class: "actions" },
      inv.status === "ACTIVE" ? h("button", { type: "button", class: "danger", id: "revoke", text: "Revoke…",
        onclick: () => revokeDialog(inv, (msg) => { status.textContent = msg; load(); }) }) : null,
      (inv.status === "ACTIVE" || inv.status === "EXPIRED") && inv.allowedEmails.length
        ? h("button", { type: "button", id: "resend", text: "Resend…",
          onclick: () => resendDialog(inv, (msg) => { status.textContent = msg; load(); }) }) : null);
    const deliveryColumns = ["Recipient", "Kind", "Status", "Attempts", "Sent", "SMTP reply"];
    const connectionColumns = ["Connection", "Status", "Account", "Created"];
    body.replaceChildren(
      backLink(`#/companies/${inv.companyId}`, `${inv.company ? inv.company.name : "Company"}: invitations`),
      status,
      copyable("Link", inv.invitationUrl, { id: "detail-link" }),
      actions,
      facts([
        ["Status", badge(inv.status)],
        ["Allowed emails", inv.allowedEmails.length ? inv.allowedEmails.join(", ") : "anyone with the link"],
        ["Uses", usesText(inv)],
        ["Expires", time(inv.expiresAt, "never")],
        ["Created", h("span", {}, time(inv.createdAt), ` by ${inv.createdBy}`)],
        inv.revokedAt ? ["Revoked", h("span", {}, time(inv.revokedAt), inv.revokedReason ? `: ${inv.revokedReason}` : "")] : null,
        inv.fulfilledAt ? ["Fulfilled", time(inv.fulfilledAt)] : null,
        inv.connection ? ["Connection to repair", `${inv.connection.providerName || "—"} · ${inv.connection.utilityUsername || "—"}`] : null,
        inv.lockedFields.length ? ["Locked fields", inv.lockedFields.join(", ")] : null,
      ]),
      h("h2", { text: "Activity" }),
      timeline(events),
      h("h2", { text: "Email deliveries" }),
      inv.deliveries.length === 0
        ? empty(inv.allowedEmails.length ? "No email was sent. Use Resend to email the link to the allowed addresses."
          : "No email was sent: the link has no allowed addresses to send it to.")
        : table("Email deliveries", deliveryColumns, inv.deliveries.map((d) => row(deliveryColumns, [
          d.recipient, capitalized(d.kind), badge(d.status), String(d.attempts), time(d.sentAt),
          d.lastError ? h("span", { class: "error-text", text: d.lastError }) : "—",
        ]))),
      inv.invitationType === "CREATE_CONNECTION" ? h("h2", { text: "Created connections" }) : null,
      inv.invitationType === "CREATE_CONNECTION"
        ? (inv.createdConnections.length === 0 ? empty("No connection yet: it appears here once the recipient submits.")
          : table("Created connections", connectionColumns, inv.createdConnections.map((c) => row(connectionColumns, [
            c.providerName || "—", badge(c.status), c.utilityUsername || "—", time(c.createdAt),
          ]))))
        : null);
    // Keep the focus where it was; when that control is gone (Revoke, once revoked), the
    // heading takes it rather than the page's start.
    if (active && body.contains(active) === false && focused !== null && !document.querySelector("dialog")) {
      const again = focused && document.getElementById(focused);
      (again || heading).focus();
    }
  }

  await load();
  let pending = null;
  return live.subscribe(Q.invitationActivity, () => ({ id }), () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; load(); }, 100);
  });
}

// ---- webhooks -------------------------------------------------------------------------

function secretPanel(secret, title) {
  return h("section", { id: "secret", class: "card success", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title", tabindex: "-1", text: title }),
    h("p", { text: "This signing secret is shown only now. Store it where your receiver verifies signatures; "
      + "rotate it if it is lost." }),
    copyable("Signing secret", secret, { id: "secret-value" }));
}

function eventTypeChoices(types, checked, name) {
  return checkboxes("Event types", name, types.map((t) => [t, t]), checked, { field: "eventTypes" });
}

async function webhooksView() {
  const list = h("div", { id: "endpoints" }, h("p", { text: "Loading…" }));
  const reveal = h("div", {});
  show("Webhooks", reveal, list);
  let data;
  try {
    data = await gql(Q.endpoints, { after: null });
  } catch (e) {
    list.replaceChildren(failure(e));
    return;
  }
  const url = input({ id: "endpoint-url", type: "url", placeholder: "https://", required: true });
  const description = input({ id: "endpoint-description", maxlength: "200" });
  const form = h("form", { id: "create-endpoint", class: "card", novalidate: true },
    h("h2", { text: "New endpoint" }),
    field("URL", url, { field: "url" }),
    field("Description (optional)", description, { field: "description" }),
    eventTypeChoices(data.webhookEventTypes, [], "new-events"),
    formBanner(),
    h("button", { type: "submit", text: "Add endpoint" }));
  onSubmit(form, async () => {
    const input = { url: url.value.trim(), eventTypes: checkedValues(form, "new-events") };
    if (description.value.trim()) input.description = description.value.trim();
    const result = (await gql(Q.createEndpoint, { input })).createWebhookEndpoint;
    form.reset();
    reveal.replaceChildren(secretPanel(result.secret, "Endpoint added"),
      h("p", {}, h("a", { href: `#/webhooks/${result.endpoint.id}`, text: "Open the endpoint" })));
    reveal.querySelector("h2").focus();
    await renderList();
  });
  const columns = ["Endpoint", "Events", "Status", "Created"];
  async function renderList() {
    const endpoints = data ? data.webhookEndpoints.nodes : (await gql(Q.endpoints, { after: null })).webhookEndpoints.nodes;
    data = null;
    list.replaceChildren(endpoints.length === 0
      ? empty("No endpoints yet. Add one below to receive invitation and connection events at your own URL.")
      : table("Webhook endpoints", columns, endpoints.map((e) => row(columns, [
        h("a", { href: `#/webhooks/${e.id}`, text: e.description ? `${e.description} (${e.url})` : e.url }),
        e.eventTypes.join(", "), badge(e.status), time(e.createdAt),
      ]))));
  }
  await renderList();
  main.appendChild(form);
}

function attemptsList(delivery) {
  if (delivery.attempts.length === 0) return h("span", { class: "muted", text: "none yet" });
  return h("details", {}, h("summary", { text: `${delivery.attemptCount} attempt${delivery.attemptCount === 1 ? "" : "s"}` }),
    h("ol", {}, delivery.attempts.map((a) => h("li", {},
      time(a.attemptedAt), ` · ${a.outcome}`, a.httpStatus ? ` · HTTP ${a.httpStatus}` : "",
      ` · ${a.durationMs} ms`, a.error ? h("span", { class: "error-text", text: ` · ${a.error}` }) : null))));
}

async function endpointView(id) {
  const body = h("div", { id: "endpoint" }, h("p", { text: "Loading…" }));
  const reveal = h("div", {});
  const notice = h("p", { class: "notice", role: "status" });
  const heading = show("Webhook endpoint", backLink("#/webhooks", "All endpoints"), notice, reveal, body);
  let after = null;

  async function load() {
    let data;
    try {
      data = await gql(Q.endpoint, { id, after });
    } catch (e) {
      body.replaceChildren(failure(e));
      return;
    }
    const endpoint = data.webhookEndpoint;
    heading.replaceChildren("Webhook endpoint ", badge(endpoint.status));
    const url = input({ id: "edit-url", type: "url", value: endpoint.url, required: true });
    const description = input({ id: "edit-description", maxlength: "200", value: endpoint.description || "" });
    const form = h("form", { id: "edit-endpoint", class: "card", novalidate: true },
      h("h2", { text: "Settings" }),
      field("URL", url, { field: "url" }),
      field("Description", description, { field: "description" }),
      eventTypeChoices(data.webhookEventTypes, endpoint.eventTypes, "edit-events"),
      formBanner(),
      h("button", { type: "submit", text: "Save changes" }));
    onSubmit(form, async () => {
      await gql(Q.updateEndpoint, { id, input: {
        url: url.value.trim(), description: description.value.trim() || null, eventTypes: checkedValues(form, "edit-events"),
      } });
      notice.textContent = "Changes saved.";
      await load();
    });
    const enabled = endpoint.status === "ENABLED";
    const toggle = h("button", { type: "button", class: "secondary", id: "toggle-endpoint",
      text: enabled ? "Disable deliveries" : "Enable deliveries",
      onclick: async () => {
        await gql(enabled ? Q.disableEndpoint : Q.enableEndpoint, { id });
        notice.textContent = enabled ? "Deliveries are stopped." : "Deliveries resumed.";
        await load();
      } });
    const rotate = h("button", { type: "button", class: "secondary", id: "rotate-secret", text: "Rotate secret…",
      onclick: () => modal("Rotate the signing secret?", (close) => h("div", {},
        h("p", { text: "A new secret is shown once. For 24 hours deliveries carry signatures of both secrets, so your receiver can switch." }),
        h("div", { class: "actions" },
          h("button", { type: "button", id: "rotate-confirm", text: "Rotate secret", onclick: async () => {
            const { rotateWebhookEndpointSecret } = await gql(Q.rotateSecret, { id });
            close();
            reveal.replaceChildren(secretPanel(rotateWebhookEndpointSecret.secret, "New signing secret"));
            reveal.querySelector("h2").focus();
            await load();
          } }),
          h("button", { type: "button", class: "secondary", onclick: close, text: "Cancel" })))) });
    const remove = h("button", { type: "button", class: "danger", id: "delete-endpoint", text: "Delete…",
      onclick: () => modal("Delete this endpoint?", (close) => h("div", {},
        h("p", { text: "Its delivery log is deleted too, and nothing more is sent to it." }),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "danger", text: "Delete endpoint", onclick: async () => {
            await gql(Q.deleteEndpoint, { id });
            close();
            location.hash = "#/webhooks";
          } }),
          h("button", { type: "button", class: "secondary", onclick: close, text: "Cancel" })))) });
    const columns = ["Event", "Status", "Attempts", "Created", "Next attempt", "Last error", ""];
    const deliveries = data.webhookDeliveries;
    const replayable = (d) => d.status !== "PENDING" && enabled;
    const deliveriesTable = deliveries.nodes.length === 0
      ? empty(`No deliveries yet. They appear when one of the chosen events happens${enabled ? "" : " and the endpoint is enabled"}.`)
      : table("Deliveries", columns, deliveries.nodes.map((d) => row(columns, [
        d.eventType, badge(d.status), attemptsList(d), time(d.createdAt), time(d.nextAttemptAt),
        d.lastError ? h("span", { class: "error-text", text: d.lastError }) : "—",
        replayable(d) ? h("button", { type: "button", class: "secondary", "data-replay": d.id, text: "Replay",
          "aria-label": `Replay the ${d.eventType} delivery of ${d.createdAt}`,
          onclick: async (event) => {
            try {
              await gql(Q.replay, { id: d.id });
              notice.textContent = "Replayed: a new delivery was queued.";
              await load();
            } catch (e) {
              event.target.after(h("span", { class: "error-text", role: "alert", text: ` ${e.message} (${e.code})` }));
            }
          } }) : null,
      ], { "data-delivery": d.id })));
    body.replaceChildren(
      facts([
        ["URL", endpoint.url],
        ["Created", time(endpoint.createdAt)],
        endpoint.disabledReason ? ["Disabled", h("span", {}, `${endpoint.disabledReason === "FAILING" ? "after failing" : "by hand"} `, time(endpoint.disabledAt))] : null,
        endpoint.failingSince ? ["Failing since", time(endpoint.failingSince)] : null,
        endpoint.previousSecretExpiresAt ? ["Previous secret valid until", time(endpoint.previousSecretExpiresAt)] : null,
      ]),
      h("div", { class: "actions" }, toggle, rotate, remove),
      form,
      h("h2", { text: "Deliveries" }),
      deliveriesTable,
      deliveries.pageInfo.hasNextPage ? h("button", { type: "button", class: "secondary", text: "Older deliveries",
        onclick: () => { after = deliveries.pageInfo.endCursor; load(); } }) : null,
      after ? h("button", { type: "button", class: "secondary", text: "Newest deliveries",
        onclick: () => { after = null; load(); } }) : null);
  }
  await load();
}

// ---- routing --------------------------------------------------------------------------

let leave = null;
let routing = 0;

async function route() {
  if (typeof leave === "function") leave();
  leave = null;
  if (!session.key()) {
    signInView();
    return;
  }
  const turn = ++routing;
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  document.querySelectorAll("#nav a").forEach((a) => {
    const here = (a.getAttribute("href") === "#/webhooks") === (parts[0] === "webhooks");
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  let cleanup = null;
  if (parts[0] === "companies" && parts[1] && parts[2] === "new") await newInvitationView(parts[1], false);
  else if (parts[0] === "companies" && parts[1] && parts[2] === "reconnect") await newInvitationView(parts[1], true);
  else if (parts[0] === "companies" && parts[1]) cleanup = await companyView(parts[1]);
  else if (parts[0] === "invitations" && parts[1]) cleanup = await invitationView(parts[1]);
  else if (parts[0] === "webhooks" && parts[1]) await endpointView(parts[1]);
  else if (parts[0] === "webhooks") await webhooksView();
  else await companiesView();
  // A newer navigation happened while this view loaded: it owns the page now.
  if (turn !== routing) { if (cleanup) cleanup(); return; }
  leave = cleanup;
}

document.getElementById("signout").addEventListener("click", signOut);
// Views live at `#/…`; any other fragment (the skip link's `#main`) is an in-page anchor.
window.addEventListener("hashchange", () => {
  if (location.hash === "" || location.hash.startsWith("#/")) route();
});

if (session.key()) {
  start().catch((e) => { if (e.code !== "UNAUTHENTICATED") main.replaceChildren(failure(e)); });
} else {
  route();
}
