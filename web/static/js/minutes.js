// A party's page: read the newest version of the minutes, agree to it or comment on it.
// The personal link is the credential; every answer names the version and its hash.
import { el, errorMessage, formatTime, t } from "./i18n.js";
import { renderMinutes } from "./minutes_render.js";

const $ = (sel) => document.querySelector(sel);
const token = $("#minutes-party").dataset.token;
let shown = null;  // the version on screen: {number, sha256}

async function post(path, body) {
  const resp = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token, ...body }) });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new Error(errorMessage(data));
  return data;
}

async function load() {
  $("#party-error").textContent = "";
  const view = await post("/api/minutes/view", {});
  $("#party-who").textContent = `${view.party.name} (${t("role." + view.party.role)}) · ${view.session_title}`;
  const v = view.version;
  $("#party-version").hidden = !v;
  if (!v) { $("#party-status").textContent = t("minutes.none_yet"); return; }
  shown = { number: v.number, sha256: v.sha256 };
  $("#party-version").dataset.version = String(v.number);
  $("#party-version-label").textContent = t("minutes.version_n", { n: v.number });
  $("#party-version-hash").textContent = t("minutes.hash", { sha256: v.sha256 });
  $("#party-document").replaceChildren(...renderMinutes(v.content));
  const status = view.locked ? t("minutes.locked_note")
    : view.party.agreed_at ? t("minutes.you_agreed", { n: v.number, at: formatTime(view.party.agreed_at) })
      : view.required_party ? t("minutes.please_review") : t("minutes.comment_only");
  $("#party-status").textContent = status;
  document.body.dataset.agreed = String(Boolean(view.party.agreed_at));
  document.body.dataset.locked = String(view.locked);
  $("#party-agree").hidden = view.locked || !view.required_party;
  $("#party-agree").disabled = Boolean(view.party.agreed_at);
  $("#party-actions").hidden = view.locked;
  $("#party-sign").hidden = !(view.locked && view.required_party);
  $("#party-pdf").href = `/api/minutes/final.pdf?token=${encodeURIComponent(token)}`;
}

$("#party-send-signature").addEventListener("click", async () => {
  const file = $("#party-signature").files[0];
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  try {
    const state = await post("/api/minutes/sign", { signature: btoa(binary) });
    const mine = state.signatures[state.signatures.length - 1];
    $("#party-sign-status").textContent = t("minutes.signed_ok", { signer: mine.signer });
    document.body.dataset.signed = "true";
  } catch (err) { $("#party-sign-status").textContent = err.message; }
});

async function answer(decision) {
  try {
    await post("/api/minutes/respond", { version: shown.number, sha256: shown.sha256, decision,
      comment: decision === "comment" ? $("#party-comment").value : "" });
    if (decision === "comment") $("#party-comment").value = "";
    await load();
  } catch (err) {
    $("#party-error").textContent = err.message;
    await load().catch(() => {});
    $("#party-error").textContent = err.message;
  }
}

$("#party-agree").addEventListener("click", () => answer("agree"));
$("#party-send-comment").addEventListener("click", () => answer("comment"));
load().catch((err) => { $("#party-error").textContent = err.message; });
setInterval(() => { if (document.body.dataset.locked !== "true") load().catch(() => {}); }, 5000);
