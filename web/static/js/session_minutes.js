// The session page's minutes card: draft from the template, insert transcript lines,
// save versions (each one shared with the parties), see who agreed to which version
// (agreements to an older version shown void), make the parties' links.
import { api } from "./api.js";
import { el, formatOffset, formatTime, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const sessionId = $("#session-head").dataset.sessionId;
const form = $("#minutes-form");
let base = null;  // the version the form was loaded from

function fill(content) {
  for (const [name, value] of Object.entries(content)) {
    if (form.elements[name]) form.elements[name].value = value;
  }
}

function read() {
  const out = {};
  for (const field of form.querySelectorAll("input[name], textarea[name]")) out[field.name] = field.value;
  return out;
}

function responseLine(r) {
  const what = r.decision === "agree" ? t("minutes.agreed_by", { name: r.name })
    : t("minutes.commented_by", { name: r.name, comment: r.comment });
  return el("li", { class: r.void ? "void" : "", dataset: { void: String(r.void), decision: r.decision } },
    `${what} · ${formatTime(r.at)}${r.void ? ` · ${t("minutes.void")}` : ""}`);
}

async function load(refill) {
  const m = await api("GET", `/api/sessions/${sessionId}/minutes`);
  const card = $("#minutes-card");
  card.dataset.locked = String(m.locked);
  card.dataset.current = String(m.current || 0);
  $("#minutes-status").textContent = m.locked ? t("minutes.locked_status", { n: m.final.version })
    : m.current ? t("minutes.current_status", { n: m.current }) : t("minutes.none_yet");
  $("#minutes-versions").replaceChildren(...m.versions.slice().reverse().map((v) => el("li",
    { dataset: { version: String(v.number) } },
    el("strong", {}, t("minutes.version_n", { n: v.number })), " ",
    el("code", {}, v.sha256.slice(0, 16)), ` · ${formatTime(v.created_at)}`,
    el("ul", {}, ...v.responses.map(responseLine)))));
  $("#minutes-parties").replaceChildren(...m.required.map((p) => el("li",
    { dataset: { participantId: p.participant_id, agreed: String(Boolean(p.agreed_at)) } },
    `${p.name} (${t("role." + p.role)}): `,
    p.agreed_at ? t("minutes.party_agreed", { at: formatTime(p.agreed_at) }) : t("minutes.party_waiting"))));
  form.querySelectorAll("input, textarea, button").forEach((x) => { x.disabled = m.locked; });
  $("#minutes-template").disabled = m.locked;
  $("#minutes-lock").disabled = m.locked || !m.required.length || !m.required.every((p) => p.agreed_at);
  $("#minutes-final").hidden = !m.locked;
  if (m.locked) {
    $("#minutes-pdf").href = `/api/sessions/${sessionId}/minutes.pdf`;
    $("#minutes-docx").href = `/api/sessions/${sessionId}/minutes.docx`;
  }
  if (refill) {
    if (m.versions.length) fill(m.versions[m.versions.length - 1].content);
    base = m.current;
  }
  return m;
}

async function loadLines() {
  const tr = await api("GET", `/api/sessions/${sessionId}/transcript`).catch(() => null);
  const lines = (tr && tr.segments) || [];
  $("#minutes-lines").replaceChildren(...lines.map((line) => el("li", {},
    el("button", { type: "button", class: "small", onclick: () => {
      const area = form.elements.content;
      const excerpt = `[${formatOffset(line.start)}] ${line.speaker}: ${line.text}`;
      area.value = area.value ? `${area.value}\n${excerpt}` : excerpt;
    } }, t("minutes.insert")),
    ` [${formatOffset(line.start)}] ${line.speaker}: ${line.text}`)));
}

$("#minutes-template").addEventListener("click", async () => {
  fill(await api("GET", `/api/sessions/${sessionId}/minutes/template?lang=vi`));
});

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#minutes-error").textContent = "";
  try {
    const m = await api("POST", `/api/sessions/${sessionId}/minutes/versions`, { base, content: read() });
    base = m.current;
    await load(false);
  } catch (err) {
    // E.g. someone saved first: the text stays in the form; the newest version is one
    // click away (#minutes-reload).
    $("#minutes-error").textContent = err.message;
    await load(false).catch(() => {});
  }
});

$("#minutes-reload").addEventListener("click", () => load(true));

$("#minutes-lock").addEventListener("click", async () => {
  $("#minutes-error").textContent = "";
  try {
    await api("POST", `/api/sessions/${sessionId}/minutes/lock`);
  } catch (err) { $("#minutes-error").textContent = err.message; }
  await load(false);
});

$("#minutes-links").addEventListener("click", async () => {
  const links = await api("POST", `/api/sessions/${sessionId}/minutes/links`);
  $("#minutes-link-list").replaceChildren(...links.map((l) => el("li",
    { dataset: { participantId: l.participant_id } },
    `${l.name} (${t("role." + l.role)}): `, el("a", { href: l.url }, l.url))));
});

load(true).then(loadLines).catch((err) => { $("#minutes-error").textContent = err.message; });
setInterval(() => load(false).catch(() => {}), 5000);
