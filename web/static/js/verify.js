// The public verification page: a package id, or a package's payload manifest, checked
// against the Merkle root hoidong recorded. No login; no cookie is sent.
import { el, errorMessage, formatTime, t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const form = $("#public-form");

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  form.querySelector(".form-error").textContent = "";
  const file = form.elements.manifest_file.files[0];
  const body = { package_id: form.elements.package_id.value.trim(),
    manifest: file ? await file.text() : "" };
  const resp = await fetch("/api/public/verify", { method: "POST", credentials: "omit",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) { form.querySelector(".form-error").textContent = errorMessage(data); return; }
  const out = $("#public-result");
  out.hidden = false;
  out.dataset.found = String(data.found);
  if (!data.found) {
    out.replaceChildren(el("p", { class: "bad" }, t("public.not_found")),
      data.merkle_root ? el("p", {}, t("public.computed_root"), " ", el("code", {}, data.merkle_root)) : "");
    return;
  }
  out.replaceChildren(
    el("p", { class: "good" }, t("public.found")),
    el("p", {}, t("public.root"), " ", el("code", {}, data.merkle_root)),
    el("p", {}, t("public.zip_hash"), " ", el("code", {}, data.sha256)),
    el("p", {}, t("public.made", { at: formatTime(data.created_at), files: data.files })),
    data.timestamped_at ? el("p", {}, t("public.timestamped", { at: formatTime(data.timestamped_at) })) : "",
    data.session_kind ? el("p", {}, t("public.session", { kind: t("kind." + data.session_kind),
      at: formatTime(data.session_started_at) })) : el("p", {}, t("public.dossier_package")));
});
