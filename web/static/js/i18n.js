// The page's catalogue (embedded by the server in the page's language) and formatting.
const catalogue = JSON.parse(document.getElementById("i18n").textContent);
export const lang = document.body.dataset.lang || "vi";

/** The message `key`, with {name} placeholders filled from `params`. */
export function t(key, params = {}) {
  const text = catalogue[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

const timeFormat = new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB", {
  timeZone: "Asia/Ho_Chi_Minh", dateStyle: "short", timeStyle: "medium",
});

/** An ISO time (UTC from the API) shown in Vietnam time, as every screen does. */
export function formatTime(iso) {
  return iso ? timeFormat.format(new Date(iso)) : "";
}

const dayFormat = new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB", {
  timeZone: "Asia/Ho_Chi_Minh", day: "2-digit", month: "2-digit", year: "numeric",
});

/** An ISO time's day (dd/mm/yyyy, Vietnam time); a dash when there is none. */
export function formatDay(iso) {
  return iso ? dayFormat.format(new Date(iso)) : "—";
}

/** Seconds as H:MM:SS. */
export function formatOffset(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
}

/** The error message of an API error body in the page's language. */
export function errorMessage(body) {
  const err = body && body.error;
  if (!err) return t("http.error");
  return (err.message && err.message[lang]) || t(err.code);
}

/** Create an element with attributes and children (text children are escaped). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}
