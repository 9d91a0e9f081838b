// A session's recording with its transcript beside it: click a line to seek there; the
// line being spoken is highlighted. Opening the page is recorded in the access chain.
import { api, currentUser } from "./api.js";
import { el, formatOffset, formatTime, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const sessionId = $("#player-head").dataset.sessionId;
const video = $("#player-video");
let lines = [];

function highlight() {
  const now = video.currentTime;
  for (const li of lines) {
    const on = now >= Number(li.dataset.start) && now < Number(li.dataset.end);
    li.classList.toggle("current", on);
    if (on) li.setAttribute("aria-current", "true"); else li.removeAttribute("aria-current");
  }
}

function seek(seconds) {
  video.currentTime = seconds;
  highlight();
}

async function load() {
  const s = await api("GET", `/api/sessions/${sessionId}`);
  $("#player-title").textContent = s.title;
  $("#player-meta").textContent = [t("kind." + s.kind), s.started_at ? formatTime(s.started_at) : ""]
    .filter(Boolean).join(" · ");
  await api("POST", `/api/sessions/${sessionId}/access`, { what: "player" });
  const composite = await api("GET", `/api/sessions/${sessionId}/composite`).catch(() => null);
  const recordings = await api("GET", `/api/sessions/${sessionId}/recordings`).catch(() => []);
  const tracks = recordings.filter((r) => r.status === "stored");
  if (composite && composite.media_url) {
    video.src = composite.media_url;
    $("#player-source").textContent = t("player.composite");
  } else if (tracks.length) {
    video.src = tracks[0].media_url;
    $("#player-source").textContent = t("player.track");
  }
  $("#player-tracks").replaceChildren(...tracks.map((r) => el("li", {},
    el("a", { href: r.media_url }, `${r.participant_id.slice(0, 6)} ${t("recording.kind." + r.kind)}`))));
  const tr = await api("GET", `/api/sessions/${sessionId}/transcript`);
  lines = tr.segments.map((seg) => {
    const li = el("li", { dataset: { start: seg.start, end: seg.end, participantId: seg.participant_id },
                          tabindex: "0", role: "button" },
      el("span", { class: "time" }, formatOffset(seg.start)), " ",
      el("strong", {}, seg.speaker), ": ", el("span", { class: "text" }, seg.text));
    li.addEventListener("click", () => seek(seg.start));
    li.addEventListener("keydown", (ev) => { if (ev.key === "Enter") seek(seg.start); });
    return li;
  });
  $("#player-transcript").replaceChildren(...(lines.length ? lines
    : [el("li", { class: "hint" }, t("transcript.empty"))]));
  video.addEventListener("timeupdate", highlight);
  const at = Number(new URLSearchParams(location.search).get("t"));
  if (at > 0) {
    const go = () => seek(at);
    if (video.readyState >= 1) go(); else video.addEventListener("loadedmetadata", go, { once: true });
  }
}

if (await currentUser()) {
  try { await load(); } catch (err) { $("#player-head .form-error").textContent = err.message; }
} else location.href = "/staff";
