// Items: the API client. Every call carries the access token (auth.js); a 401
// is SessionExpired, any other answer that is not 2xx an ApiError with the
// API's message; listings follow `Link: rel="next"` to their last page.
// No build step, no dependencies.

import { SessionExpired, accessToken } from "./auth.js";

/** An API answer that is not 2xx: its message, and the status and body for callers that expect one (410). */
export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** Base URL of the API (config.json's `apiUrl`), or empty for this server. */
let base = "";

export function configureApi(apiUrl) {
  base = apiUrl || "";
}

function apiUrl(path) {
  return base.replace(/\/+$/, "") + path;
}

/** An API message as the person can act on it: a deployment still rolling descriptions out refuses them. */
function readable(message) {
  if (!message.startsWith("`description` cannot be stored yet")) return message;
  return "This server cannot store descriptions yet (it is being upgraded). Save without a description, or try again later";
}

export async function api(path, init = {}) {
  return (await apiPage(apiUrl(path), init)).body;
}

/** One API call to `url`: its JSON body and the `Link: <…>; rel="next"` URL, if any. */
async function apiPage(url, init = {}) {
  const token = await accessToken();
  const response = await fetch(url, {
    ...init,
    headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` },
  });
  if (response.status === 401) throw new SessionExpired();
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && typeof body.message === "string" ? body.message : response.statusText;
    throw new ApiError(`${readable(message)} (HTTP ${response.status}).`, response.status, body);
  }
  const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(response.headers.get("Link") || "");
  return { body, next: next ? new URL(next[1], new URL(url, window.location.href)).href : null };
}

/** Every item of the listing `path` (`/items`, `/items?createdBy=me`), then each
 * `Link: rel="next"` page (a listing stops where a Lambda response would grow
 * too large, and says where to go on); `onPage(count, page)` before each further page. */
export async function listAll(path, onPage = () => {}) {
  const items = [];
  let url = apiUrl(path);
  for (let pages = 1; url; pages++) {
    const page = await apiPage(url);
    items.push(...page.body);
    url = page.next;
    if (url) onPage(items.length, pages + 1);
  }
  return items;
}
