// The archivist's search: transcript lines across sessions, diacritics-insensitive.
import { api, currentUser } from "./api.js";
import { el, formatOffset, formatTime, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);

async function search(form) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) if (value) params.set(name, value);
  const hits = await api("GET", `/api/search?${params}`);
  $("#search-count").textContent = t("archive.count", { count: hits.length });
  $("#results").replaceChildren(...hits.map((h) => el("li", { dataset: { sessionId: h.session_id } },
    el("a", { href: h.player_url, class: "hit" },
      el("span", { class: "time" }, formatOffset(h.start)), " ",
      el("strong", {}, h.speaker), ": ", el("span", { class: "text" }, h.text)),
    el("span", { class: "hint" }, ` — ${h.session_title} (${t("kind." + h.session_kind)}, `
      + `${h.started_at ? formatTime(h.started_at) : "—"}) · ${h.dossier_title}`
      + (h.institution ? ` · ${h.institution}` : "")))));
}

$("#search-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = ev.target.querySelector(".form-error");
  error.textContent = "";
  try { await search(ev.target); } catch (err) { error.textContent = err.message; }
});

if (!(await currentUser())) location.href = "/staff";
