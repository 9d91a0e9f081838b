// The minutes as the parties read them: every field as text (markup in it stays text),
// in the order of the official layout.
import { el, t } from "./i18n.js";

export const SECTIONS = ["attendees", "agenda", "content", "conclusions"];

/** The minutes `content` as DOM nodes (never innerHTML). */
export function renderMinutes(content) {
  const c = content || {};
  const head = el("div", { class: "minutes-head" },
    el("div", {}, el("strong", {}, c.organisation || ""), el("div", {}, c.number || "")),
    el("div", {}, el("strong", {}, t("minutes.motto")), el("div", {}, el("strong", {}, t("minutes.motto_2")))));
  const nodes = [head,
    el("p", { class: "minutes-date" }, [c.place, c.date].filter(Boolean).join(", ")),
    el("h2", { class: "minutes-title" }, c.title || "")];
  SECTIONS.forEach((name, i) => {
    nodes.push(el("h3", {}, t("minutes.section." + name, { n: i + 1 })));
    nodes.push(el("p", { class: "minutes-body" }, c[name] || "—"));
  });
  nodes.push(el("h3", {}, t("minutes.section.signatures")));
  if (c.signatures) nodes.push(el("p", { class: "minutes-body" }, c.signatures));
  return nodes;
}
