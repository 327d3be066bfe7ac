// The web page and the local Hosted UI in headless Chromium, against the real
// `items serve`: what a person does in a browser.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import {
  ARTIFACTS_DIR,
  DEV_CLIENT_ID,
  PASSWORD,
  items,
  REPO_DIR,
  USER,
  claimsOf,
  launchBrowser,
  startServer,
  withClaims,
} from "./support.mjs";

const TIMEOUT = { timeout: 90_000 };
const EXPIRED_MESSAGE = "Your session has expired. Please sign in again.";

let browser;
let server;
/** Tokens live 8 s here: the page treats them as expired 5 s early. */
let shortLived;
/** GET /items answers at most about 2 KB here, so a dozen items take pages. */
let smallPages;

before(async () => {
  browser = await launchBrowser();
  server = await startServer();
  shortLived = await startServer(["--token-ttl", "8", "--token-leeway", "0"]);
  smallPages = await startServer([], { ITEMS_LIST_MAX_BODY_BYTES: "2000" });
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await shortLived?.stop();
  await smallPages?.stop();
});

/** A fresh browser context (its own sessionStorage), optionally with another config.json. */
async function newPage(configOverride) {
  const context = await browser.newContext({ viewport: { width: 960, height: 640 } });
  const page = await context.newPage();
  const consoleErrors = [];
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  if (configOverride) {
    await page.route("**/config.json", async (route) => {
      const response = await route.fetch();
      const config = { ...(await response.json()), ...configOverride };
      await route.fulfill({ response, json: config });
    });
  }
  return { page, context, consoleErrors };
}

/** From the page: Sign in → the local Hosted UI's form → back on the page, signed in. */
async function signIn(page, baseUrl, { password = PASSWORD } = {}) {
  await page.goto(`${baseUrl}/`);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/login\?/);
  await page.getByLabel("Username").fill(USER);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}

async function waitSignedIn(page) {
  await page.locator("#account").waitFor({ state: "visible" });
  assert.equal(await page.locator("#username").textContent(), USER);
}

async function storage(page) {
  return page.evaluate(() => Object.fromEntries(Object.entries(sessionStorage)));
}

async function createItem(page, name) {
  // The form's field: the Edit dialog has a "Name" too.
  await page.locator("#create").getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Create item" }).click();
  await page.getByRole("row").filter({ hasText: name }).waitFor();
}

/** Waits until the page has read its listing ("3 items." replaces "Loading items…"). */
async function waitListed(page) {
  await page.waitForFunction(() => /^\d+ items?\.$/.test(document.getElementById("status").textContent));
}

/** The Mine / All switch: its buttons and which one is pressed. */
function viewSwitch(page) {
  const group = page.getByRole("group", { name: "Show" });
  const mine = group.getByRole("button", { name: "Mine", exact: true });
  const all = group.getByRole("button", { name: "All", exact: true });
  const pressed = async () => [await mine.getAttribute("aria-pressed"), await all.getAttribute("aria-pressed")];
  return { mine, all, pressed };
}

/** A token for someone other than alice, from the server's development identity provider. */
async function tokenFor(username) {
  return (await items(["token", "--username", username, "--data-dir", server.dataDir])).trim();
}

/** The API called directly (not through the page) with `token`. */
function apiAs(token, method, path, body) {
  return fetch(`${server.baseUrl}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

/** Creates an item as `token`'s person and waits until their listing shows it: the
 * read model follows the event log on a thread of its own, and the page only lists. */
async function createAs(token, name) {
  const response = await apiAs(token, "POST", "/items", { name });
  assert.equal(response.status, 201);
  const { item } = await response.json();
  for (let tries = 0; ; tries++) {
    const listing = await (await apiAs(token, "GET", "/items?createdBy=me")).json();
    if (listing.some((listed) => listed.id === item.id)) return item;
    assert.ok(tries < 200, `${name} is not listed`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Shows the item as it was at `version` under its history line; the detail's element. */
async function viewVersion(page, version) {
  const button = page.getByRole("button", { name: `View version ${version}`, exact: true });
  await button.click();
  // Shown (and the button expanded) once GET /items/{id}?version=N has answered.
  const detail = page.locator(`#${await button.getAttribute("aria-controls")}`);
  await detail.waitFor();
  assert.equal(await button.getAttribute("aria-expanded"), "true");
  return detail;
}

/** What a version's detail lists, term by term: { Name, Timestamp, Version }, and Description when the item has one. */
async function fields(detail) {
  const terms = await detail.locator("dt").allTextContents();
  const values = await detail.locator("dd").allTextContents();
  return Object.fromEntries(terms.map((term, n) => [term, values[n]]));
}

/** The name and the version a version's detail shows (its timestamp is the client's text). */
async function nameAndVersion(detail) {
  const { Name, Version } = await fields(detail);
  return [Name, Version];
}

/** The Edit dialog, while it is open. */
function editDialog(page) {
  return page.getByRole("dialog", { name: "Edit item" });
}

/** Clicks `control` and waits for the `method` request to /items… it makes: what it sent, and the answer's body. */
async function sent(page, method, control) {
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === method && new URL(r.url()).pathname.startsWith("/items")),
    control.click(),
  ]);
  const request = response.request();
  return { request, sentBody: request.postDataJSON(), status: response.status(), body: await response.json() };
}

/** GET /items/{id} as `token` once the read model has the item at `version` or later (it follows the event log). */
async function readItem(token, id, version) {
  for (let tries = 0; ; tries++) {
    const response = await apiAs(token, "GET", `/items/${id}`);
    const body = await response.json();
    if (response.status === 200 && body.version >= version) return body;
    assert.ok(tries < 200, `item ${id} is not at version ${version}: ${response.status} ${JSON.stringify(body)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("the web page with the local Hosted UI", () => {
  test("lists every item when GET /items answers in pages (Link: rel=next)", TIMEOUT, async () => {
    const { page, context, consoleErrors } = await newPage();
    await signIn(page, smallPages.baseUrl);
    await waitSignedIn(page);
    const names = Array.from({ length: 12 }, (_, n) => `paged item ${String(n).padStart(2, "0")}`);
    for (const name of names) await createItem(page, name);
    // A fresh load shows only what GET /items?createdBy=me (the page opens on
    // Mine) lists, page after page.
    const listings = [];
    const mine = [];
    page.on("response", (response) => {
      const url = new URL(response.url());
      if (url.pathname === "/items" && response.request().method() === "GET") {
        listings.push(response.headers().link ?? null);
        mine.push(url.searchParams.get("createdBy"));
      }
    });
    await page.reload();
    await waitSignedIn(page);
    await page.waitForFunction((count) => document.querySelectorAll("#items tbody tr").length === count, names.length);
    for (const name of names) await page.getByRole("row").filter({ hasText: name }).waitFor();
    assert.ok(listings.length >= 2, `pages fetched: ${listings.length}`);
    assert.ok(listings[0]?.includes('rel="next"'), "the first page links the next");
    assert.equal(listings.at(-1), null, "the last page links nothing");
    assert.deepEqual(new Set(mine), new Set(["me"]), "every page is of the Mine listing");
    assert.deepEqual(consoleErrors, []);
    await context.close();
  });

  test("signs in (code + PKCE), creates two items, lists them with the user, signs out", TIMEOUT, async () => {
    const { page, context, consoleErrors } = await newPage();
    const apiTokens = [];
    page.on("request", (request) => {
      const authorization = request.headers().authorization;
      if (new URL(request.url()).pathname.startsWith("/items") && authorization) {
        apiTokens.push(authorization.replace(/^Bearer /, ""));
      }
    });

    await page.goto(`${server.baseUrl}/`);
    await page.getByRole("heading", { name: "Sign in to see and create items" }).waitFor();

    // The sign-in request is a code flow with an S256 challenge, to the local Hosted UI.
    const [authorize] = await Promise.all([
      page.waitForRequest((r) => r.url().includes("/oauth2/authorize")),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]);
    const params = new URL(authorize.url()).searchParams;
    assert.equal(params.get("response_type"), "code");
    assert.equal(params.get("client_id"), DEV_CLIENT_ID);
    assert.equal(params.get("redirect_uri"), `${server.baseUrl}/`);
    assert.equal(params.get("code_challenge_method"), "S256");
    assert.match(params.get("code_challenge"), /^[A-Za-z0-9_-]{43}$/);
    assert.ok(params.get("state"));

    // A wrong password first: the form says so and stays.
    await page.waitForURL(/\/login\?/);
    await page.getByLabel("Username").fill(USER);
    await page.getByLabel("Password").fill("not the password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByText("Incorrect username or password.").waitFor();
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in" }).click();

    await waitSignedIn(page);
    assert.equal(new URL(page.url()).search, "", "the code left the address bar");
    const stored = await storage(page);
    assert.equal(claimsOf(stored["items.accessToken"]).token_use, "access");
    assert.ok(stored["items.refreshToken"], "the code flow keeps a refresh token");
    for (const value of Object.values(stored)) {
      assert.ok(!value.includes(".") || claimsOf(value).token_use !== "id", "no id token is stored");
    }

    await createItem(page, "Pen");
    await createItem(page, "Notebook");
    await page.reload();
    await waitSignedIn(page);
    for (const name of ["Pen", "Notebook"]) {
      const row = page.getByRole("row").filter({ hasText: name });
      await row.waitFor();
      assert.match(await row.textContent(), new RegExp(`${USER} \\(you\\)`));
    }
    await page.getByText("2 items.").waitFor();

    assert.ok(apiTokens.length >= 3, "the page called the API");
    for (const token of apiTokens) {
      assert.equal(claimsOf(token).token_use, "access", "only access tokens go to the API");
    }

    await mkdir(ARTIFACTS_DIR, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS_DIR, "signed-in.png") });
    if (process.env.UPDATE_SCREENSHOT) {
      await page.screenshot({ path: join(REPO_DIR, "docs", "screenshot.png") });
    }

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("heading", { name: "Sign in to see and create items" }).waitFor();
    assert.equal(new URL(page.url()).href, `${server.baseUrl}/`);
    assert.deepEqual(await storage(page), {}, "signing out forgets the tokens");
    assert.deepEqual(consoleErrors, []);
    await context.close();
  });

  test("opens on Mine: the person's items; All adds everyone else's; the switch is a pressed button, by keyboard too", TIMEOUT, async () => {
    await createAs(await tokenFor("carol"), "carol's umbrella");
    const { page, context, consoleErrors } = await newPage();
    const listings = [];
    page.on("request", (request) => {
      const url = new URL(request.url());
      if (url.pathname === "/items" && request.method() === "GET") {
        listings.push(url.searchParams.get("createdBy"));
      }
    });
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);
    await waitListed(page);
    const { mine, all, pressed } = viewSwitch(page);
    assert.deepEqual(await pressed(), ["true", "false"], "Mine is pressed");
    assert.deepEqual(listings, ["me"], "the page asked for GET /items?createdBy=me");
    assert.equal(await page.locator("#items caption").textContent(), "Your items, newest first");
    const carols = page.getByRole("row").filter({ hasText: "carol's umbrella" });
    assert.equal(await carols.count(), 0, "another person's item is not under Mine");

    await createItem(page, "alice's scarf");
    const scarf = page.getByRole("row").filter({ hasText: "alice's scarf" });
    assert.match(await scarf.textContent(), new RegExp(`${USER} \\(you\\)`));

    // All, from the keyboard: everyone's items, and the person's own still there.
    await all.focus();
    await page.keyboard.press("Enter");
    assert.deepEqual(await pressed(), ["false", "true"], "All is pressed");
    await carols.waitFor();
    await scarf.waitFor();
    assert.equal(listings.at(-1), null, "the page asked for GET /items");
    assert.equal(await page.locator("#items caption").textContent(), "All items, newest first");
    assert.equal(await carols.getByRole("button", { name: /Edit|Delete/ }).count(), 0);

    // Created under All: shown at once (the page does not wait for the read model), and under Mine too.
    await createItem(page, "alice's gloves");
    await mine.focus();
    await page.keyboard.press("Space");
    assert.deepEqual(await pressed(), ["true", "false"]);
    await carols.waitFor({ state: "detached" });
    await waitListed(page);
    for (const name of ["alice's scarf", "alice's gloves"]) {
      await page.getByRole("row").filter({ hasText: name }).waitFor();
    }
    assert.equal(await carols.count(), 0);
    assert.equal(listings.at(-1), "me");
    assert.deepEqual(consoleErrors, []);
    await context.close();
  });

  test("renames and deletes the person's own items, shows every item's history and each version, offers no change of others' items", TIMEOUT, async () => {
    // Someone else's item, made through the API with their token.
    await createAs(await tokenFor("bob"), "bob's lamp");

    const { page, context, consoleErrors } = await newPage();
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);
    await createItem(page, "my kettle");
    // Others' items are under All.
    await viewSwitch(page).all.click();
    const otherRow = page.getByRole("row").filter({ hasText: "bob's lamp" });
    await otherRow.waitFor();
    assert.equal(await otherRow.getByRole("button", { name: /Edit|Delete/ }).count(), 0, "no change offered");

    const mine = page.getByRole("row").filter({ hasText: "my kettle" });
    await mine.getByRole("button", { name: "Edit my kettle" }).click();
    await editDialog(page).getByLabel("Name", { exact: true }).fill("my tea kettle");
    const rename = await sent(page, "PATCH", editDialog(page).getByRole("button", { name: "Save" }));
    assert.deepEqual(rename.sentBody, { name: "my tea kettle" }, "only the name changed");
    await page.getByRole("row").filter({ hasText: "my tea kettle" }).waitFor();
    await page.getByText("Renamed to “my tea kettle”.").waitFor();

    const renamed = page.getByRole("row").filter({ hasText: "my tea kettle" });
    await renamed.getByRole("button", { name: "History of my tea kettle" }).click();
    const history = page.locator("#history-entries li");
    await history.nth(1).waitFor();
    assert.match(await history.nth(0).textContent(), /^v1 · Created: name “my kettle”.* · by you · /);
    assert.match(await history.nth(1).textContent(), /^v2 · Changed: name “my tea kettle” · by you · /);
    // Each version as it was: GET /items/{id}?version=N.
    const [first, v1] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).searchParams.get("version") === "1"),
      viewVersion(page, 1),
    ]);
    assert.equal(first.status(), 200);
    assert.equal(first.headers().etag, '"1"');
    assert.deepEqual(await v1.locator("dt").allTextContents(), ["Name", "Timestamp", "Version"]);
    assert.deepEqual(await nameAndVersion(v1), ["my kettle", "1"]);
    assert.deepEqual(await nameAndVersion(await viewVersion(page, 2)), ["my tea kettle", "2"]);
    // The button hides what it showed.
    const hide = page.getByRole("button", { name: "View version 1", exact: true });
    await hide.click();
    assert.equal(await hide.getAttribute("aria-expanded"), "false");
    await page.locator("#history-entries li").nth(0).locator("dl").waitFor({ state: "hidden" });
    assert.equal(await page.locator("#error").isVisible(), false);
    await page.getByRole("button", { name: "Close" }).click();

    // Deleted from Mine (renamed under All): the row goes at once in either view.
    await viewSwitch(page).mine.click();
    page.once("dialog", (dialog) => dialog.accept());
    await renamed.getByRole("button", { name: "Delete my tea kettle" }).click();
    await page.getByText("Deleted “my tea kettle”.").waitFor();
    await page.getByRole("row").filter({ hasText: "my tea kettle" }).waitFor({ state: "detached" });
    // Still gone after the list is read again (the read model has the deletion).
    await page.waitForTimeout(1500);
    assert.equal(await page.getByRole("row").filter({ hasText: "my tea kettle" }).count(), 0);
    assert.deepEqual(consoleErrors, []);
    await context.close();
  });

  test("an item's description: given when creating, shown as plain text with its line breaks, edited, removed; the API has it, then not", TIMEOUT, async () => {
    const { page, context, consoleErrors } = await newPage();
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);
    await waitListed(page);
    const token = (await storage(page))["items.accessToken"];
    const form = page.locator("#create");
    const name = "sketch pad";
    const row = page.getByRole("row").filter({ hasText: name });

    // Created with a description of two lines: the list shows it on one line under the name.
    const first = "Squared paper.\nA5, 96 sheets.";
    await form.getByLabel("Name", { exact: true }).fill(name);
    await form.getByLabel("Description").fill(first);
    const created = await sent(page, "POST", form.getByRole("button", { name: "Create item" }));
    assert.equal(created.status, 201);
    assert.equal(created.sentBody.description, first);
    assert.equal(created.body.item.description, first);
    const { id } = created.body.item;
    await row.getByText("Squared paper. A5, 96 sheets.", { exact: true }).waitFor();
    assert.equal(await form.getByLabel("Description").inputValue(), "", "the form is empty for the next item");
    assert.equal((await readItem(token, id, 1)).description, first);

    // Edited: the dialog shows the description as it is, and sends only what changed.
    const second = "Dotted paper.\nA5, 96 sheets.\n\nOn the second shelf.";
    await row.getByRole("button", { name: `Edit ${name}` }).click();
    assert.equal(await editDialog(page).getByLabel("Name", { exact: true }).inputValue(), name);
    assert.equal(await editDialog(page).getByLabel("Description").inputValue(), first);
    await editDialog(page).getByLabel("Description").fill(second);
    const edited = await sent(page, "PATCH", editDialog(page).getByRole("button", { name: "Save" }));
    assert.equal(edited.status, 200);
    assert.deepEqual(edited.sentBody, { description: second }, "only the description changed");
    assert.equal(await edited.request.headerValue("If-Match"), '"1"');
    await page.getByText(`Description of “${name}” saved.`).waitFor();
    await row.getByText("Dotted paper. A5, 96 sheets. On the second shelf.", { exact: true }).waitFor();
    const v2 = await readItem(token, id, 2);
    assert.equal(v2.version, 2);
    assert.equal(v2.description, second);

    // The item at a version shows the whole description, line breaks kept.
    await row.getByRole("button", { name: `History of ${name}` }).click();
    const history = page.locator("#history-entries li");
    await history.nth(1).waitFor();
    assert.match(await history.nth(0).textContent(), /^v1 · Created: .*description “Squared paper\. A5, 96 sheets\.”.* · by you · /);
    assert.match(await history.nth(1).textContent(), /^v2 · Changed: description “Dotted paper\. A5, 96 sheets\. On the second shelf\.” · by you · /);
    const detail = await viewVersion(page, 2);
    assert.deepEqual(await detail.locator("dt").allTextContents(), ["Name", "Description", "Timestamp", "Version"]);
    assert.equal((await fields(detail)).Description, second);
    assert.equal(await detail.locator("dd").nth(1).innerText(), second, "its line breaks are shown");
    await page.getByRole("button", { name: "Close" }).click();

    // Removed: emptying the field sends null; the list and the API have no description.
    await row.getByRole("button", { name: `Edit ${name}` }).click();
    await editDialog(page).getByLabel("Description").fill("");
    const removed = await sent(page, "PATCH", editDialog(page).getByRole("button", { name: "Save" }));
    assert.equal(removed.status, 200);
    assert.deepEqual(removed.sentBody, { description: null });
    assert.equal(await removed.request.headerValue("If-Match"), '"2"');
    assert.equal("description" in removed.body, false);
    await page.getByText(`Description of “${name}” removed.`).waitFor();
    await row.getByText("Dotted paper.").waitFor({ state: "detached" });
    const v3 = await readItem(token, id, 3);
    assert.equal(v3.version, 3);
    assert.equal("description" in v3, false, "no description once removed");
    const events = await (await apiAs(token, "GET", `/items/${id}/events`)).json();
    assert.deepEqual(events.map((event) => event.changes.description), [first, second, null]);
    await row.getByRole("button", { name: `History of ${name}` }).click();
    await history.nth(2).waitFor();
    assert.match(await history.nth(2).textContent(), /^v3 · Changed: description removed · by you · /);
    await page.getByRole("button", { name: "Close" }).click();

    // Markup in a description is text: shown as typed, never made into elements.
    const markup = "<b>x</b>";
    await form.getByLabel("Name", { exact: true }).fill("bold claim");
    await form.getByLabel("Description").fill(markup);
    const bold = await sent(page, "POST", form.getByRole("button", { name: "Create item" }));
    assert.equal(bold.body.item.description, markup);
    const boldRow = page.getByRole("row").filter({ hasText: "bold claim" });
    await boldRow.getByText(markup, { exact: true }).waitFor();
    assert.equal(await boldRow.locator("b").count(), 0, "no <b> element in the list");
    await boldRow.getByRole("button", { name: "History of bold claim" }).click();
    await page.getByRole("heading", { name: "History of “bold claim”" }).waitFor();
    assert.match(await history.nth(0).textContent(), /description “<b>x<\/b>”/);
    const boldDetail = await viewVersion(page, 1);
    assert.equal((await fields(boldDetail)).Description, markup);
    assert.equal(await page.locator("#history-entries b").count(), 0, "no <b> element in the history");
    await page.getByRole("button", { name: "Close" }).click();
    assert.equal((await readItem(token, bold.body.item.id, 1)).description, markup);

    assert.equal(await page.locator("#error").isVisible(), false);
    assert.deepEqual(consoleErrors, []);
    await context.close();
  });

  test("history of an item someone deleted meanwhile: its deletion version says so (410), the versions before show the item", TIMEOUT, async () => {
    const dave = await tokenFor("dave");
    const vase = await createAs(dave, "dave's vase");
    const { page, context, consoleErrors } = await newPage();
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);
    await waitListed(page);
    await viewSwitch(page).all.click();
    const row = page.getByRole("row").filter({ hasText: "dave's vase" });
    await row.waitFor();

    // Deleted elsewhere: this page made no change, so it reads no listing by itself and still shows the row.
    const deletion = await apiAs(dave, "DELETE", `/items/${vase.id}`);
    assert.equal(deletion.status, 204);
    await row.getByRole("button", { name: "History of dave's vase" }).click();
    const history = page.locator("#history-entries li");
    await history.nth(1).waitFor();
    assert.match(await history.nth(1).textContent(), /^v2 · Deleted · by /);

    const [gone, v2] = await Promise.all([
      page.waitForResponse((r) => new URL(r.url()).searchParams.get("version") === "2"),
      viewVersion(page, 2),
    ]);
    assert.equal(gone.status(), 410);
    assert.equal(await v2.textContent(), "The item was deleted at version 2.");
    assert.equal(await page.locator("#error").isVisible(), false, "a deletion is not an error");
    const v1 = await viewVersion(page, 1);
    assert.deepEqual(await nameAndVersion(v1), ["dave's vase", "1"]);
    await page.getByRole("button", { name: "Close" }).click();
    assert.deepEqual(consoleErrors, []);
    await context.close();
  });

  test("the implicit grant works too (response_type=token)", TIMEOUT, async () => {
    const { page, context, consoleErrors } = await newPage({ responseType: "token" });
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);
    assert.equal(new URL(page.url()).hash, "", "the tokens left the address bar");
    const stored = await storage(page);
    assert.equal(claimsOf(stored["items.accessToken"]).token_use, "access");
    assert.equal(stored["items.refreshToken"], undefined, "no refresh token in the implicit flow");
    await createItem(page, "Implicit pencil");
    assert.deepEqual(consoleErrors, []);
    await context.close();
  });

  test("a redirect URI that is not allowed gets an error page, not a redirect", TIMEOUT, async () => {
    const { page, context } = await newPage({ redirectUri: "http://127.0.0.1:9/callback" });
    const redirects = [];
    page.on("request", (request) => {
      if (new URL(request.url()).port === "9") redirects.push(request.url());
    });
    await page.goto(`${server.baseUrl}/`);
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().includes("/oauth2/authorize")),
      page.getByRole("button", { name: "Sign in" }).click(),
    ]);
    assert.equal(response.status(), 400);
    await page.getByRole("heading", { name: "Sign-in is not possible" }).waitFor();
    const text = await page.locator("main").textContent();
    assert.match(text, /redirect_mismatch/);
    assert.match(text, /http:\/\/127\.0\.0\.1:9\/callback/);
    assert.match(text, /--redirect-uris/);
    assert.equal(new URL(page.url()).origin, server.baseUrl, "the browser stays on the Hosted UI");
    assert.equal(await page.getByLabel("Password").count(), 0, "no sign-in form");
    assert.deepEqual(redirects, []);
    await context.close();
  });

  test("an expired or refused token sends the person back to sign in", TIMEOUT, async () => {
    const { page, context } = await newPage();
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);

    // Expired (exp in the past) and no refresh token: asked to sign in on load.
    await page.evaluate((token) => {
      sessionStorage.setItem("items.accessToken", token);
      sessionStorage.removeItem("items.refreshToken");
    }, withClaims((await storage(page))["items.accessToken"], (c) => ({ ...c, exp: c.iat - 60 })));
    await page.reload();
    await page.getByText(EXPIRED_MESSAGE).waitFor();
    await page.getByRole("button", { name: "Sign in" }).waitFor();
    assert.deepEqual(await storage(page), {});

    // Looks valid to the page, refused by the API (tampered): the same.
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);
    await page.evaluate((token) => {
      sessionStorage.setItem("items.accessToken", token);
      sessionStorage.removeItem("items.refreshToken");
    }, withClaims((await storage(page))["items.accessToken"], (c) => ({ ...c, username: "mallory" })));
    await page.getByRole("button", { name: "Refresh" }).click();
    await page.getByText(EXPIRED_MESSAGE).waitFor();
    await context.close();
  });

  test("when a token runs out, the page refreshes it (code flow) or asks to sign in again (implicit)", TIMEOUT, async () => {
    const code = await newPage();
    await signIn(code.page, shortLived.baseUrl);
    await waitSignedIn(code.page);
    const first = (await storage(code.page))["items.accessToken"];
    await code.page.waitForFunction(
      (initial) => sessionStorage.getItem("items.accessToken") !== initial,
      first,
      { timeout: 15_000 },
    );
    await createItem(code.page, "After refresh");
    assert.equal(await code.page.locator("#account").isVisible(), true);
    await code.context.close();

    const implicit = await newPage({ responseType: "token" });
    await signIn(implicit.page, shortLived.baseUrl);
    await waitSignedIn(implicit.page);
    await implicit.page.getByText(EXPIRED_MESSAGE).waitFor({ timeout: 15_000 });
    assert.equal(await implicit.page.getByRole("button", { name: "Sign in" }).isVisible(), true);
    assert.equal(await implicit.page.locator("#account").isVisible(), false);
    await implicit.context.close();
  });
});
