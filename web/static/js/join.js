// The participant's page: device check, recording consent, then the live connection.
import { errorMessage, lang, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const cfg = JSON.parse($("#join-config").textContent);
let stream = null;
let pc = null;
let ws = null;
let finished = false;

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

async function sendOffer() {
  pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected") setStatus("connected", t("join.connected"));
    else if (["failed", "disconnected"].includes(pc.connectionState) && !finished) setStatus("disconnected", t("join.disconnected"));
  });
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIce(pc);
  ws.send(JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }));
}

function finish(state, text) {
  finished = true;
  setStatus(state, text);
  if (pc) pc.close();
  if (stream) stream.getTracks().forEach((tr) => tr.stop());
  for (const id of ["#join-enter", "#toggle-mic", "#toggle-camera", "#leave"]) $(id).disabled = true;
}

$("#join-enter").addEventListener("click", () => {
  $("#join-enter").disabled = true;
  showError("", "");
  setStatus("connecting", t("join.connecting"));
  ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/join`);
  ws.addEventListener("open", () => ws.send(JSON.stringify({ type: "hello", token: cfg.token, session_id: cfg.sessionId })));
  ws.addEventListener("message", async (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "welcome") {
      for (const id of ["#toggle-mic", "#toggle-camera", "#leave"]) $(id).disabled = false;
      await sendOffer();
    } else if (msg.type === "answer") {
      await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
    } else if (msg.type === "error") {
      showError(msg.code, msg.message[lang]);
      finish("error", t("join.disconnected"));
    } else if (msg.type === "session_ended") {
      finish("ended", t("join.session_ended"));
    } else if (msg.type === "bye") {
      finish("left", t("join.left"));
    }
  });
  ws.addEventListener("close", () => { if (!finished) finish("disconnected", t("join.disconnected")); });
  setInterval(() => { if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "ping" })); }, 15000);
});

function toggle(button, tracks) {
  const enabled = !tracks[0]?.enabled;
  tracks.forEach((tr) => { tr.enabled = enabled; });
  button.querySelector("span").textContent = t(enabled ? "join.on" : "join.off");
  button.dataset.on = String(enabled);
}
$("#toggle-mic").addEventListener("click", (ev) => toggle(ev.currentTarget, stream.getAudioTracks()));
$("#toggle-camera").addEventListener("click", (ev) => toggle(ev.currentTarget, stream.getVideoTracks()));
$("#leave").addEventListener("click", () => {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "leave" }));
  else finish("left", t("join.left"));
});

