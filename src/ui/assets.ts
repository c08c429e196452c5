// The dashboard's own static assets, served by the gateway itself (no CDN, no web font, no image
// from elsewhere) and embedded in the bundle so every runtime (Node, Workers, Lambda) has them.
// The client script is plain ES2020 in a string: it is served as is, never passed through a bundler
// (test/ui/dashboard.test.ts runs it in Chromium; test/ui/ui-routes.test.ts checks that it parses).

/** Polls the panels (HTML, swapped in when changed) and the series (JSON, drawn as SVG line charts). */
export const CLIENT_JS = String.raw`(() => {
  "use strict";
  const BASE = "/_isthmus/ui";
  const POLL_MS = 1500;
  const HIDDEN_POLL_MS = 10000;
  const SVG = "http://www.w3.org/2000/svg";
  const W = 200;
  const H = 40;
  const panels = document.getElementById("panels");
  const status = document.getElementById("status");
  if (!panels || !status) return;
  let lastHtml = null;
  let failures = 0;
  let timer = null;
  let stopped = false;

  const setStatus = (text, bad) => {
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  };

  class SignedOut extends Error {}

  async function get(path, accept) {
    const res = await fetch(BASE + path, { headers: { accept: accept }, cache: "no-store", credentials: "same-origin", redirect: "error" });
    if (res.status === 401) throw new SignedOut("signed out");
    if (!res.ok) throw new Error("HTTP " + res.status);
    return res;
  }

  const fmt = {
    rps: (v) => (v < 10 ? v.toFixed(2) : v.toFixed(1)) + "/s",
    successRate: (v) => (v * 100).toFixed(v >= 0.9995 || v === 0 ? 0 : 2) + "%",
    p99Ms: (v) => (v < 10 ? v.toFixed(1) : Math.round(v).toString()) + " ms",
  };

  function yRange(metric, values) {
    const present = values.filter((v) => v !== null);
    if (metric === "successRate") {
      const lo = present.length > 0 ? Math.min.apply(null, present) : 1;
      return [Math.min(0.9, Math.floor(lo * 20) / 20), 1];
    }
    const hi = present.length > 0 ? Math.max.apply(null, present) : 0;
    return [0, hi > 0 ? hi * 1.15 : 1];
  }

  function el(name, attrs) {
    const e = document.createElementNS(SVG, name);
    for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    return e;
  }

  function draw(fig, series, values) {
    const svg = fig.querySelector("svg[data-chart]");
    const out = fig.querySelector(".value");
    const metric = fig.dataset.metric;
    if (!svg || !out || !Object.prototype.hasOwnProperty.call(fmt, metric)) return;
    const vals = values || [];
    const [lo, hi] = yRange(metric, vals);
    // The x axis runs to the server's now; it covers the history there is, at least a minute, at most the ring.
    const first = series.t.length > 0 ? series.t[0] : series.now;
    const span = Math.min(series.spanMs, Math.max(60000, series.now - first + series.intervalMs));
    const left = series.now - span;
    const gap = series.intervalMs * 2.5;
    const x = (t) => ((t - left) / span) * W;
    const y = (v) => H - 1 - ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * (H - 2);
    let line = "";
    let area = "";
    let segment = [];
    let lastT = -Infinity;
    let last = null;
    let count = 0;
    const flush = () => {
      if (segment.length === 0) return;
      const pts = segment.length === 1 ? [segment[0], [segment[0][0] + 1, segment[0][1]]] : segment;
      line += "M" + pts.map((p) => p[0].toFixed(2) + " " + p[1].toFixed(2)).join("L");
      area += "M" + pts[0][0].toFixed(2) + " " + H + "L" + pts.map((p) => p[0].toFixed(2) + " " + p[1].toFixed(2)).join("L") + "L" + pts[pts.length - 1][0].toFixed(2) + " " + H + "Z";
      segment = [];
    };
    series.t.forEach((t, i) => {
      const v = vals[i];
      if (v === null || v === undefined || t < left) {
        flush();
        return;
      }
      if (t - lastT > gap) flush();
      segment.push([x(t), y(v)]);
      lastT = t;
      last = v;
      count += 1;
    });
    flush();
    const children = [el("line", { class: "base", x1: "0", x2: String(W), y1: String(H - 0.5), y2: String(H - 0.5) })];
    if (area) children.push(el("path", { class: "area", d: area }));
    if (line) children.push(el("path", { class: "line", d: line, "vector-effect": "non-scaling-stroke" }));
    const title = el("title", {});
    title.textContent = count === 0 ? "no traffic seen yet" : "range " + fmt[metric](lo) + " to " + fmt[metric](hi);
    children.push(title);
    svg.replaceChildren.apply(svg, children);
    fig.dataset.points = String(count);
    fig.classList.toggle("empty", count === 0);
    out.textContent = last === null ? "—" : fmt[metric](last);
  }

  function drawAll(series) {
    for (const box of panels.querySelectorAll("[data-series-kind]")) {
      const group = box.dataset.seriesKind === "route" ? series.routes : series.clusters;
      const name = box.dataset.seriesName;
      const cols = Object.prototype.hasOwnProperty.call(group, name) ? group[name] : null;
      for (const fig of box.querySelectorAll("figure[data-metric]")) draw(fig, series, cols ? cols[fig.dataset.metric] : null);
    }
  }

  async function tick() {
    timer = null;
    try {
      const [html, series] = await Promise.all([get("/api/panels", "text/html").then((r) => r.text()), get("/api/series", "application/json").then((r) => r.json())]);
      if (html !== lastHtml) {
        const doc = new DOMParser().parseFromString("<!doctype html><html><body>" + html + "</body></html>", "text/html");
        panels.replaceChildren.apply(panels, Array.from(doc.body.childNodes));
        lastHtml = html;
      }
      drawAll(series);
      failures = 0;
      setStatus("live · updated " + new Date().toLocaleTimeString());
    } catch (err) {
      if (err instanceof SignedOut) {
        stopped = true;
        setStatus("signed out", true);
        window.location.assign(BASE + "/login");
        return;
      }
      failures += 1;
      setStatus("reconnecting… (" + (err && err.message ? err.message : String(err)) + ")", true);
    } finally {
      if (!stopped) timer = setTimeout(tick, document.hidden ? HIDDEN_POLL_MS : Math.min(POLL_MS * Math.pow(2, Math.min(failures, 3)), 10000));
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && timer !== null) {
      clearTimeout(timer);
      void tick();
    }
  });
  void tick();
})();
`;

export const CSS = `:root {
  --bg: #f6f7f9; --card: #fff; --fg: #1d2330; --muted: #677084; --line: #e1e4ea;
  --ok: #1b873f; --bad: #c8322c; --warn: #b36b00; --info: #2f5fd0; --idle: #7a8294;
  --chart: #2f5fd0; --chart-area: rgba(47, 95, 208, 0.12);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Liberation Sans", sans-serif; font-size: 14px;
}
@media (prefers-color-scheme: dark) {
  :root { --bg: #12151b; --card: #1b2029; --fg: #e3e7ee; --muted: #97a0b2; --line: #2b3240; --chart: #7ea2ff; --chart-area: rgba(126, 162, 255, 0.15); }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); }
h1 { font-size: 18px; margin: 0; display: flex; align-items: center; gap: 8px; }
h2 { font-size: 15px; margin: 24px 0 10px; text-transform: uppercase; letter-spacing: 0.06em; color: var(--muted); }
h3 { font-size: 15px; margin: 0; }
h4 { font-size: 13px; margin: 10px 0 4px; }
.logo { width: 22px; height: 22px; fill: none; stroke: var(--info); stroke-width: 2.2; stroke-linecap: round; }
.top { display: flex; align-items: center; gap: 16px; padding: 10px 20px; background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
.status { color: var(--muted); font-size: 12px; flex: 1; }
.status.bad { color: var(--bad); }
main { padding: 4px 20px 40px; max-width: 1600px; margin: 0 auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
.grid.wide { grid-template-columns: repeat(auto-fill, minmax(440px, 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; min-width: 0; }
.card > header { display: flex; align-items: center; justify-content: space-between; gap: 8px; margin-bottom: 6px; }
.muted { color: var(--muted); }
.error { color: var(--bad); }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, "Liberation Mono", monospace; font-size: 12px; overflow-wrap: anywhere; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 11px; font-weight: 600; color: #fff; margin-left: 4px; vertical-align: middle; }
.pill.ok { background: var(--ok); } .pill.bad { background: var(--bad); } .pill.warn { background: var(--warn); }
.pill.info { background: var(--info); } .pill.idle { background: var(--idle); }
.overview { display: flex; flex-wrap: wrap; align-items: center; gap: 12px; margin-top: 14px; color: var(--muted); }
.overview .pill { margin-left: 0; }
.warnings { margin: 0; padding-left: 18px; color: var(--warn); width: 100%; }
.alert { background: rgba(200, 50, 44, 0.1); border: 1px solid var(--bad); color: var(--bad); border-radius: 6px; padding: 8px 10px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0; }
.facts dt { color: var(--muted); } .facts dd { margin: 0; min-width: 0; }
.revision { color: var(--muted); font-size: 12px; }
.hosts { margin: 0 0 6px; color: var(--muted); }
.rule { border-top: 1px dashed var(--line); padding-top: 8px; margin-top: 8px; }
.rule-head { display: flex; gap: 6px; align-items: center; margin-bottom: 4px; }
.weightbar { width: 100%; height: 12px; display: block; border-radius: 3px; overflow: hidden; }
.weightbar .track { fill: var(--line); }
.backends { width: 100%; border-collapse: collapse; margin-top: 4px; }
.backends td { padding: 2px 4px; vertical-align: middle; }
.swatch { width: 10px; height: 10px; display: block; }
.c0 { fill: #2f5fd0; } .c1 { fill: #e07b12; } .c2 { fill: #1b9e77; } .c3 { fill: #b0379a; }
.c4 { fill: #6b8e23; } .c5 { fill: #d0342c; } .c6 { fill: #20a4c4; } .c7 { fill: #7a5c3e; }
.charts { display: grid; grid-template-columns: repeat(3, 1fr); gap: 8px; margin-top: 10px; }
.chart { margin: 0; min-width: 0; }
.chart figcaption { font-size: 11px; color: var(--muted); display: flex; justify-content: space-between; }
.chart .value { color: var(--fg); font-weight: 600; font-variant-numeric: tabular-nums; }
.spark { width: 100%; height: 40px; display: block; background: var(--bg); border-radius: 4px; }
.spark .line { fill: none; stroke: var(--chart); stroke-width: 1.5; }
.spark .area { fill: var(--chart-area); stroke: none; }
.spark .base { stroke: var(--line); stroke-width: 1; }
.steps { list-style: none; display: flex; flex-wrap: wrap; gap: 4px; padding: 0; margin: 8px 0; }
.step { border: 1px solid var(--line); border-radius: 6px; padding: 2px 8px; font-size: 12px; color: var(--muted); }
.step .n { font-weight: 700; margin-right: 2px; }
.step.done { background: rgba(27, 135, 63, 0.1); border-color: var(--ok); color: var(--ok); }
.step.current { background: rgba(47, 95, 208, 0.12); border-color: var(--info); color: var(--info); font-weight: 600; }
.windows { border-collapse: collapse; font-size: 12px; }
.windows th, .windows td { padding: 2px 10px 2px 0; text-align: left; }
.reasons { margin: 4px 0; padding-left: 18px; color: var(--bad); font-size: 12px; }
.events { margin: 8px 0 0; padding-left: 18px; font-size: 12px; color: var(--muted); max-height: 150px; overflow: auto; }
.login { max-width: 420px; margin: 12vh auto; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 24px; }
.login-form { display: grid; gap: 8px; margin-top: 16px; }
input[type="password"] { font: inherit; padding: 8px; border: 1px solid var(--line); border-radius: 6px; background: var(--bg); color: var(--fg); }
button { font: inherit; padding: 8px 12px; border: 0; border-radius: 6px; background: var(--info); color: #fff; cursor: pointer; }
button.link { background: none; color: var(--info); padding: 4px; }
.logout { margin: 0; }
`;

export const FAVICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><rect width="24" height="24" rx="5" fill="#2f5fd0"/><path d="M2 8h6c2 0 3 2 4 4s2 4 4 4h6M2 16h6c2 0 3-2 4-4s2-4 4-4h6" fill="none" stroke="#fff" stroke-width="2.2" stroke-linecap="round"/></svg>
`;
