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
  await page.getByLabel("Name", { exact: true }).fill(name);
  await page.getByRole("button", { name: "Create item" }).click();
  await page.getByRole("row").filter({ hasText: name }).waitFor();
}

describe("the web page with the local Hosted UI", () => {
  test("lists every item when GET /items answers in pages (Link: rel=next)", TIMEOUT, async () => {
    const { page, context, consoleErrors } = await newPage();
    await signIn(page, smallPages.baseUrl);
    await waitSignedIn(page);
    const names = Array.from({ length: 12 }, (_, n) => `paged item ${String(n).padStart(2, "0")}`);
    for (const name of names) await createItem(page, name);
    // A fresh load shows only what GET /items lists, page after page.
    const listings = [];
    page.on("response", (response) => {
      if (new URL(response.url()).pathname === "/items" && response.request().method() === "GET") {
        listings.push(response.headers().link ?? null);
      }
    });
    await page.reload();
    await waitSignedIn(page);
    await page.waitForFunction((count) => document.querySelectorAll("#items tbody tr").length === count, names.length);
    for (const name of names) await page.getByRole("row").filter({ hasText: name }).waitFor();
    assert.ok(listings.length >= 2, `pages fetched: ${listings.length}`);
    assert.ok(listings[0]?.includes('rel="next"'), "the first page links the next");
    assert.equal(listings.at(-1), null, "the last page links nothing");
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

  test("renames and deletes the person's own items, shows every item's history, offers no change of others' items", TIMEOUT, async () => {
    // Someone else's item, made through the API with their token.
    const bob = (await items(["token", "--username", "bob", "--data-dir", server.dataDir])).trim();
    const theirs = await fetch(`${server.baseUrl}/items`, {
      method: "POST",
      headers: { Authorization: `Bearer ${bob}`, "Content-Type": "application/json" },
      body: JSON.stringify({ name: "bob's lamp" }),
    });
    assert.equal(theirs.status, 201);

    const { page, context, consoleErrors } = await newPage();
    await signIn(page, server.baseUrl);
    await waitSignedIn(page);
    await createItem(page, "my kettle");
    const otherRow = page.getByRole("row").filter({ hasText: "bob's lamp" });
    await otherRow.waitFor();
    assert.equal(await otherRow.getByRole("button", { name: /Rename|Delete/ }).count(), 0, "no change offered");

    const mine = page.getByRole("row").filter({ hasText: "my kettle" });
    await mine.getByRole("button", { name: "Rename my kettle" }).click();
    await page.getByLabel("New name").fill("my tea kettle");
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByRole("row").filter({ hasText: "my tea kettle" }).waitFor();
    await page.getByText("Renamed to “my tea kettle”.").waitFor();

    const renamed = page.getByRole("row").filter({ hasText: "my tea kettle" });
    await renamed.getByRole("button", { name: "History of my tea kettle" }).click();
    const history = page.locator("#history-entries li");
    await history.nth(1).waitFor();
    assert.match(await history.nth(0).textContent(), /^v1 · Created: name “my kettle”.* · by you · /);
    assert.match(await history.nth(1).textContent(), /^v2 · Changed: name “my tea kettle” · by you · /);
    await page.getByRole("button", { name: "Close" }).click();

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
