// A session's evidence page: participants and join links, recordings, transcript, audit.
import { api, currentUser } from "./api.js";
import { el, formatDay, formatOffset, formatTime, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const sessionId = $("#session-head").dataset.sessionId;
let participants = new Map();

function showError(err) { $("#session-head .form-error").textContent = err ? err.message : ""; }

async function loadSession() {
  const s = await api("GET", `/api/sessions/${sessionId}`);
  $("#session-title").textContent = s.title;
  $("#session-kind").textContent = t("kind." + s.kind);
  $("#session-admission").textContent = t("admission." + s.admission);
  const status = $("#session-status");
  status.textContent = t("status." + s.status);
  status.dataset.status = s.status;
  $("#session-times").textContent = [s.started_at, s.ended_at].filter(Boolean).map(formatTime).join(" → ");
  $("#start-session").hidden = s.status !== "scheduled";
  $("#end-session").hidden = !["scheduled", "live"].includes(s.status);
  $("#participant-form").hidden = !["scheduled", "live"].includes(s.status);
  return s;
}

function linkCell(url) {
  if (!url) return el("td", { class: "hint" }, "—");
  const input = el("input", { value: url, readonly: true, class: "join-link" });
  const button = el("button", { type: "button", onclick: async () => {
    await navigator.clipboard?.writeText(url).catch(() => {});
    input.select();
    button.textContent = t("common.copied");
  } }, t("common.copy"));
  return el("td", {}, input, button);
}

const newLinks = new Map();

async function loadParticipants() {
  const list = await api("GET", `/api/sessions/${sessionId}/participants`);
  participants = new Map(list.map((p) => [p.id, p]));
  $("#participants").replaceChildren(...list.map((p) => el("tr", { dataset: { participantId: p.id } },
    el("td", {}, p.name, p.pseudonym ? el("span", { class: "badge" }, p.pseudonym) : ""),
    el("td", {}, t("role." + p.role), p.camera_required ? el("span", { class: "badge" }, t("participant.camera_required")) : ""),
    el("td", {}, p.consent_at ? formatTime(p.consent_at) : "—",
      p.admitted_at ? el("span", { class: "badge" }, t("participant.admitted_at", { at: formatTime(p.admitted_at) })) : "",
      p.removed_at ? el("span", { class: "badge" }, t("participant.removed_at", { at: formatTime(p.removed_at) })) : ""),
    linkCell(newLinks.get(p.id)))));
}

/** "Video (screen)": the kind, and what was captured when it is known. */
function recordingLabel(r) {
  const kind = t("recording.kind." + r.kind);
  return r.source ? `${kind} (${t("recording.source." + r.source)})` : kind;
}

async function loadRecordings() {
  const list = await api("GET", `/api/sessions/${sessionId}/recordings`).catch(() => []);
  $("#recordings").replaceChildren(...list.map((r) => el("tr", {},
    el("td", {}, participants.get(r.participant_id)?.name ?? r.participant_id),
    el("td", {}, r.status === "stored"
      ? el("a", { href: r.media_url, target: "_blank" }, recordingLabel(r))
      : recordingLabel(r)),
    el("td", {}, t("recstatus." + r.status)),
    el("td", {}, r.duration_s?.toFixed(1) ?? ""),
    el("td", {}, r.size ?? ""),
    el("td", { class: "hash" }, r.sha256 ?? ""))));
}

async function loadTranscript() {
  const tr = await api("GET", `/api/sessions/${sessionId}/transcript`);
  $("#transcript-status").textContent = t("trstatus." + tr.status);
  $("#transcript-status").dataset.status = tr.status;
  $("#transcript-error").textContent = tr.error ? tr.error.message[document.body.dataset.lang] : "";
  for (const [id, fmt] of [["#vtt-link", "vtt"], ["#json-link", "json"]]) {
    $(id).hidden = tr.status !== "done";
    $(id).href = `/api/sessions/${sessionId}/transcript.${fmt}`;
  }
  // Every other export of the finished transcript (SRT, text, DOCX, PDF, per speaker).
  $("#transcript-exports").replaceChildren(...Object.entries(tr.exports || {})
    .filter(([name]) => !["json", "vtt"].includes(name))
    .map(([name, url]) => el("a", { href: url, dataset: { format: name } }, exportLabel(name))));
  const progress = tr.progress;
  const busy = progress && ["pending", "running"].includes(tr.status);
  $("#transcript-progress").textContent = busy
    ? t("transcript.progress", { done: progress.done, total: progress.total }) : "";
  $("#transcript-tracks").replaceChildren(...(progress ? progress.tracks : [])
    .filter((track) => track.status === "failed")
    .map((track) => {
      const err = track.error;
      return el("li", { dataset: { participantId: track.participant } },
        participants.get(track.participant)?.name ?? track.participant, ": ",
        t("transcript.track_failed", { reason: t(err.code, err.params) }));
    }));
  $("#transcript-rerun").hidden = !["done", "failed"].includes(tr.status);
  const items = tr.segments.map((s) => el("li", { dataset: { participantId: s.participant_id } },
    el("span", { class: "time" }, formatOffset(s.start)), " ",
    el("strong", {}, s.speaker), el("span", { class: "hint" }, ` (${t("role." + s.role)})`), ": ",
    el("span", { class: "text" }, s.text)));
  $("#transcript").replaceChildren(...(items.length ? items : [el("li", { class: "hint" }, t("transcript.empty"))]));
  return tr.status;
}

/** "srt" → "SRT"; "speaker-<id>.vtt" → "<name> (VTT)". */
function exportLabel(name) {
  if (!name.startsWith("speaker-")) return name.toUpperCase();
  const [id, fmt] = name.slice("speaker-".length).split(".");
  return `${participants.get(id)?.name ?? id} (${fmt.toUpperCase()})`;
}

/** "participant:<id>" shown as the participant's name; other actors as recorded. */
function actorName(actor) {
  const [kind, id] = actor.split(":");
  return kind === "participant" && participants.has(id) ? participants.get(id).name : actor;
}

async function loadAudit() {
  const events = await api("GET", `/api/sessions/${sessionId}/audit`).catch(() => []);
  $("#audit").replaceChildren(...events.map((e) => el("tr", {},
    el("td", {}, formatTime(e.at)), el("td", {}, t("event." + e.kind)), el("td", {}, actorName(e.actor)))));
}

/** The composite: status with progress while it is made, then a player and its hash. */
async function loadComposite() {
  const c = await api("GET", `/api/sessions/${sessionId}/composite`).catch(() => null);
  if (!c) return "none";
  const badge = $("#composite-status");
  badge.dataset.status = c.status;
  badge.textContent = t("composite.status." + c.status, { percent: Math.round(100 * c.progress) });
  const link = $("#composite-link");
  link.hidden = !c.media_url;
  const video = $("#composite-video");
  if (c.media_url) {
    link.href = c.media_url;
    if (video.getAttribute("src") !== c.media_url) video.src = c.media_url;
    video.hidden = false;
    $("#composite-hash").textContent = c.sha256;
  }
  return c.status;
}

/** The session's archive packages: make one, download one, check one. */
async function loadPackages() {
  const list = await api("GET", `/api/sessions/${sessionId}/packages`).catch(() => []);
  $("#packages").replaceChildren(...list.map((p) => el("tr", { dataset: { packageId: p.id } },
    el("td", {}, formatTime(p.created_at)), el("td", {}, el("code", {}, p.merkle_root)),
    el("td", {}, `${(p.size / 1e6).toFixed(1)} MB`), el("td", {}, formatDay(p.retain_until)),
    el("td", {}, el("a", { href: p.download_url }, t("package.download")), " ",
      el("button", { type: "button", class: "small", dataset: { verify: p.id }, onclick: () => verifyPackage(p.id) },
        t("package.verify"))))));
}

async function verifyPackage(id) {
  const out = $("#package-check");
  out.textContent = t("package.checking");
  try {
    const r = await api("POST", `/api/packages/${id}/verify`);
    out.dataset.ok = String(r.ok);
    out.textContent = r.ok ? t("verify.ok")
      : [t("verify.failed", { count: r.problems.length }),
         ...r.problems.map((x) => x.message[document.body.dataset.lang])].join(" ");
  } catch (err) { out.textContent = err.message; }
}

async function loadChain() {
  const badge = $("#audit-chain");
  try {
    const c = await api("GET", `/api/sessions/${sessionId}/audit/verify`);
    badge.dataset.ok = String(c.ok);
    badge.textContent = c.ok ? t("audit.chain_ok", { events: c.events })
      : c.broken.message[document.body.dataset.lang];
  } catch { badge.textContent = ""; }
}

$("#package-make").addEventListener("click", async () => {
  $("#package-error").textContent = "";
  try { await api("POST", `/api/sessions/${sessionId}/packages`); await loadPackages(); }
  catch (err) { $("#package-error").textContent = err.message; }
});

async function refresh() {
  const s = await loadSession();
  await loadParticipants();
  await Promise.all([loadRecordings(), loadAudit()]);
  const status = await loadTranscript();
  const composite = await loadComposite();
  // Keep the page current while the session runs or its transcript is being made.
  if (["scheduled", "live"].includes(s.status) || ["pending", "running"].includes(status)
      || ["pending", "running"].includes(composite)) {
    setTimeout(refresh, 5000);
  }
}

$("#start-session").addEventListener("click", async () => {
  try { await api("POST", `/api/sessions/${sessionId}/start`); showError(null); await refresh(); }
  catch (err) { showError(err); }
});
$("#end-session").addEventListener("click", async () => {
  if (!confirm(t("session.end_confirm"))) return;
  try { await api("POST", `/api/sessions/${sessionId}/end`); showError(null); await refresh(); }
  catch (err) { showError(err); }
});
$("#transcript-rerun").addEventListener("click", async () => {
  try { await api("POST", `/api/sessions/${sessionId}/transcript/rerun`); showError(null); await refresh(); }
  catch (err) { showError(err); }
});
$("#participant-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const p = await api("POST", `/api/sessions/${sessionId}/participants`, {
      name: f.get("name"), role: f.get("role"), email: f.get("email") || null,
      pseudonym: f.get("pseudonym") || null, stakeholder_group: f.get("stakeholder_group") || null,
    });
    newLinks.set(p.id, p.join_url);
    ev.target.reset();
    ev.target.querySelector(".form-error").textContent = "";
    await loadParticipants();
  } catch (err) { ev.target.querySelector(".form-error").textContent = err.message; }
});

if (await currentUser()) {
  await refresh();
  // Read once: a chain check reads every event of the session, too much every 5 s.
  await Promise.all([loadPackages(), loadChain()]);
} else location.href = "/staff";
