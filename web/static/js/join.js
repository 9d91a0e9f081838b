// The participant's page: device check, recording consent, then the live connection.
import { el, errorMessage, formatOffset, lang, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const cfg = JSON.parse($("#join-config").textContent);
let stream = null;
let pc = null;
let ws = null;
let finished = false;
// Screen sharing: a video m-line kept for it in every offer (silent until shared), and
// receive slots for others' screens.
const SCREEN_SLOTS = 1;
let screenTx = null;
let screenTrack = null;

function setStatus(state, text) {
  const s = $("#status");
  s.dataset.state = state;
  s.textContent = text;
  $("#rec-indicator").hidden = state !== "connected";
}

function showError(code, message) {
  const box = $("#join-error");
  box.dataset.code = code || "";
  box.textContent = message || "";
}

function hasLiveVideo(s) {
  return !!s && s.getVideoTracks().some((tr) => tr.readyState === "live");
}

$("#device-start").addEventListener("click", async () => {
  const status = $("#device-status");
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true },
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
    });
  } catch (err) {
    if (cfg.cameraRequired) {
      status.textContent = t("join.device_failed", { detail: err.name }) + " " + t("join.camera_required_block");
      status.dataset.ok = "false";
      return;
    }
    try { stream = await navigator.mediaDevices.getUserMedia({ audio: true }); }
    catch (err2) {
      status.textContent = t("join.device_failed", { detail: err2.name });
      status.dataset.ok = "false";
      return;
    }
  }
  if (cfg.cameraRequired && !hasLiveVideo(stream)) {
    status.textContent = t("join.camera_required_block");
    status.dataset.ok = "false";
    return;
  }
  $("#self-view").srcObject = stream;
  status.textContent = t("join.device_ok");
  status.dataset.ok = "true";
  $("#consent-accept").disabled = cfg.consented;
  if (cfg.consented) consentDone();
});

function consentDone() {
  $("#consent-status").textContent = t("join.consent_saved");
  $("#consent-accept").disabled = true;
  $("#join-enter").disabled = !stream;
}

$("#consent-accept").addEventListener("click", async () => {
  const resp = await fetch("/api/join/consent", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ token: cfg.token, accepted: true, language: lang }),
  });
  if (!resp.ok) {
    const body = await resp.json().catch(() => null);
    $("#consent-status").textContent = errorMessage(body);
    return;
  }
  cfg.consented = true;
  consentDone();
});

function waitForIce(peer, timeoutMs = 5000) {
  // The server does not take trickled candidates: the offer carries them all.
  if (peer.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { if (peer.iceGatheringState === "complete") resolve(); };
    peer.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, timeoutMs);
  });
}

/** Keep only the codecs the server records and forwards (also keeps the offer small). */
function narrowCodecs(transceiver, kind) {
  const wanted = kind === "video" ? ["video/vp8", "video/rtx"] : ["audio/opus"];
  const caps = RTCRtpReceiver.getCapabilities(kind);
  if (!caps || !transceiver.setCodecPreferences) return;
  const codecs = caps.codecs.filter((c) => wanted.includes(c.mimeType.toLowerCase()));
  if (codecs.length) transceiver.setCodecPreferences(codecs);
}

// mid -> remote track, filled by `track` events; tiles are built from `slots` messages.
const remoteTracks = new Map();
let lastSlots = [];
let canControl = false;       // a host (chair, secretary…): per-tile controls
let activeSpeaker = null;     // participant id the server says is speaking
const mutedAudio = new Set();  // participants whose audio the server stopped forwarding
const mediaStates = new Map(); // participant id -> {audio, video} as their page says

function send(msg) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg)); }

function tileControls(who) {
  const mute = el("button", { class: "small", dataset: { action: "mute" }, onclick: () =>
    send({ type: "mute", participant_id: who.id, kind: "audio", muted: !mutedAudio.has(who.id) }) },
  t("meeting.mute"));
  const remove = el("button", { class: "small-danger", dataset: { action: "remove" }, onclick: () => {
    if (confirm(t("meeting.remove_confirm", { name: who.name }))) send({ type: "remove", participant_id: who.id });
  } }, t("meeting.remove"));
  return el("div", { class: "tile-controls" }, mute, remove);
}

function updateMuteState(tile, id) {
  const muted = mutedAudio.has(id);
  const state = mediaStates.get(id) || { audio: true, video: true };
  tile.dataset.muted = String(muted);
  tile.dataset.micOff = String(!state.audio);
  tile.dataset.cameraOff = String(!state.video);
  tile.querySelector(".mic-off-badge").hidden = state.audio;
  tile.querySelector(".camera-off-badge").hidden = state.video;
  const badge = tile.querySelector(".muted-badge");
  if (badge) badge.hidden = !muted;
  const button = tile.querySelector("[data-action=mute]");
  if (button) button.textContent = t(muted ? "meeting.unmute" : "meeting.mute");
}

function renderGrid() {
  const grid = $("#grid");
  const byPerson = new Map();
  const screens = new Map();
  for (const slot of lastSlots) {
    if (!slot.participant) continue;
    const track = remoteTracks.get(slot.mid);
    if (slot.kind === "screen") {
      if (track) screens.set(slot.participant.id, { who: slot.participant, track });
      continue;
    }
    const entry = byPerson.get(slot.participant.id) || { who: slot.participant, tracks: [] };
    if (track) entry.tracks.push(track);
    byPerson.set(slot.participant.id, entry);
  }
  for (const tile of [...grid.children]) {
    if (!byPerson.has(tile.dataset.participantId)) tile.remove();
  }
  for (const [id, { who, tracks }] of byPerson) {
    let tile = grid.querySelector(`[data-participant-id="${CSS.escape(id)}"]`);
    if (!tile) {
      const video = el("video", { autoplay: true, playsinline: true });
      tile = el("figure", { class: "tile", dataset: { participantId: id } }, video,
        el("figcaption", {}, el("strong", {}, who.name), " · ", t("role." + who.role),
          el("span", { class: "muted-badge", hidden: true }, " · ", t("meeting.muted_badge")),
          el("span", { class: "speaking-badge", hidden: true }, " · ", t("meeting.speaking")),
          el("span", { class: "mic-off-badge", hidden: true }, " · ", t("meeting.mic_off")),
          el("span", { class: "camera-off-badge", hidden: true }, " · ", t("meeting.camera_off"))),
        canControl ? tileControls(who) : "");
      grid.append(tile);
    }
    updateMuteState(tile, id);
    tile.dataset.speaking = String(id === activeSpeaker);
    tile.querySelector(".speaking-badge").hidden = id !== activeSpeaker;
    showTracks(tile.querySelector("video"), tracks);
  }
  $("#grid-empty").hidden = byPerson.size > 0;
  renderScreens(screens);
}

/** Put ``tracks`` on ``video`` unless it already shows exactly those. */
function showTracks(video, tracks) {
  const current = video.srcObject ? video.srcObject.getTracks().map((tr) => tr.id).sort().join() : "";
  if (current !== tracks.map((tr) => tr.id).sort().join()) video.srcObject = new MediaStream(tracks);
}

function renderScreens(screens) {
  const box = $("#screens");
  for (const tile of [...box.children]) {
    if (!screens.has(tile.dataset.screenOf)) tile.remove();
  }
  for (const [id, { who, track }] of screens) {
    let tile = box.querySelector(`[data-screen-of="${CSS.escape(id)}"]`);
    if (!tile) {
      tile = el("figure", { class: "screen-tile", dataset: { screenOf: id } },
        el("video", { autoplay: true, playsinline: true, muted: true }),
        el("figcaption", {}, t("meeting.screen_of", { name: who.name })));
      box.append(tile);
    }
    showTracks(tile.querySelector("video"), [track]);
  }
  box.hidden = screens.size === 0;
}

async function shareScreen() {
  if (screenTrack) { await stopSharing(); return; }
  let display;
  try {
    display = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
  } catch (err) {
    $("#notice").textContent = t("meeting.share_failed", { detail: err.name });
    return;
  }
  screenTrack = display.getVideoTracks()[0];
  screenTrack.contentHint = "detail";
  screenTrack.addEventListener("ended", () => stopSharing());
  await attachScreen();
}

/** Send the shared screen on the current connection (again after a reconnect). */
async function attachScreen() {
  if (!screenTrack || !screenTx) return;
  await screenTx.sender.replaceTrack(screenTrack);
  send({ type: "screen", sharing: true });
  $("#share-screen").dataset.on = "true";
  $("#share-screen").textContent = t("meeting.stop_sharing");
}

async function stopSharing() {
  if (!screenTrack) return;
  screenTrack.stop();
  screenTrack = null;
  if (screenTx) await screenTx.sender.replaceTrack(null);
  send({ type: "screen", sharing: false });
  $("#share-screen").dataset.on = "false";
  $("#share-screen").textContent = t("meeting.share_screen");
}

/** Hosts: who waits in the lobby, each with Admit and Turn away. */
function renderLobby(waiting) {
  const list = $("#lobby-list");
  list.replaceChildren(...waiting.map((who) => el("li", { dataset: { participantId: who.id } },
    el("strong", {}, who.name), " · ", t("role." + who.role), " · ", t("lobby.on_roster"), " ",
    el("button", { class: "small", dataset: { action: "admit" },
      onclick: () => send({ type: "admit", participant_id: who.id }) }, t("lobby.admit")),
    " ",
    el("button", { class: "small-danger", dataset: { action: "deny" },
      onclick: () => send({ type: "deny", participant_id: who.id }) }, t("lobby.deny")))));
  $("#lobby").hidden = waiting.length === 0;
}

// -- the camera rule: warnings on this page, the hosts' panel ----------------------------

let hybrid = false;  // the session has a meeting room: hosts take its roll call here
const sounds = { played: 0 };

/** A short two-tone alert (the warning must be heard, not only seen). */
function beep() {
  sounds.played += 1;
  try {
    const ctx = new AudioContext();
    for (const [i, freq] of [880, 660].entries()) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + i * 0.25);
      osc.stop(ctx.currentTime + i * 0.25 + 0.2);
    }
    setTimeout(() => ctx.close(), 1000);
  } catch (err) { /* no audio output: the message stays on screen */ }
}

function reasonText(reason) { return t("report.camera_reason." + (reason || "checking")); }

/** The server says this participant's camera has been off too long (or is back). */
function showCameraWarning(level, msg) {
  const box = $("#camera-warning");
  box.dataset.level = level;
  if (level === "ok") {
    box.textContent = t("camera.back_on");
    setTimeout(() => { if (box.dataset.level === "ok") box.hidden = true; }, 4000);
  } else if (level === "warning") {
    box.textContent = t("camera.warning", { reason: reasonText(msg.reason),
      seconds: Math.round(msg.escalation_in_s) });
    beep();
  } else if (level === "non_compliant") {
    box.textContent = t("camera.non_compliant", { reason: reasonText(msg.reason) });
    beep();
  } else {
    box.textContent = t("camera.moved_to_lobby");
  }
  box.hidden = false;
}

function addAlert(msg) {
  const text = t("alert." + msg.kind, { name: msg.participant.name, reason: reasonText(msg.reason) });
  const item = el("li", { dataset: { kind: msg.kind, participantId: msg.participant.id } },
    el("time", {}, new Date().toLocaleTimeString(lang === "vi" ? "vi-VN" : "en-GB")), " ", text);
  const list = $("#alerts");
  list.prepend(item);
  while (list.children.length > 20) list.lastChild.remove();
  if (msg.kind !== "camera_ok") beep();
}

function quorumText(q) {
  if (!q.rule) return t("panel.quorum_none");
  const text = t(q.met ? "panel.quorum_met" : "panel.quorum_not_met", q);
  return q.chair_present ? text : `${text} · ${t("panel.quorum_no_chair")}`;
}

/** Hosts: everyone's camera state as the server sees it, time on camera, the quorum. */
function renderPanel(msg) {
  $("#panel").hidden = false;
  const quorum = $("#quorum");
  quorum.dataset.met = String(msg.quorum.met);
  quorum.textContent = quorumText(msg.quorum);
  $("#panel-rows").replaceChildren(...msg.participants.map((p) => {
    const presence = p.in_room ? t("panel.in_room") : p.connected ? t("panel.online") : t("panel.offline");
    let camera = "—";
    if (p.connected) camera = p.camera_on ? t("panel.camera_on") : t("panel.camera_off", { reason: reasonText(p.camera_reason) });
    const state = p.state !== "ok" ? el("span", { class: "badge" }, t("panel.state." + p.state)) : "";
    const offFor = p.off_for_s !== null && !p.camera_on ? ` (${t("panel.off_for", { seconds: Math.round(p.off_for_s) })})` : "";
    const roll = hybrid ? el("button", { class: "small", dataset: { action: "room" }, onclick: () =>
      send({ type: "room_presence", participant_id: p.id, present: !p.in_room }) },
    t(p.in_room ? "panel.mark_left_room" : "panel.mark_in_room")) : "";
    return el("tr", { dataset: { participantId: p.id, state: p.state, cameraOn: String(p.camera_on),
      connected: String(p.connected), inRoom: String(p.in_room) } },
    el("td", {}, el("strong", {}, p.name), " · ", t("role." + p.role)),
    el("td", {}, presence, " ", roll),
    el("td", {}, p.camera_required ? "" : el("span", { class: "hint" }, t("panel.not_required"), " "), camera, offFor, " ", state),
    el("td", {}, formatOffset(p.camera_on_s)),
    el("td", {}, String(p.warnings)));
  }));
}

async function sendOffer(receiveSlots, iceServers) {
  pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", iceServers });
  window.hoidong = { pc, ws, sounds, stream };  // for diagnostics and the browser tests
  for (const track of stream.getTracks()) {
    narrowCodecs(pc.addTransceiver(track, { direction: "sendonly", streams: [stream] }), track.kind);
  }
  screenTx = pc.addTransceiver("video", { direction: "sendonly" });
  narrowCodecs(screenTx, "video");
  // One receive slot per kind for every other participant the meeting can hold: the
  // server fills them as people join, with no renegotiation.
  for (let i = 0; i < receiveSlots; i++) {
    for (const kind of ["audio", "video"]) narrowCodecs(pc.addTransceiver(kind, { direction: "recvonly" }), kind);
  }
  const screenSlots = [];
  for (let i = 0; i < SCREEN_SLOTS; i++) {
    const tx = pc.addTransceiver("video", { direction: "recvonly" });
    narrowCodecs(tx, "video");
    screenSlots.push(tx);
  }
  pc.addEventListener("track", (ev) => {
    remoteTracks.set(ev.transceiver.mid, ev.track);
    renderGrid();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") setStatus("connected", t("join.connected"));
    else if (pc.connectionState === "failed" && !finished) ws.close();  // reconnects
  });
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp,
    screen: { send: screenTx.mid, receive: screenSlots.map((tx) => tx.mid) } }));
}

/** In the meeting (or its lobby) the page is the meeting: the set-up steps fold away
 * and a small self view stays in the corner. */
function enterMeetingLayout() {
  document.body.dataset.phase = "meeting";
  $("#self-mini").srcObject = stream;
  $("#self-tile").hidden = false;
}

function finish(state, text) {
  finished = true;
  document.body.dataset.phase = "finished";
  $("#self-tile").hidden = true;
  setStatus(state, text);
  if (pc) pc.close();
  if (stream) stream.getTracks().forEach((tr) => tr.stop());
  if (screenTrack) { screenTrack.stop(); screenTrack = null; }
  for (const id of ["#join-enter", "#toggle-mic", "#toggle-camera", "#share-screen", "#leave"]) $(id).disabled = true;
}

// After an unexpected drop the page reconnects by itself with the same link; the server
// records the gap (reconnect_grace_s), not a leave and a join.
const RECONNECT_EVERY_MS = 2000;
const RECONNECT_FOR_MS = 60000;
let lostSince = null;

function reconnectLater() {
  if (finished) return;
  if (lostSince === null) lostSince = Date.now();
  if (Date.now() - lostSince > RECONNECT_FOR_MS) {
    finish("disconnected", t("join.disconnected"));
    return;
  }
  setStatus("reconnecting", t("join.reconnecting"));
  setTimeout(connect, RECONNECT_EVERY_MS);
}

$("#join-enter").addEventListener("click", () => {
  $("#join-enter").disabled = true;
  showError("", "");
  setStatus("connecting", t("join.connecting"));
  connect();
  setInterval(() => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" })); }, 15000);
});

function connect() {
  if (finished) return;
  if (pc) { pc.close(); pc = null; }
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/join`);
  ws = socket;
  socket.addEventListener("open", () => socket.send(JSON.stringify({ type: "hello", token: cfg.token, session_id: cfg.sessionId })));
  socket.addEventListener("message", async (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "waiting") {
      lostSince = null;
      enterMeetingLayout();
      setStatus("waiting", t("lobby.waiting"));
      $("#leave").disabled = false;
    } else if (msg.type === "lobby") {
      renderLobby(msg.waiting);
    } else if (msg.type === "welcome") {
      lostSince = null;
      enterMeetingLayout();
      canControl = !!msg.participant.controls;
      hybrid = msg.session.mode === "hybrid";
      $("#end-for-all").hidden = !canControl;
      for (const id of ["#toggle-mic", "#toggle-camera", "#leave"]) $(id).disabled = false;
      await sendOffer(msg.receive_slots || 0, msg.ice_servers || []);
    } else if (msg.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
      sendMediaState();
      $("#share-screen").disabled = !navigator.mediaDevices.getDisplayMedia;
      await attachScreen();
    } else if (msg.type === "error") {
      showError(msg.code, msg.message[lang]);
      finish("error", t("join.disconnected"));
    } else if (msg.type === "muted") {
      if (msg.kind === "audio") {
        if (msg.muted) mutedAudio.add(msg.participant_id); else mutedAudio.delete(msg.participant_id);
      }
      if (msg.participant_id === cfg.participantId) {
        $("#notice").textContent = t(msg.muted ? "meeting.muted_by" : "meeting.unmuted_by", { name: msg.by.name });
      }
      renderGrid();
    } else if (msg.type === "removed") {
      $("#notice").textContent = t("meeting.removed_by", { name: msg.by.name });
      finish("removed", t("join.disconnected"));
    } else if (msg.type === "denied") {
      showError(msg.code, msg.message[lang]);
    } else if (msg.type === "media_state") {
      mediaStates.set(msg.participant_id, { audio: msg.audio, video: msg.video });
      renderGrid();
    } else if (msg.type === "speaker") {
      activeSpeaker = msg.participant_id;
      renderGrid();
    } else if (msg.type === "slots") {
      lastSlots = msg.slots;
      renderGrid();
    } else if (msg.type === "camera_warning") {
      showCameraWarning("warning", msg);
    } else if (msg.type === "camera_non_compliant") {
      showCameraWarning("non_compliant", msg);
    } else if (msg.type === "camera_ok") {
      showCameraWarning("ok", msg);
    } else if (msg.type === "moved_to_lobby") {
      showCameraWarning("lobby", msg);  // the server closes; the page comes back to the lobby
    } else if (msg.type === "panel") {
      renderPanel(msg);
    } else if (msg.type === "alert") {
      addAlert(msg);
    } else if (msg.type === "session_ended") {
      finish("ended", t("join.session_ended"));
    } else if (msg.type === "bye") {
      finish("left", t("join.left"));
    }
  });
  socket.addEventListener("close", () => { if (ws === socket) reconnectLater(); });
}

function toggle(button, tracks) {
  const enabled = !tracks[0]?.enabled;
  tracks.forEach((tr) => { tr.enabled = enabled; });
  button.querySelector("span").textContent = t(enabled ? "join.on" : "join.off");
  button.dataset.on = String(enabled);
  sendMediaState();
}

/** Tell the others whether this page's microphone and camera are on (what the page
 * says; the server's own camera check is separate). */
function sendMediaState() {
  if (!stream) return;
  send({ type: "media_state",
    audio: stream.getAudioTracks().some((tr) => tr.enabled),
    video: stream.getVideoTracks().some((tr) => tr.enabled) });
}
$("#toggle-mic").addEventListener("click", (ev) => toggle(ev.currentTarget, stream.getAudioTracks()));
$("#toggle-camera").addEventListener("click", (ev) => toggle(ev.currentTarget, stream.getVideoTracks()));
$("#share-screen").addEventListener("click", () => shareScreen());
$("#end-for-all").addEventListener("click", () => {
  if (confirm(t("session.end_confirm"))) send({ type: "end_session" });
});
$("#leave").addEventListener("click", () => {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "leave" }));
  else finish("left", t("join.left"));
});

