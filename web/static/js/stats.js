// The statistics page: bar charts drawn as SVG from /api/stats (no chart library).
import { api } from "./api.js";
import { t } from "./i18n.js";

const $ = (sel) => document.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A horizontal bar chart of [label, value] pairs; `max` fixes the scale (e.g. 100 %). */
function bars(figure, pairs, { max = null, unit = "" } = {}) {
  const width = 640, row = 26, left = 150;
  const top = Math.max(1, max ?? Math.max(1, ...pairs.map(([, v]) => v || 0)));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${Math.max(1, pairs.length) * row + 8}`,
    role: "img", width: "100%" });
  pairs.forEach(([label, value], i) => {
    const y = i * row + 4;
    const w = ((value || 0) / top) * (width - left - 70);
    chart.append(svg("text", { x: 0, y: y + 16, class: "chart-label" }, label));
    chart.append(svg("rect", { x: left, y, width: Math.max(0, w), height: row - 8,
      class: "chart-bar", "data-value": value ?? "" }));
    chart.append(svg("text", { x: left + w + 6, y: y + 16, class: "chart-value" },
      value === null || value === undefined ? "—" : `${value}${unit}`));
  });
  figure.replaceChildren(chart);
  if (!pairs.length) figure.replaceChildren(document.createTextNode(t("common.none")));
}

async function load() {
  const s = await api("GET", "/api/stats");
  bars($("#chart-sessions"), s.periods.map((p) => [p.period, p.sessions]));
  bars($("#chart-hours"), s.periods.map((p) => [p.period, p.hours]));
  bars($("#chart-compliance"), s.periods.map((p) => [p.period, p.camera_on_pct]), { max: 100, unit: "%" });
  bars($("#chart-interviews"), Object.entries(s.interviews_per_group)
    .map(([group, n]) => [t("group." + group), n]));
  const b = s.transcription_backlog;
  $("#stats-backlog").textContent = t("stats.backlog_line", b);
  document.body.dataset.loaded = "true";
}

load().catch((err) => { $("#stats-error").textContent = err.message; });
