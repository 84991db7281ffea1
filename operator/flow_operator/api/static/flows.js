// The Flows page (#/flows, one Flow opened: #/flows/<namespace>/<name>): each Flow with
// its version, level, schedules (the next tick in the viewer's local time, and how far
// off), its last run and that run's status; a Run button opens a form built from the
// Flow's declared parameters and configurations and POSTs the Run action
// (runType Manual). Live: a run's change refetches the list (its last status).
// Uses app.js's helpers (api, el, $, badge, state); every value goes in as text.
"use strict";

const flowsPage = {
  items: null,       // GET /api/v1/flows, as last fetched
  open: null,        // {ns, name}: the Flow whose detail is shown
  detail: null,      // GET /api/v1/flows/{ns}/{name} of `open`
  stats: null,       // GET /api/v1/flows/{ns}/{name}/stats of `open` (or {error})
  chart: null,       // the uPlot of the duration trend
  stream: null,
  soon: null,
  known: new Map(),  // "ns/name" of each listed Flow, for the run table's links
};

const flowPath = (ns, name) => `${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;

// An RFC 3339 time in the viewer's local time, and how far from now ("in 4m", "3h ago").
function localTime(ts) {
  const at = Date.parse(ts || "");
  if (Number.isNaN(at)) return null;
  const secs = (at - Date.now()) / 1000;
  const rel = secs >= 0 ? `in ${humanSeconds(secs)}` : `${humanSeconds(-secs)} ago`;
  return { text: new Date(at).toLocaleString(), rel, utc: ts };
}

function timeCell(ts) {
  const t = localTime(ts);
  if (!t) return el("span", { class: "muted" }, "—");
  return el("time", { datetime: t.utc, title: `${t.utc} (UTC)` }, t.text, " ",
    el("span", { class: "muted" }, `(${t.rel})`));
}

async function showFlows(ns, name) {
  flowsPage.open = ns && name ? { ns, name } : null;
  document.title = flowsPage.open ? `${name} · Flows · Flow Operator` : "Flows · Flow Operator";
  if (!flowsPage.stream) {
    flowsPage.stream = openStream({ kinds: "runs" }, state.token, {
      ready: () => loadFlows(),
      reset: () => loadFlows(),
      change: () => flowsSoon(),
      unauthorized: () => showLogin("That token is not accepted."),
    });
  }
  await loadFlows();
}

// A run changed: its Flow's status (the last run) follows it, shortly after.
function flowsSoon() {
  clearTimeout(flowsPage.soon);
  flowsPage.soon = setTimeout(() => { loadFlows(); flowsPage.soon = setTimeout(loadFlows, 2000); }, 300);
}

function hideFlows() {
  if (flowsPage.stream) flowsPage.stream.close();
  flowsPage.stream = null;
  clearTimeout(flowsPage.soon);
  closeRunForm();
  if (flowsPage.chart) { flowsPage.chart.destroy(); flowsPage.chart = null; }
}

async function loadFlows() {
  try {
    const data = await (await api("/api/v1/flows")).json();
    flowsPage.items = data.items || [];
    flowsPage.known = new Map(flowsPage.items.map((f) => [`${f.namespace}/${f.name}`, f]));
    const open = flowsPage.open;
    flowsPage.detail = open
      ? await (await api(`/api/v1/flows/${flowPath(open.ns, open.name)}`)).json().catch(() => null)
      : null;
    flowsPage.stats = open ? await loadFlowStats(open) : null;
    renderFlows();
    $("flows-error").hidden = true;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin("That token is not accepted."); return; }
    $("flows-error").hidden = false;
    $("flows-error").textContent = `the flows could not be read: ${e.message}`;
  }
}

function renderFlows() {
  const items = flowsPage.items || [];
  const rows = items.map(flowRow);
  $("flows").tBodies[0].replaceChildren(...rows);
  $("flows-empty").hidden = items.length > 0;
  $("flow-counts").textContent = `${items.length} flows`;
  renderFlowDetail();
}

function flowRow(f) {
  const id = flowPath(f.namespace, f.name);
  const last = f.lastRun || null;
  const open = flowsPage.open && flowsPage.open.ns === f.namespace && flowsPage.open.name === f.name;
  return el("tr", { class: open ? "flow open" : "flow", "data-flow": `${f.namespace}/${f.name}` },
    el("td", { class: "flow-name" },
      el("a", { href: `#/flows/${id}`, title: `${f.namespace}/${f.name}: versions, schedules, recent runs` }, f.name),
      " ", el("span", { class: "ns" }, f.namespace)),
    el("td", { class: "version" }, f.version ? `v${f.version}` : "—"),
    el("td", { class: "level" }, f.level || ""),
    el("td", { class: "schedules" },
      f.schedules ? el("div", {}, f.schedules, f.suspended ? el("span", { class: "muted" }, " (suspended)") : null)
        : el("span", { class: "muted" }, "none"),
      f.nextRun ? el("div", { class: "next" }, "next: ", timeCell(f.nextRun)) : null),
    el("td", { class: "last-run" }, last
      ? [el("a", { href: `#/runs/${flowPath(f.namespace, last.name)}`, title: "the run's graph, timeline and logs" }, last.name),
        " ", badge(last.phase || "Submitted")]
      : el("span", { class: "muted" }, "never run")),
    el("td", { class: "problem message", title: f.problem || "" }, f.problem || ""),
    el("td", { class: "actions" },
      el("button", { type: "button", class: "run", disabled: Boolean(f.problem),
        title: f.problem ? "the Flow's spec is invalid" : `Run ${f.name}…`,
        "aria-label": `Run ${f.name}`, onclick: () => openRunForm(f.namespace, f.name) }, "Run…")));
}

function renderFlowDetail() {
  const box = $("flow-detail");
  const d = flowsPage.detail;
  if (!flowsPage.open) { box.hidden = true; return; }
  box.hidden = false;
  if (!d) {
    box.replaceChildren(el("p", { class: "error" }, `No Flow ${flowsPage.open.ns}/${flowsPage.open.name}.`));
    return;
  }
  const schedules = (d.schedules || []).map((s) => el("tr", { "data-schedule": s.name },
    el("td", {}, s.name), el("td", {}, el("code", {}, s.cron || "")), el("td", {}, s.timeZone || "UTC"),
    el("td", {}, s.configuration || ""),
    el("td", {}, s.suspend ? "suspended" : timeCell(s.nextScheduleTime)),
    el("td", {}, timeCell(s.lastScheduleTime)),
    el("td", {}, String(s.missed || 0))));
  const runs = (d.runs || []).map((r) => el("tr", { "data-run": `${d.namespace}/${r.name}` },
    el("td", {}, el("a", { href: `#/runs/${flowPath(d.namespace, r.name)}` }, r.name)),
    el("td", {}, r.version ? `v${r.version}` : ""), el("td", {}, r.runType || ""),
    el("td", {}, timeCell(r.created)), el("td", {}, badge(r.status))));
  const versions = (d.versions || []).map((v) => `v${v.version}`).join(", ");
  const hadFocus = document.activeElement && box.contains(document.activeElement) ? document.activeElement.id : null;
  // (replaceChildren would write a null as the text "null": el() leaves nulls out)
  box.replaceChildren(...el("div", {},
    el("div", { class: "flow-head" },
      el("h2", {}, d.name, " ", el("span", { class: "ns" }, d.namespace)),
      el("button", { type: "button", class: "run primary", id: "flow-run", disabled: Boolean(d.problem),
        title: d.problem ? "the Flow's spec is invalid" : `Run ${d.name}…`, "aria-label": `Run ${d.name}`,
        onclick: () => openRunForm(d.namespace, d.name) }, "Run…")),
    el("p", { class: "muted" }, `version ${d.version ?? "—"} · ${d.level} · ${d.flowType} · concurrency ${d.concurrency}` +
      (versions ? ` · kept: ${versions}` : "")),
    d.problem ? el("p", { class: "error" }, d.problem) : null,
    flowHealth(d, flowsPage.stats),
    el("h3", {}, "Schedules"),
    schedules.length ? el("table", { class: "flow-schedules" },
      el("thead", {}, el("tr", {}, ["Schedule", "Cron", "Time zone", "Configuration", "Next run (local time)", "Last tick", "Missed"].map((h) => el("th", {}, h)))),
      el("tbody", {}, schedules)) : el("p", { class: "muted" }, "No schedules."),
    el("h3", {}, "Recent runs"),
    runs.length ? el("table", { class: "flow-runs" },
      el("thead", {}, el("tr", {}, ["Run", "Version", "Run type", "Created", "Status"].map((h) => el("th", {}, h)))),
      el("tbody", {}, runs)) : el("p", { class: "muted" }, "No runs yet.")).childNodes);
  drawTrend(flowsPage.stats);
  if (hadFocus && $(hadFocus)) $(hadFocus).focus();
}

// ---------- the Flow page's health: stats per version and configuration, the trend ----------

const WINDOWS = ["24h", "7d", "30d", "90d"];
const LASTS = ["20", "50", "100", "200"];

// The Flow page's window and trend length, from its URL: #/flows/<ns>/<name>?window=7d&last=50
function flowParams() {
  const q = location.hash.indexOf("?");
  const p = new URLSearchParams(q < 0 ? "" : location.hash.slice(q + 1));
  return { window: p.get("window") || "7d", last: p.get("last") || "50" };
}

function setFlowParams(change) {
  if (!flowsPage.open) return;
  const p = new URLSearchParams({ ...flowParams(), ...change });
  location.hash = `#/flows/${flowPath(flowsPage.open.ns, flowsPage.open.name)}?${p}`;  // route() reloads
}

async function loadFlowStats(open) {
  const { window, last } = flowParams();
  const q = new URLSearchParams({ window, last });
  try {
    return await (await api(`/api/v1/flows/${flowPath(open.ns, open.name)}/stats?${q}`)).json();
  } catch (e) {
    if (e instanceof Unauthorized) throw e;
    return { error: e.message };
  }
}

const pct = (rate) => (rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(rate === 1 || rate === 0 ? 0 : 1)}%`);
const secs = (v) => (v === null || v === undefined ? "—" : v < 10 ? `${v.toFixed(1)}s` : humanSeconds(v));

// The verdict in words (and a mark), never by color alone.
function flagLine(flag) {
  if (!flag.enough) {
    return el("p", { class: "flow-flag unknown", id: "flow-flag", "data-flag": "unknown" },
      "… Not enough finished runs in this window to compare the newest with the ones before.");
  }
  const marks = [flag.slower && "slower", flag.failing && "failing"].filter(Boolean);
  if (!marks.length) {
    return el("p", { class: "flow-flag ok", id: "flow-flag", "data-flag": "ok" },
      `✓ No marked change: the last ${flag.recent.runs} runs are as fast and fail as often as the ${flag.baseline.runs} before.`);
  }
  const title = [flag.slower && "Slower", flag.failing && "Failing more often"].filter(Boolean).join(" and ");
  return el("div", { class: "flow-flag bad", id: "flow-flag", "data-flag": marks.join(" "), role: "status" },
    el("strong", {}, `⚠ ${title}`), ": ", flag.reasons.join("; "), ".");
}

function statsTable(id, heading, groups, created) {
  const head = [heading, "Runs", "Succeeded", "Failed", "Cancelled", "Unfinished", "Success rate", "p50", "p95"];
  if (created) head.splice(1, 0, "Created");
  return el("table", { class: "flow-stats", id },
    el("thead", {}, el("tr", {}, head.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, groups.map((g) => el("tr", { "data-group": g.name },
      el("th", { scope: "row" }, heading === "Version" && /^\d+$/.test(g.name) ? `v${g.name}` : g.name),
      created ? el("td", {}, g.created ? timeCell(g.created) : el("span", { class: "muted" }, "—")) : null,
      el("td", { class: "num runs" }, String(g.runs)),
      el("td", { class: "num succeeded" }, String(g.succeeded)),
      el("td", { class: "num failed" }, String(g.failed)),
      el("td", { class: "num cancelled" }, String(g.cancelled)),
      el("td", { class: "num unfinished" }, String(g.unfinished)),
      el("td", { class: "num rate" }, pct(g.successRate)),
      el("td", { class: "num p50", title: g.p50Seconds === null ? "" : `${g.p50Seconds} s` }, secs(g.p50Seconds)),
      el("td", { class: "num p95", title: g.p95Seconds === null ? "" : `${g.p95Seconds} s` }, secs(g.p95Seconds))))));
}

function flowHealth(d, stats) {
  const { window, last } = flowParams();
  const choose = (id, label, values, current, key) => el("label", { for: id }, label, " ",
    el("select", { id, onchange: (e) => setFlowParams({ [key]: e.target.value }) },
      [...new Set([...values, current])].map((v) => el("option", { value: v, selected: v === current }, v))));
  const controls = el("div", { class: "flow-controls" },
    choose("flow-window", "Window", WINDOWS, window, "window"),
    choose("flow-last", "Trend of the last", LASTS, last, "last"), " runs");
  const box = el("section", { class: "flow-health", "aria-labelledby": "flow-health-h" },
    el("h3", { id: "flow-health-h" }, "Health"), controls);
  if (!stats) return box;
  if (stats.error) { box.append(el("p", { class: "error", id: "flow-stats-error" }, `The stats could not be read: ${stats.error}`)); return box; }
  const o = stats.overall;
  box.append(
    el("p", { id: "flow-overall" }, `${o.runs} runs since ${when(stats.window.since)} UTC: ${o.succeeded} succeeded, ` +
      `${o.failed} failed, ${o.cancelled} cancelled, ${o.unfinished} unfinished · success rate ${pct(o.successRate)} · ` +
      `p50 ${secs(o.p50Seconds)} · p95 ${secs(o.p95Seconds)}` + (stats.truncated ? " (the newest runs only: the window holds more)" : "")),
    flagLine(stats.flag));
  // every version the Flow keeps, and any other its runs ran
  const kept = new Map((d.versions || []).map((v) => [String(v.version), v]));
  const byVersion = new Map(stats.versions.map((g) => [g.name, g]));
  const empty = { runs: 0, succeeded: 0, failed: 0, cancelled: 0, unfinished: 0, successRate: null, p50Seconds: null, p95Seconds: null };
  const names = [...new Set([...kept.keys(), ...byVersion.keys()])]
    .sort((a, b) => (/^\d+$/.test(b) ? Number(b) : -1) - (/^\d+$/.test(a) ? Number(a) : -1));
  const versions = names.map((n) => ({ ...empty, ...byVersion.get(n), name: n, created: (kept.get(n) || {}).creationTime }));
  box.append(
    el("h4", {}, "Per version"), statsTable("flow-versions", "Version", versions, true),
    el("h4", {}, "Per configuration"),
    stats.configurations.length ? statsTable("flow-configurations", "Configuration", stats.configurations, false)
      : el("p", { class: "muted" }, "No runs in this window."),
    el("h4", { id: "flow-trend-h" }, `Duration of the last ${stats.trend.length} finished runs`),
    el("div", { id: "flow-trend", class: "flow-trend", role: "img", "data-points": String(stats.trend.length),
      "aria-label": `Duration of the last ${stats.trend.length} finished runs, oldest first; the table below lists them` }),
    el("details", { class: "flow-trend-table" }, el("summary", {}, "The trend as a table"),
      el("table", { id: "flow-trend-rows" },
        el("thead", {}, el("tr", {}, ["#", "Run", "Version", "Configuration", "Started (UTC)", "Status", "Duration"].map((h) => el("th", {}, h)))),
        el("tbody", {}, stats.trend.map((p, i) => el("tr", { "data-run": p.name },
          el("td", {}, String(i + 1)),
          el("td", {}, el("a", { href: `#/runs/${flowPath(d.namespace, p.name)}` }, p.name)),
          el("td", {}, p.version ? `v${p.version}` : ""), el("td", {}, p.configuration || ""),
          el("td", {}, when(p.startTime)), el("td", {}, badge(p.status)),
          el("td", { class: "num" }, secs(p.durationSeconds))))))));
  return box;
}

// The trend: one point per run, oldest first; Completed filled green on a line, Failed
// (and Crashed) hollow red, Cancelled hollow grey: the legend says which is which.
const TREND_SERIES = [
  { label: "Completed", statuses: ["Completed"], color: "#2e9e44", line: true, fill: "#2e9e44" },
  { label: "Failed or crashed", statuses: ["Failed", "Crashed"], color: "#d0312d", line: false, fill: "#fff" },
  { label: "Cancelled", statuses: ["Cancelled"], color: "#777", line: false, fill: "#fff" },
];

function drawTrend(stats) {
  if (flowsPage.chart) { flowsPage.chart.destroy(); flowsPage.chart = null; }
  const box = $("flow-trend");
  if (!box || !stats || !stats.trend) return;
  if (!stats.trend.length) { box.append(el("p", { class: "muted" }, "No finished run in this window.")); return; }
  if (typeof uPlot === "undefined") { box.append(el("p", { class: "error" }, "The chart library did not load.")); return; }
  const xs = stats.trend.map((_, i) => i + 1);
  const ys = TREND_SERIES.map((s) => stats.trend.map((p) => (s.statuses.includes(p.status) ? p.durationSeconds : null)));
  const opts = {
    width: Math.max(320, box.clientWidth || 640), height: 220,
    scales: { x: { time: false } },
    axes: [
      { label: "run (oldest → newest)", values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : "")) },
      { label: "duration", values: (u, ticks) => ticks.map((t) => secs(t)), size: 60 },
    ],
    series: [
      { label: "run", value: (u, v) => (v === null || v === undefined ? "—" : `#${v} ${(stats.trend[v - 1] || {}).name || ""}`) },
      ...TREND_SERIES.map((s) => ({
        label: s.label, stroke: s.color, width: s.line ? 2 : 0, spanGaps: true,
        paths: s.line ? undefined : () => null,
        points: { show: true, size: s.line ? 6 : 9, stroke: s.color, fill: s.fill, width: 2 },
        value: (u, v) => (v === null || v === undefined ? "—" : secs(v)),
      })),
    ],
  };
  flowsPage.chart = new uPlot(opts, [xs, ...ys], box);
}

window.addEventListener("resize", () => {
  const box = $("flow-trend");
  if (flowsPage.chart && box) flowsPage.chart.setSize({ width: Math.max(320, box.clientWidth), height: 220 });
});

// ---------- the Run form ----------

function closeRunForm() {
  const dialog = $("run-form");
  if (dialog && dialog.open) dialog.close();
}

function paramField(p) {
  const id = `param-${p.name}`;
  const hint = [p.description, p.pattern ? `matches ${p.pattern}` : null,
    p.default !== undefined && p.default !== null ? `default: ${p.default}` : null].filter(Boolean).join(" · ");
  let input;
  if (Array.isArray(p.enum) && p.enum.length) {
    const first = p.required && (p.default === undefined || p.default === null) ? "choose…"
      : p.default !== undefined && p.default !== null ? `(default: ${p.default})` : "(the configuration's, or none)";
    input = el("select", { id, name: p.name, "aria-describedby": `${id}-hint ${id}-error` },
      el("option", { value: "" }, first), p.enum.map((v) => el("option", { value: v }, v)));
  } else {
    input = el("input", { id, name: p.name, type: "text", autocomplete: "off",
      placeholder: p.default !== undefined && p.default !== null ? String(p.default) : "",
      "aria-describedby": `${id}-hint ${id}-error` });
  }
  if (p.required) input.setAttribute("aria-required", "true");
  return el("div", { class: "field", "data-field": `parameters.${p.name}` },
    el("label", { for: id }, p.name, p.required ? el("span", { class: "required", title: "required" }, " *") : null),
    input,
    el("span", { id: `${id}-hint`, class: "muted hint" }, hint),
    el("span", { id: `${id}-error`, class: "error field-error", role: "alert" }));
}

async function openRunForm(ns, name) {
  let flow;
  try {
    flow = await (await api(`/api/v1/flows/${flowPath(ns, name)}`)).json();
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin("That token is not accepted."); return; }
    $("flows-error").hidden = false;
    $("flows-error").textContent = `${name} could not be read: ${e.message}`;
    return;
  }
  let dialog = $("run-form");
  if (!dialog) {
    dialog = el("dialog", { id: "run-form", "aria-labelledby": "run-form-title" });
    $("page-flows").append(dialog);
  }
  const versions = (flow.versions || []).map((v) => v.version).sort((a, b) => b - a);
  const configs = flow.configurations || [];
  const configHint = el("span", { id: "run-configuration-hint", class: "muted hint" });
  const showConfig = (chosen) => {
    const c = configs.find((x) => x.name === chosen);
    configHint.textContent = c ? Object.entries(c.parameters || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "no values" : "";
  };
  const fieldError = (path) => el("span", { id: `run-${path}-error`, class: "error field-error", role: "alert" });
  const form = el("form", { id: "run-form-form", novalidate: true },
    el("h2", { id: "run-form-title" }, `Run ${flow.name}`, " ", el("span", { class: "ns" }, flow.namespace)),
    el("div", { class: "field", "data-field": "version" },
      el("label", { for: "run-version" }, "Version"),
      el("select", { id: "run-version", name: "version", "aria-describedby": "run-version-error" },
        el("option", { value: "" }, `latest${flow.version ? ` (v${flow.version})` : ""}`),
        versions.map((v) => el("option", { value: String(v) }, `v${v}`))),
      el("span", { class: "hint" }), fieldError("version")),
    configs.length ? el("div", { class: "field", "data-field": "configuration" },
      el("label", { for: "run-configuration" }, "Configuration"),
      el("select", { id: "run-configuration", name: "configuration", "aria-describedby": "run-configuration-hint run-configuration-error",
        onchange: (e) => showConfig(e.target.value) },
        el("option", { value: "" }, "none"), configs.map((c) => el("option", { value: c.name }, c.name))),
      configHint, fieldError("configuration")) : null,
    (flow.parameters || []).length ? el("fieldset", {}, el("legend", {}, "Parameters"), flow.parameters.map(paramField))
      : el("p", { class: "muted" }, "This flow declares no parameters."),
    el("p", { id: "run-form-error", class: "error", role: "alert", hidden: true }),
    el("div", { class: "buttons" },
      el("button", { type: "submit", class: "primary" }, "Run"),
      " ", el("button", { type: "button", onclick: closeRunForm }, "Cancel")));
  form.addEventListener("submit", (event) => { event.preventDefault(); submitRun(flow, form); });
  dialog.replaceChildren(form);
  dialog.showModal();  // keeps the focus inside; Escape closes it
  const first = form.querySelector("fieldset select, fieldset input") || $("run-version");
  first.focus();
}

function runRequest(flow, form) {
  const body = { runType: "Manual" };
  const version = form.elements.version.value;
  if (version) body.version = Number(version);
  const config = form.elements.configuration && form.elements.configuration.value;
  if (config) body.configuration = config;
  const parameters = {};
  for (const p of flow.parameters || []) {
    const value = form.elements[p.name].value.trim();
    if (value !== "") parameters[p.name] = value;
  }
  if (Object.keys(parameters).length) body.parameters = parameters;
  return body;
}

// 409 in plain words: the Flow's concurrency or its invalid spec
function conflictInWords(answer) {
  if (answer.reason === "ConcurrencyForbid") {
    return `Not started: this flow runs one at a time (concurrency Forbid) and a run is still unfinished. ${answer.message || ""}`;
  }
  if (answer.reason === "FlowInvalid") return `Not started: the Flow's spec is invalid. ${answer.message || ""}`;
  return `Not started: ${answer.message || "conflict"}`;
}

async function submitRun(flow, form) {
  for (const e of form.querySelectorAll(".field-error")) e.textContent = "";
  for (const e of form.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
  const general = $("run-form-error");
  general.hidden = true;
  const submit = form.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const resp = await fetch(`/api/v1/flows/${flowPath(flow.namespace, flow.name)}/runs`, {
      method: "POST",
      headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
      body: JSON.stringify(runRequest(flow, form)),
    });
    if (resp.status === 401) { closeRunForm(); showLogin("That token is not accepted."); return; }
    let answer = {};
    try { answer = await resp.json(); } catch (e) { /* not JSON */ }
    if (resp.ok) {
      closeRunForm();
      location.hash = `#/runs/${flowPath(answer.namespace || flow.namespace, answer.name)}`;
      return;
    }
    const unplaced = [];
    for (const err of answer.errors || []) {
      const field = form.querySelector(`.field[data-field="${CSS.escape(err.path)}"]`);
      if (!field) { unplaced.push(`${err.path}: ${err.message}`); continue; }
      field.querySelector(".field-error").textContent = err.message;
      const input = field.querySelector("input, select");
      if (input) input.setAttribute("aria-invalid", "true");
    }
    let message;
    if (resp.status === 409) message = conflictInWords(answer);
    else if (resp.status === 403) message = forbiddenInWords(answer.message || "forbidden");
    else if (resp.status === 422 || resp.status === 400) message = unplaced.length ? unplaced.join("; ") : answer.errors ? "" : answer.message;
    else message = `${resp.status} ${answer.message || resp.statusText}`;
    if (message) { general.hidden = false; general.textContent = message; }
    const invalid = form.querySelector("[aria-invalid]");
    if (invalid) invalid.focus();
  } catch (e) {
    general.hidden = false;
    general.textContent = `the run could not be started: ${e.message}`;
  } finally {
    submit.disabled = false;
  }
}

// The run table's link to a run's Flow: the row's `flow` when it has one, else a listed
// Flow of the run's flow name in its namespace (a run made from a Flow takes its name).
function flowOfRun(run) {
  const name = run.flow || (flowsPage.known.has(`${run.namespace}/${run.flowName}`) ? run.flowName : null);
  return name ? `#/flows/${flowPath(run.namespace, name)}` : null;
}

// The run table links each run to its Flow: the list of Flows is read with the runs.
async function knowFlows() {
  try {
    const data = await (await api("/api/v1/flows")).json();
    flowsPage.known = new Map((data.items || []).map((f) => [`${f.namespace}/${f.name}`, f]));
  } catch (e) {
    if (e instanceof Unauthorized) throw e;  // else: no links, the table stays
  }
}
