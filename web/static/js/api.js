// JSON API client for staff pages: cookie login plus the CSRF header on unsafe requests.
import { errorMessage } from "./i18n.js";

const CSRF_KEY = "hoidong.csrf";

export class ApiError extends Error {
  constructor(status, body) {
    super(errorMessage(body));
    this.status = status;
    this.code = body && body.error ? body.error.code : "http.error";
  }
}

export function setCsrf(token) { sessionStorage.setItem(CSRF_KEY, token || ""); }

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = sessionStorage.getItem(CSRF_KEY) || "";
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = resp.headers.get("Content-Type")?.includes("json") ? await resp.json() : null;
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** Upload a multipart form (a file and its fields); JSON answer as with `api`. */
export async function upload(path, form) {
  const resp = await fetch(path, {
    method: "POST", credentials: "same-origin", body: form,
    headers: { Accept: "application/json", "X-CSRF-Token": sessionStorage.getItem(CSRF_KEY) || "" },
  });
  const data = resp.headers.get("Content-Type")?.includes("json") ? await resp.json() : null;
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

/** The logged-in user (refreshing the CSRF token), or null. */
export async function currentUser() {
  try {
    const me = await api("GET", "/api/me");
    setCsrf(me.csrf_token);
    return me.user;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}
