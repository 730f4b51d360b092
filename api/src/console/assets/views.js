// Building blocks of the console's views: elements, form fields with their error slots, errors
// placed next to what caused them, tables that fold into cards on a phone, and small formats.

// An element: `attrs` are attributes (`text` sets the text, `on*` functions are listeners,
// `false`/null leave an attribute out), `children` are nodes, strings or nulls.
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value == null) continue;
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

let uid = 0;
/// A fresh id for controls that appear more than once on a page.
export function uniqueId(prefix) { uid += 1; return `${prefix}-${uid}`; }

// One labelled control with an optional hint and a slot for its error. `field` is the API's
// name for the value (`allowedEmails`, `prefill.country`), which errors name in
// `extensions.field`.
export function field(label, control, options) {
  const opts = options || {};
  const id = control.id || uniqueId("f");
  control.id = id;
  if (opts.field) control.dataset.field = opts.field;
  const described = [];
  let hint = null;
  if (opts.hint) {
    hint = h("p", { id: `${id}-hint`, class: "hint", text: opts.hint });
    described.push(hint.id);
  }
  const error = h("p", { id: `${id}-error`, class: "field-error", hidden: true });
  described.push(error.id);
  control.setAttribute("aria-describedby", described.join(" "));
  return h("div", { class: `field${opts.inline ? " inline" : ""}` },
    opts.inline ? [control, h("label", { for: id, text: label })] : [h("label", { for: id, text: label }), control],
    hint, error);
}

export function input(attrs) { return h("input", Object.assign({ type: "text" }, attrs)); }

export function select(attrs, options, selected) {
  return h("select", attrs, options.map(([value, label]) =>
    h("option", { value, selected: value === selected, text: label })));
}

// Checkboxes in a fieldset; `options` are [value, label]. The fieldset carries `field`.
export function checkboxes(legend, name, options, checked, opts) {
  const extra = opts || {};
  const error = h("p", { id: uniqueId(`${name}-error`), class: "field-error", hidden: true });
  const set = h("fieldset", { class: "choices", "data-field": extra.field || name, "aria-describedby": error.id },
    h("legend", { text: legend }),
    extra.hint ? h("p", { class: "hint", text: extra.hint }) : null,
    options.length === 0 && extra.empty ? h("p", { class: "hint", text: extra.empty }) : null,
    options.map(([value, label]) => {
      const id = uniqueId(name);
      return h("span", { class: "choice" },
        h("input", { type: "checkbox", id, name, value, checked: (checked || []).includes(value) }),
        h("label", { for: id, text: label }));
    }),
    error);
  return set;
}

export function checkedValues(root, name) {
  return [...root.querySelectorAll(`input[name="${name}"]:checked`)].map((box) => box.value);
}

// Clears the errors a form shows.
export function clearErrors(form) {
  form.querySelectorAll(".field-error").forEach((slot) => { slot.hidden = true; slot.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((control) => control.removeAttribute("aria-invalid"));
  const banner = form.querySelector(".form-error");
  if (banner) { banner.hidden = true; banner.textContent = ""; }
}

function describe(error) {
  return error.code ? `${error.message} (${error.code})` : error.message;
}

// Shows `error` next to what caused it: the control whose `data-field` is the error's `field`
// (list indexes such as `allowedEmails[2]` point at the list's control), else the form's
// banner. The focus goes there, so a keyboard or screen-reader user lands on the problem.
export function showError(form, error) {
  clearErrors(form);
  const name = (error.field || "").replace(/\[\d+\]/g, "");
  let target = null;
  if (name) {
    const candidates = [...form.querySelectorAll("[data-field]")];
    target = candidates.find((c) => c.dataset.field === name)
      || candidates.find((c) => name.startsWith(`${c.dataset.field}.`));
  }
  if (target) {
    const slot = document.getElementById(`${target.id}-error`)
      || target.querySelector(":scope > .field-error");
    slot.textContent = describe(error);
    slot.hidden = false;
    target.setAttribute("aria-invalid", "true");
    (target.matches("fieldset") ? target.querySelector("input") : target).focus();
    return;
  }
  const banner = form.querySelector(".form-error");
  banner.textContent = describe(error);
  banner.hidden = false;
  banner.focus();
}

// The banner a form shows errors in that concern no single control.
export function formBanner() {
  return h("p", { class: "form-error", role: "alert", tabindex: "-1", hidden: true });
}

// Runs `action` when `form` is submitted, with the submit button disabled meanwhile and the
// error shown where it belongs.
export function onSubmit(form, action) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    clearErrors(form);
    try {
      await action();
    } catch (error) {
      showError(form, error);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return form;
}

// A table whose rows fold into labelled cards on a narrow screen (each cell carries its
// column's name for the stylesheet).
export function table(caption, columns, rows) {
  return h("table", { class: "rows" },
    h("caption", { class: "visually-hidden", text: caption }),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c })))),
    h("tbody", {}, rows));
}

export function row(columns, cells, attrs) {
  return h("tr", attrs || {}, cells.map((cell, i) => h("td", { "data-label": columns[i] }, cell)));
}

// What to do when a list is empty.
export function empty(text, action) {
  return h("div", { class: "empty" }, h("p", { text }), action || null);
}

export function badge(status) {
  return h("span", { class: `badge badge-${status.toLowerCase()}`, "data-status": status, text: status });
}

const dateFormat = new Intl.DateTimeFormat("en-GB", {
  year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", timeZone: "UTC",
});

export function formatTime(iso) { return `${dateFormat.format(new Date(iso))} UTC`; }

// Timestamps in UTC, as the API gives them, with the exact instant in a <time>.
export function time(iso, fallback) {
  if (!iso) return document.createTextNode(fallback || "—");
  return h("time", { datetime: iso, text: formatTime(iso) });
}

export function typeName(type) {
  return type === "EDIT_CONNECTION" ? "Reconnect" : "Contributor";
}

// A read-only value (a link, a secret) with a button that copies it.
export function copyable(label, value, opts) {
  const id = uniqueId((opts && opts.id) || "copy");
  const box = h("input", { id, type: "text", readonly: true, value, class: "copy-value", spellcheck: "false" });
  const status = h("span", { id: uniqueId("copied"), class: "copy-status", role: "status" });
  const button = h("button", {
    type: "button", class: "secondary", "aria-describedby": status.id,
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(value);
      } catch (e) {
        // Without clipboard access (a non-local plain-HTTP origin) the selection is copied.
        box.select();
        document.execCommand("copy");
      }
      status.textContent = "Copied";
    },
  }, `Copy ${label.toLowerCase()}`);
  return h("div", { class: "field copy" }, h("label", { for: id, text: label }),
    h("div", { class: "copy-row" }, box, button), status);
}

// A modal dialog (the native <dialog>: focus is kept inside, Escape closes it). `build`
// receives `close` and returns the dialog's content.
export function modal(title, build) {
  const heading = h("h2", { id: uniqueId("dialog-title"), text: title });
  const dialog = h("dialog", { "aria-labelledby": heading.id });
  const opener = document.activeElement;
  const close = () => { dialog.close(); };
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  dialog.append(heading, build(close));
  document.body.appendChild(dialog);
  dialog.showModal();
  return dialog;
}
