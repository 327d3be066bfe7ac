// Items: the page. Sign in on the Hosted UI (local or Cognito), then list your
// items or everyone's, create items (with an optional description), edit (name
// and description) and delete them, and read an item's history with the item as
// it was at each version.
//
// - auth.js signs in and out and keeps the tokens; api.js calls the API.
// - This file is the views (the list, the create form, the edit dialog, the
//   history) and their wiring.
// No build step, no dependencies; all text goes through textContent.

import { ApiError, api, configureApi, listAll } from "./api.js";
import {
  SessionExpired,
  accessToken,
  completeSignIn,
  configureAuth,
  endSession,
  forgetTokens,
  hasStoredTokens,
  scheduleExpiry,
  session,
  signIn,
  signOut,
} from "./auth.js";

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  error: $("error"),
  account: $("account"),
  username: $("username"),
  signedOut: $("signed-out"),
  signedOutReason: $("signed-out-reason"),
  signedIn: $("signed-in"),
  signIn: $("sign-in"),
  signOut: $("sign-out"),
  create: $("create"),
  name: $("name"),
  description: $("description"),
  createButton: $("create-button"),
  refresh: $("refresh"),
  showMine: $("show-mine"),
  showAll: $("show-all"),
  caption: $("items-caption"),
  rows: document.querySelector("#items tbody"),
  empty: $("empty"),
  editDialog: $("edit-dialog"),
  editForm: $("edit-form"),
  editError: $("edit-error"),
  editName: $("edit-name"),
  editDescription: $("edit-description"),
  editSave: $("edit-save"),
  editCancel: $("edit-cancel"),
  historyDialog: $("history-dialog"),
  historyTitle: $("history-title"),
  historyEntries: $("history-entries"),
  historyClose: $("history-close"),
};
/** Members may change anyone's items (the access token's `cognito:groups`). */
const ADMIN_GROUP = "items-admins";
/** The API's limit on a description, in Unicode code points (the textareas' maxlength counts UTF-16 units). */
const DESCRIPTION_MAX = 2000;
/** How much of a description the list shows under the item's name. */
const PREVIEW_MAX = 80;

let listed = [];
/** Which listing is shown: "mine" (GET /items?createdBy=me, the default) or "all" (GET /items). */
let view = "mine";
/** Counts loads, so that a listing that arrives after a newer one started (the view switched) is dropped. */
let loads = 0;
/** Items created or changed here that GET /items does not show yet (the read model is eventually consistent). */
const pending = new Map();
/** Items deleted here (by id) that GET /items may still list for a moment. */
const deleted = new Map();
/** The item being edited. */
let editing = null;

// ---- small helpers ---------------------------------------------------------

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.textContent = "";
  ui.error.hidden = true;
}

/** A description on one line (every run of white space one space), cut after `max` characters with "…"
 * (whole characters as a reader sees them, where the browser can tell). */
function preview(text, max = PREVIEW_MAX) {
  const line = String(text).replace(/\s+/g, " ").trim();
  const chars =
    typeof Intl.Segmenter === "function"
      ? Array.from(new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(line), (part) => part.segment)
      : Array.from(line);
  return chars.length > max ? `${chars.slice(0, max).join("").trimEnd()}…` : line;
}

/** A text as a textarea gives it back: its line breaks (CR LF, CR) are LF. */
function asTextarea(text) {
  return String(text ?? "").replace(/\r\n?/g, "\n");
}

/** Whether a description may be sent: the API counts code points, not UTF-16 units. */
function descriptionFits(text) {
  return Array.from(text).length <= DESCRIPTION_MAX;
}

function sessionExpired() {
  endSession();
  showSignedOut(new SessionExpired().message);
  ui.signIn.focus();
}

/** Runs an API action; shows its error, or the sign-in prompt when the session is over. */
async function attempt(action) {
  try {
    clearError();
    await action();
  } catch (error) {
    if (error instanceof SessionExpired) sessionExpired();
    else if (error instanceof TypeError) showError(`The API cannot be reached: ${error.message}.`);
    else showError(error.message);
  }
}

/** Whether the current view lists `item`: all of them, or the signed-in person's. */
function inView(item, me) {
  return view === "all" || (Boolean(me) && item.createdBy === me.sub);
}

function render() {
  const me = session()?.claims;
  // `listed` may still be the other view's listing while this one loads.
  const shown = new Map(listed.filter((item) => inView(item, me)).map((item) => [item.id, item]));
  // A change outside this view (an admin's rename under Mine) waits for the view that lists it.
  for (const [id, item] of pending) {
    if (!inView(item, me)) continue;
    if ((shown.get(id)?.version ?? 0) >= item.version) pending.delete(id);
    else shown.set(id, item);
  }
  for (const [id, item] of deleted) {
    if (!inView(item, me)) continue;
    if (shown.has(id)) shown.delete(id);
    else deleted.delete(id);
  }
  const items = [...shown.values()].sort((a, b) => String(b.createdAt).localeCompare(String(a.createdAt)));
  const rows = items.map((item) => {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    name.textContent = item.name;
    if (typeof item.description === "string" && item.description.trim()) {
      const short = document.createElement("span");
      short.className = "preview";
      short.textContent = preview(item.description);
      name.append(short);
    }
    const created = document.createElement("td");
    const time = document.createElement("time");
    time.dateTime = item.createdAt;
    time.textContent = new Date(item.createdAt).toLocaleString();
    created.append(time);
    const by = document.createElement("td");
    by.className = "by";
    by.textContent = me && item.createdBy === me.sub ? `${me.username} (you)` : item.createdBy;
    const actions = document.createElement("td");
    actions.className = "actions";
    actions.append(button("History", `History of ${item.name}`, () => showHistory(item)));
    if (mayChange(me, item)) {
      actions.append(
        button("Edit", `Edit ${item.name}`, () => startEdit(item)),
        button("Delete", `Delete ${item.name}`, () => deleteItem(item)),
      );
    }
    row.append(name, created, by, actions);
    return row;
  });
  ui.rows.replaceChildren(...rows);
  ui.empty.hidden = items.length > 0;
  return items.length;
}

/** Shows the view's state on the switch (aria-pressed), the table's caption and the empty text. */
function renderView() {
  ui.showMine.setAttribute("aria-pressed", String(view === "mine"));
  ui.showAll.setAttribute("aria-pressed", String(view === "all"));
  ui.caption.textContent = view === "mine" ? "Your items, newest first" : "All items, newest first";
  ui.empty.textContent = view === "mine" ? "You have no items yet." : "No items yet.";
}

async function showView(next) {
  if (next === view) return;
  view = next;
  renderView();
  render();
  await loadItems();
}

function button(text, label, onClick) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = "secondary";
  element.textContent = text;
  element.setAttribute("aria-label", label);
  element.addEventListener("click", onClick);
  return element;
}

/** What the API allows: the creator, or a member of items-admins. */
function mayChange(me, item) {
  if (!me) return false;
  const groups = Array.isArray(me["cognito:groups"]) ? me["cognito:groups"] : [];
  return item.createdBy === me.sub || groups.includes(ADMIN_GROUP);
}

/** `If-Match` for the version this page shows: a change made meanwhile is not overwritten. */
function ifMatch(item) {
  return { "If-Match": `"${item.version}"` };
}

function startEdit(item) {
  editing = item;
  ui.editError.hidden = true;
  ui.editError.textContent = "";
  ui.editName.value = item.name;
  ui.editDescription.value = item.description ?? "";
  ui.editDialog.showModal();
  ui.editName.select();
}

function stopEdit() {
  editing = null;
  ui.editDialog.close();
}

function showEditError(text, field) {
  ui.editError.textContent = text;
  ui.editError.hidden = false;
  field?.focus();
}

/** What the dialog changes of `item`, for PATCH: only the fields that differ; a description emptied is null. */
function editChanges(item) {
  const changes = {};
  const name = ui.editName.value.trim();
  if (ui.editName.value !== item.name && name !== item.name) changes.name = name;
  const before = asTextarea(item.description);
  const text = ui.editDescription.value;
  if (text !== before) {
    if (text.trim()) changes.description = text;
    else if (before) changes.description = null;
  }
  return changes;
}

/** The status after a change: what was renamed, and what became of the description. */
function editedMessage(changes, item) {
  const described = changes.description === null ? "removed" : "saved";
  if (!("description" in changes)) return `Renamed to “${item.name}”.`;
  if (!("name" in changes)) return `Description of “${item.name}” ${described}.`;
  return `Renamed to “${item.name}”; description ${described}.`;
}

/** Sends what the dialog changed; the dialog stays open with its text (and says why) when the API refuses it. */
async function saveEdit(event) {
  event.preventDefault();
  const item = editing;
  if (!item) return;
  if (!ui.editName.value.trim()) {
    showEditError("Enter a name for the item.", ui.editName);
    return;
  }
  const changes = editChanges(item);
  if (Object.keys(changes).length === 0) {
    stopEdit();
    setStatus(`Nothing changed in “${item.name}”.`);
    return;
  }
  if (typeof changes.description === "string" && !descriptionFits(changes.description)) {
    showEditError(`The description is longer than ${DESCRIPTION_MAX.toLocaleString("en")} characters.`, ui.editDescription);
    return;
  }
  ui.editSave.disabled = true;
  try {
    const updated = await api(`/items/${encodeURIComponent(item.id)}`, {
      method: "PATCH",
      headers: { "Content-Type": "application/json", ...ifMatch(item) },
      body: JSON.stringify(changes),
    });
    stopEdit();
    clearError();
    pending.set(updated.id, updated);
    render();
    setStatus(editedMessage(changes, updated));
    setTimeout(loadItems, 1000);
  } catch (error) {
    if (error instanceof SessionExpired) {
      stopEdit();
      sessionExpired();
      return;
    }
    const message = error instanceof TypeError ? `The API cannot be reached: ${error.message}.` : error.message;
    // Closed meanwhile (Escape): the page says it instead.
    if (ui.editDialog.open) showEditError(message);
    else showError(message);
    // Another change may have been made meanwhile (412, 409): the list shows it soon.
    if (error instanceof ApiError && error.status !== 400) setTimeout(loadItems, 1000);
  } finally {
    ui.editSave.disabled = false;
  }
}

async function deleteItem(item) {
  if (!window.confirm(`Delete “${item.name}”? Its history is kept.`)) return;
  await attempt(async () => {
    try {
      await api(`/items/${encodeURIComponent(item.id)}`, { method: "DELETE", headers: ifMatch(item) });
      pending.delete(item.id);
      deleted.set(item.id, item);
      render();
      setStatus(`Deleted “${item.name}”.`);
    } finally {
      setTimeout(loadItems, 1000);
    }
  });
}

function describeEntry(entry, me) {
  const who = me && entry.subject === me.sub ? "you" : entry.subject;
  const when = new Date(entry.occurredAt).toLocaleString();
  const changes = Object.entries(entry.changes || {})
    .map(([field, value]) => {
      if (field !== "description") return `${field} “${value}”`;
      return value === null || value === "" ? "description removed" : `description “${preview(value)}”`;
    })
    .join(", ");
  const what = { ItemCreated: "Created", ItemUpdated: "Changed", ItemDeleted: "Deleted" }[entry.type] || entry.type;
  return `v${entry.version} · ${what}${changes ? `: ${changes}` : ""} · by ${who} · ${when}`;
}

async function showHistory(item) {
  await attempt(async () => {
    const entries = await api(`/items/${encodeURIComponent(item.id)}/events`);
    const me = session()?.claims;
    ui.historyTitle.textContent = `History of “${item.name}”`;
    ui.historyEntries.replaceChildren(...entries.map((entry) => historyEntry(item, entry, me)));
    ui.historyDialog.showModal();
  });
}

/** One line of the history, with a button that shows the item as it was at that version, under the line. */
function historyEntry(item, entry, me) {
  const line = document.createElement("li");
  const text = document.createElement("span");
  text.textContent = describeEntry(entry, me);
  const detail = document.createElement("div");
  detail.className = "version";
  detail.id = `history-version-${entry.version}`;
  detail.hidden = true;
  const show = button("View", `View version ${entry.version}`, () => toggleVersion(item, entry.version, show, detail));
  show.setAttribute("aria-expanded", "false");
  show.setAttribute("aria-controls", detail.id);
  line.append(text, " ", show, detail);
  return line;
}

/** Shows or hides the item at `version`; a version never changes, so it is fetched only once. */
async function toggleVersion(item, version, control, detail) {
  if (control.getAttribute("aria-expanded") === "true") {
    control.setAttribute("aria-expanded", "false");
    detail.hidden = true;
    return;
  }
  if (!detail.hasChildNodes()) {
    await attempt(async () => detail.replaceChildren(await itemAt(item, version)));
    if (!detail.hasChildNodes()) return;
  }
  control.setAttribute("aria-expanded", "true");
  detail.hidden = false;
}

/** `GET /items/{id}?version=N` as content: the item then, or that it was deleted then (410 Gone). */
async function itemAt(item, version) {
  try {
    const then = await api(`/items/${encodeURIComponent(item.id)}?version=${version}`);
    return describeItem(then);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 410) throw error;
    const note = document.createElement("p");
    const message = error.body?.message;
    note.textContent = typeof message === "string" ? `${message}.` : `The item was deleted at version ${version}.`;
    return note;
  }
}

function describeItem(item) {
  const list = document.createElement("dl");
  const fields = [["Name", item.name]];
  if (typeof item.description === "string" && item.description) fields.push(["Description", item.description]);
  fields.push(["Timestamp", formatTime(item.timestamp)], ["Version", String(item.version)]);
  for (const [term, value] of fields) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    // Plain text, never markup; its line breaks stay (white-space: pre-wrap).
    if (term === "Description") dd.className = "description";
    dd.textContent = value;
    list.append(dt, dd);
  }
  return list;
}

/** A timestamp in the reader's locale; the client's own text (e.g. "N/A") when it is not a date. */
function formatTime(text) {
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? String(text) : date.toLocaleString();
}

async function loadItems() {
  const load = ++loads;
  await attempt(async () => {
    setStatus("Loading items…");
    const path = view === "mine" ? "/items?createdBy=me" : "/items";
    const items = await listAll(path, (count, page) => setStatus(`Loading items… (${count} so far, page ${page})`));
    if (load !== loads) return;
    listed = items;
    const count = render();
    setStatus(`${count} ${count === 1 ? "item" : "items"}.`);
  });
}

async function createItem(event) {
  event.preventDefault();
  const name = ui.name.value.trim();
  if (!name) {
    showError("Enter a name for the item.");
    ui.name.focus();
    return;
  }
  // Sent only when there is one: a server still rolling descriptions out refuses the field.
  const description = ui.description.value.trim() ? ui.description.value : undefined;
  if (description !== undefined && !descriptionFits(description)) {
    showError(`The description is longer than ${DESCRIPTION_MAX.toLocaleString("en")} characters.`);
    ui.description.focus();
    return;
  }
  ui.createButton.disabled = true;
  await attempt(async () => {
    const body = await api("/items", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name, timestamp: new Date().toISOString(), description }),
    });
    pending.set(body.item.id, body.item);
    ui.name.value = "";
    ui.description.value = "";
    render();
    setStatus(`Created “${body.item.name}”.`);
    setTimeout(loadItems, 1000);
  });
  ui.createButton.disabled = false;
  ui.name.focus();
}

// ---- views ---------------------------------------------------------------------

function showSignedOut(reason) {
  ui.account.hidden = true;
  ui.signedIn.hidden = true;
  ui.signedOut.hidden = false;
  ui.signedOutReason.textContent = reason || "";
  listed = [];
  pending.clear();
  deleted.clear();
  ui.rows.replaceChildren();
  setStatus(reason ? "Signed out." : "Not signed in.");
}

async function showSignedIn() {
  const { claims } = session();
  ui.username.textContent = claims.username || claims.sub;
  ui.account.hidden = false;
  ui.signedOut.hidden = true;
  ui.signedIn.hidden = false;
  renderView();
  scheduleExpiry();
  await loadItems();
}

async function main() {
  ui.signIn.addEventListener("click", () => signIn().catch((error) => showError(error.message)));
  ui.signOut.addEventListener("click", () => signOut());
  ui.create.addEventListener("submit", createItem);
  ui.refresh.addEventListener("click", loadItems);
  ui.showMine.addEventListener("click", () => showView("mine"));
  ui.showAll.addEventListener("click", () => showView("all"));
  ui.editForm.addEventListener("submit", saveEdit);
  ui.editCancel.addEventListener("click", stopEdit);
  ui.editDialog.addEventListener("close", () => {
    editing = null;
  });
  ui.historyClose.addEventListener("click", () => ui.historyDialog.close());

  let config;
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    setStatus("");
    showError(`The page's configuration (config.json) cannot be loaded: ${error.message}.`);
    return;
  }
  configureAuth(config, sessionExpired);
  configureApi(config.apiUrl);

  try {
    await completeSignIn();
  } catch (error) {
    forgetTokens();
    showSignedOut();
    showError(error.message);
    return;
  }
  try {
    await accessToken();
  } catch (error) {
    const hadSession = hasStoredTokens();
    forgetTokens();
    showSignedOut(hadSession && error instanceof SessionExpired ? error.message : "");
    return;
  }
  await showSignedIn();
}

main();
