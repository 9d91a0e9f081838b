// Staff workspace: login, dossiers, and the sessions of the selected dossier.
import { api, currentUser, setCsrf, upload } from "./api.js";
import { el, formatDay, formatTime, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);

function formError(form, err) { form.querySelector(".form-error").textContent = err ? err.message : ""; }

async function showWorkspace(user) {
  $("#login").hidden = true;
  $("#workspace").hidden = false;
  $("#who").textContent = `${user.display_name} (${t("role." + user.role)})`;
  await loadDossiers();
}

async function loadDossiers(selectId) {
  const dossiers = await api("GET", "/api/dossiers");
  const list = $("#dossiers");
  list.replaceChildren(...dossiers.map((d) => el("li", {},
    el("button", { class: "link", dataset: { dossierId: d.id }, onclick: () => selectDossier(d) },
      d.title),
    el("span", { class: "hint" }, ` ${t("phase." + d.phase)} · ${d.institution}`))));
  if (!dossiers.length) list.append(el("li", { class: "hint" }, t("common.none")));
  const chosen = dossiers.find((d) => d.id === selectId) || dossiers[0];
  if (chosen) await selectDossier(chosen);
}

let currentDossier = null;

async function selectDossier(d) {
  currentDossier = d;
  $("#dossier-panel").hidden = false;
  $("#vocabulary-form [name=terms]").value = (d.vocabulary || []).join("\n");
  $("#dossier-title").textContent = d.title;
  const sessions = await api("GET", `/api/dossiers/${d.id}/sessions`);
  const list = $("#sessions");
  list.replaceChildren(...sessions.map((s) => el("li", {},
    el("a", { href: `/staff/sessions/${s.id}` }, s.title),
    el("span", { class: "hint" },
      ` ${t("kind." + s.kind)} · ${t("status." + s.status)} · ${formatTime(s.scheduled_at || s.created_at)}`))));
  if (!sessions.length) list.append(el("li", { class: "hint" }, t("common.none")));
  await Promise.all([loadDocuments(), loadDossierPackages(), loadRetention()]);
}

/** The dossier's evidence items (minh chứng), by code; a click opens one (logged). */
async function loadDocuments() {
  const docs = await api("GET", `/api/dossiers/${currentDossier.id}/documents`).catch(() => []);
  $("#documents").replaceChildren(...docs.map((d) => el("tr", { dataset: { documentId: d.id } },
    el("td", {}, d.code),
    el("td", {}, d.title, d.description ? el("div", { class: "hint" }, d.description) : ""),
    el("td", {}, d.content_url ? el("a", { href: d.content_url, target: "_blank", rel: "noopener" }, d.filename)
      : el("span", { class: "hint" }, t("document.deleted_short"))),
    el("td", {}, `${(d.size / 1e6).toFixed(2)} MB`),
    el("td", {}, formatDay(d.retain_until)))));
  if (!docs.length) $("#documents").append(el("tr", {}, el("td", { colspan: "5", class: "hint" }, t("common.none"))));
}

async function loadDossierPackages() {
  const list = await api("GET", `/api/dossiers/${currentDossier.id}/packages`).catch(() => []);
  $("#dossier-packages").replaceChildren(...list.map((p) => el("li", { dataset: { packageId: p.id } },
    el("a", { href: p.download_url }, t("package.download")),
    el("span", { class: "hint" }, ` ${formatTime(p.created_at)} · ${t("package.root")}: `),
    el("code", {}, p.merkle_root),
    el("span", { class: "hint" }, ` · ${t("retention.until")}: ${formatDay(p.retain_until)}`))));
}

/** What the store says of the dossier's objects: how many, kept until when, on hold. */
async function loadRetention() {
  const out = $("#retention-summary");
  try {
    const r = await api("GET", `/api/dossiers/${currentDossier.id}/retention`);
    out.textContent = t("retention.summary", {
      objects: r.objects.length, years: r.retention_years,
      earliest: formatDay(r.earliest), latest: formatDay(r.latest),
    }) + (r.legal_hold ? ` ${t("retention.on_hold")}` : "");
  } catch (err) { out.textContent = err.status === 403 ? "" : err.message; }
}

$("#document-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await upload(`/api/dossiers/${currentDossier.id}/documents`, new FormData(ev.target));
    ev.target.reset();
    formError(ev.target, null);
    await Promise.all([loadDocuments(), loadRetention()]);
  } catch (err) { formError(ev.target, err); }
});

$("#dossier-package-make").addEventListener("click", async () => {
  $("#dossier-package-error").textContent = "";
  try {
    await api("POST", `/api/dossiers/${currentDossier.id}/packages`);
    await Promise.all([loadDossierPackages(), loadRetention()]);
  } catch (err) { $("#dossier-package-error").textContent = err.message; }
});

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const out = await api("POST", "/api/login", { username: f.get("username"), password: f.get("password") });
    setCsrf(out.csrf_token);
    formError(ev.target, null);
    await showWorkspace(out.user);
  } catch (err) { formError(ev.target, err); }
});

$("#vocabulary-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const lines = new FormData(ev.target).get("terms").split("\n").map((x) => x.trim()).filter(Boolean);
  try {
    currentDossier = await api("PUT", `/api/dossiers/${currentDossier.id}/vocabulary`,
      { terms: lines.length ? lines : null });
    formError(ev.target, null);
  } catch (err) { formError(ev.target, err); }
});

$("#logout").addEventListener("click", async () => {
  await api("POST", "/api/logout");
  location.reload();
});

$("#dossier-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const d = await api("POST", "/api/dossiers", {
      title: f.get("title"), institution: f.get("institution"), phase: f.get("phase"),
    });
    ev.target.reset();
    formError(ev.target, null);
    await loadDossiers(d.id);
  } catch (err) { formError(ev.target, err); }
});

/** The camera rule from the form; a field left empty keeps the session kind's default. */
function policyFrom(f) {
  const policy = { camera_to_lobby: f.get("camera_to_lobby") === "on" };
  for (const name of ["camera_grace_s", "camera_escalation_s"]) {
    const value = f.get(name);
    if (value !== null && value !== "") policy[name] = Number(value);
  }
  return policy;
}

$("#session-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const local = f.get("scheduled_at");
  try {
    const s = await api("POST", `/api/dossiers/${currentDossier.id}/sessions`, {
      kind: f.get("kind"), title: f.get("title"), mode: f.get("mode"), language: f.get("language"),
      admission: f.get("admission"),
      policy: policyFrom(f),
      // The form is in Vietnam time; the API takes UTC.
      scheduled_at: local ? new Date(local + ":00+07:00").toISOString() : null,
    });
    location.href = `/staff/sessions/${s.id}`;
  } catch (err) { formError(ev.target, err); }
});

const user = await currentUser();
if (user) await showWorkspace(user); else $("#login").hidden = false;
