// Items: signing in on the Hosted UI (local or Cognito), the tokens, and what
// the page reads of them.
//
// - Sign-in: authorization code + PKCE (S256) by default, implicit grant with
//   "responseType": "token" in config.json.
// - Keeps only the ACCESS token (and, for the code flow, the refresh token) in
//   sessionStorage; the id token is dropped on arrival and never sent anywhere.
// - Reads the access token's `exp`: refreshes when it can, otherwise asks the
//   person to sign in again.
// No build step, no dependencies; touches no element of the page (app.js shows
// what happens).

const KEYS = {
  access: "items.accessToken",
  refresh: "items.refreshToken",
  signIn: "items.pendingSignIn",
};
const EXPIRY_MARGIN_MS = 5000;
const MAX_TIMER_MS = 2 ** 31 - 1;

export class SessionExpired extends Error {
  constructor() {
    super("Your session has expired. Please sign in again.");
  }
}

let config;
let hostedUi;
let redirectUri;
let expiryTimer;
/** What the page does when the session ends while it is open (no refresh token, or a refused one). */
let onSessionExpired = () => {};

/** Takes config.json (`hostedUiUrl`, `clientId`, `scopes`, `responseType`, `redirectUri`) and what to do when the session ends. */
export function configureAuth(settings, onExpired) {
  config = settings;
  hostedUi = config.hostedUiUrl || location.origin;
  redirectUri = config.redirectUri || `${location.origin}${location.pathname}`;
  onSessionExpired = onExpired;
}

// ---- small helpers ---------------------------------------------------------

function base64UrlEncode(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString() {
  return base64UrlEncode(crypto.getRandomValues(new Uint8Array(32)));
}

async function s256(text) {
  return base64UrlEncode(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** The claims of a JWT, unverified: the API verifies; the page only reads `exp` and `username`. */
function claimsOf(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const padded = payload + "=".repeat((4 - (payload.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return null;
  }
}

function endpoint(path) {
  return new URL(path, hostedUi).toString();
}

// ---- tokens ------------------------------------------------------------------

/** Keeps the access token (and a refresh token); ignores any id token. */
function storeTokens(tokens) {
  const claims = tokens.access_token ? claimsOf(tokens.access_token) : null;
  if (!claims || claims.token_use !== "access" || typeof claims.exp !== "number") {
    throw new Error("The Hosted UI did not return an access token.");
  }
  sessionStorage.setItem(KEYS.access, tokens.access_token);
  if (tokens.refresh_token) sessionStorage.setItem(KEYS.refresh, tokens.refresh_token);
}

export function forgetTokens() {
  sessionStorage.removeItem(KEYS.access);
  sessionStorage.removeItem(KEYS.refresh);
}

/** Whether this tab kept an access or a refresh token (a session that may have ended). */
export function hasStoredTokens() {
  return Boolean(sessionStorage.getItem(KEYS.access) || sessionStorage.getItem(KEYS.refresh));
}

/** The stored access token and its claims, or null; `expired` a few seconds early. */
export function session() {
  const token = sessionStorage.getItem(KEYS.access);
  const claims = token ? claimsOf(token) : null;
  if (!claims || typeof claims.exp !== "number") return null;
  return { token, claims, expired: claims.exp * 1000 <= Date.now() + EXPIRY_MARGIN_MS };
}

async function tokenRequest(fields) {
  const response = await fetch(endpoint("/oauth2/token"), {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`The token request failed: ${body.error || response.status}.`);
  return body;
}

/** A valid access token: the stored one, or a refreshed one; else SessionExpired. */
export async function accessToken() {
  const current = session();
  if (current && !current.expired) return current.token;
  const refreshToken = sessionStorage.getItem(KEYS.refresh);
  if (refreshToken) {
    try {
      storeTokens(await tokenRequest({ grant_type: "refresh_token", client_id: config.clientId, refresh_token: refreshToken }));
      scheduleExpiry();
      return session().token;
    } catch {
      // The refresh token is gone or expired: sign in again.
    }
  }
  throw new SessionExpired();
}

export function scheduleExpiry() {
  clearTimeout(expiryTimer);
  const current = session();
  if (!current) return;
  const delay = Math.min(Math.max(current.claims.exp * 1000 - EXPIRY_MARGIN_MS - Date.now(), 0), MAX_TIMER_MS);
  expiryTimer = setTimeout(onExpiry, delay);
}

async function onExpiry() {
  try {
    await accessToken();
  } catch (error) {
    if (error instanceof SessionExpired) onSessionExpired();
  }
}

/** The session is over: no more expiry checks, and the tokens are gone. */
export function endSession() {
  clearTimeout(expiryTimer);
  forgetTokens();
}

// ---- sign-in and sign-out ----------------------------------------------------

export async function signIn() {
  const responseType = config.responseType === "token" ? "token" : "code";
  const flow = { state: randomString(), responseType, redirectUri };
  const url = new URL(endpoint("/oauth2/authorize"));
  url.searchParams.set("response_type", responseType);
  url.searchParams.set("client_id", config.clientId);
  url.searchParams.set("redirect_uri", redirectUri);
  url.searchParams.set("scope", config.scopes || "openid items/read items/write");
  url.searchParams.set("state", flow.state);
  if (responseType === "code") {
    flow.verifier = randomString();
    url.searchParams.set("code_challenge_method", "S256");
    url.searchParams.set("code_challenge", await s256(flow.verifier));
  }
  sessionStorage.setItem(KEYS.signIn, JSON.stringify(flow));
  location.assign(url.toString());
}

/** Back from the Hosted UI: `?code=` (code flow) or `#access_token=` (implicit), or an error. */
export async function completeSignIn() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const query = new URLSearchParams(location.search);
  let params;
  if (fragment.has("access_token") || fragment.has("error")) params = fragment;
  else if (query.has("code") || query.has("error")) params = query;
  else return;

  // Codes and tokens leave the address bar and the history at once.
  history.replaceState(null, "", location.pathname);
  const flow = JSON.parse(sessionStorage.getItem(KEYS.signIn) || "null");
  sessionStorage.removeItem(KEYS.signIn);
  if (!flow || params.get("state") !== flow.state) {
    throw new Error("This sign-in response was not requested by this page. Please sign in again.");
  }
  if (params.has("error")) {
    throw new Error(`Sign-in failed: ${params.get("error_description") || params.get("error")}.`);
  }
  if (flow.responseType === "token" && params === fragment) {
    storeTokens({ access_token: params.get("access_token") });
  } else if (flow.responseType === "code" && params === query) {
    storeTokens(
      await tokenRequest({
        grant_type: "authorization_code",
        client_id: config.clientId,
        code: params.get("code"),
        redirect_uri: flow.redirectUri,
        code_verifier: flow.verifier,
      }),
    );
  } else {
    throw new Error("The sign-in response does not match the sign-in that was started. Please sign in again.");
  }
}

export async function signOut() {
  clearTimeout(expiryTimer);
  const refreshToken = sessionStorage.getItem(KEYS.refresh);
  forgetTokens();
  if (refreshToken) {
    await fetch(endpoint("/oauth2/revoke"), {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: refreshToken, client_id: config.clientId }),
    }).catch(() => {});
  }
  const url = new URL(endpoint("/logout"));
  url.searchParams.set("client_id", config.clientId);
  url.searchParams.set("logout_uri", redirectUri);
  location.assign(url.toString());
}
