// The Workflow page (#/workflows/<namespace>/<name>): each service's rollout (its
// Deployment's desired, updated, ready and available replicas, and why pods are refused),
// the Workflow's pods with their states and the scheduler's messages (ages kubectl-style),
// the color history over the last 24 h and 7 d with the time in each color in words, and
// the live runs that use it. Live: one stream scoped to the namespace; a change of this
// Workflow refetches its parts, a run change the run list (no polling).
// Uses app.js's helpers (api, el, $, badge, when, state) and age.js; every value goes in
// as text.
"use strict";

const wfPage = {
  id: null,      // {ns, name}
  stream: null,
  soon: { workflow: null, run: null },
  color: null,     // the Workflow's color now (its row)
  stripColor: null, // the color the 24 h strip ends in
  catchUp: { timer: null, tries: 0 },
};
// The store writes a color transition a moment after the stream told the change: while
// the strip ends in another color than the Workflow's, it is read again, CATCH_UP_MS
// apart, at most CATCH_UP_TRIES times per change (then the next change reads it).
const CATCH_UP_MS = 1000, CATCH_UP_TRIES = 10;

// The color windows the strips show: [key, label, milliseconds]
const COLOR_WINDOWS = [["24h", "Last 24 hours", 24 * 3600e3], ["7d", "Last 7 days", 7 * 24 * 3600e3]];
const COLOR_WORDS = { GREEN: "GREEN", YELLOW: "YELLOW", ORANGE: "ORANGE", RED: "RED", unknown: "no record" };

const wfPath = (ns, name) => `${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
const wfHref = (ns, name) => `#/workflows/${wfPath(ns, name)}`;

function showWorkflow(ns, name) {
  if (wfPage.id && wfPage.id.ns === ns && wfPage.id.name === name) return;
  hideWorkflow();
  wfPage.id = { ns, name };
  $("wf-title").textContent = name;
  $("wf-ns").textContent = ns;
  $("wf-color").replaceChildren();
  $("wf-meta").textContent = "";
  $("wf-message").textContent = "";
  $("wf-error").hidden = true;
  for (const id of ["wf-rollout", "wf-pods", "wf-runs"]) $(id).tBodies[0].replaceChildren(loadingRow(id));
  $("wf-colors").replaceChildren(el("p", { class: "muted" }, "loading…"));
  document.title = `${name} · Workflow · Flow Operator`;
  wfPage.stream = openStream({ namespace: ns, kinds: "workflows,runs" }, state.token, {
    ready: () => loadWorkflowPage(),
    reset: () => loadWorkflowPage(),
    change: (kind, data) => {
      if (kind === "workflow" && data.name !== name) return;
      wfSoon(kind);
    },
    up: () => { $("wf-live").textContent = "live"; $("wf-live").className = "live on"; },
    down: () => { $("wf-live").textContent = "reconnecting…"; $("wf-live").className = "live off"; },
    unauthorized: () => showLogin("That token is not accepted."),
  });
}

function hideWorkflow() {
  if (wfPage.stream) wfPage.stream.close();
  clearTimeout(wfPage.soon.workflow);
  clearTimeout(wfPage.soon.run);
  clearTimeout(wfPage.catchUp.timer);
  wfPage.color = wfPage.stripColor = null;
  wfPage.id = null;
  wfPage.stream = null;
}

function loadingRow(table) {
  const cols = $(table).tHead.rows[0].cells.length;
  return el("tr", {}, el("td", { colspan: String(cols), class: "muted" }, "loading…"));
}

// A burst of changes is one refetch.
function wfSoon(kind) {
  const which = kind === "run" ? "run" : "workflow";
  if (which === "workflow") wfPage.catchUp.tries = 0;
  clearTimeout(wfPage.soon[which]);
  wfPage.soon[which] = setTimeout(() => (which === "run" ? loadWfRuns() : loadWorkflowParts()), 150);
}

async function loadWorkflowPage() {
  await Promise.all([loadWorkflowParts(), loadWfRuns()]);
}

async function loadWorkflowParts() {
  await Promise.all([loadWfRow(), loadWfPods(), loadWfColors()]);
}

// Each part is fetched and shown on its own: one refused (a 403 in words) or failing
// leaves the others, and says so in its own place.
async function wfPart(what, fetcher, show, fail) {
  const id = wfPage.id;
  if (!id) return;
  try {
    const data = await fetcher(id);
    if (wfPage.id !== id) return; // another page meanwhile
    show(data, id);
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin("That token is not accepted."); return; }
    if (wfPage.id === id) fail(`${what}: ${e.message}`);
  }
}

function loadWfRow() {
  return wfPart("the Workflow",
    async ({ ns }) => (await api(`/api/v1/workflows?namespace=${encodeURIComponent(ns)}`)).json(),
    (data, { ns, name }) => {
      const w = (data.items || []).find((x) => x.namespace === ns && x.name === name);
      if (!w) { showWfError(`No Workflow ${ns}/${name} (deleted, or not one you may see).`); return; }
      $("wf-error").hidden = true;
      renderWfHead(w);
    },
    showWfError);
}

function showWfError(message) {
  $("wf-error").hidden = false;
  $("wf-error").textContent = message;
}

function renderWfHead(w) {
  const color = w.actualStatus || "";
  wfPage.color = color || null;
  colorsCaughtUp();
  $("wf-color").replaceChildren(badge(color || "unknown"));
  document.title = `${w.name} (${color || "no color yet"}) · Workflow · Flow Operator`;
  $("wf-meta").textContent = [
    w.desiredStatus, w.publishingMode,
    w.servicesReady ? `${w.servicesReady} components ready` : "",
    w.published ? "" : "never published",
  ].filter(Boolean).join(" · ");
  $("wf-message").textContent = w.message || "";
}

function loadWfPods() {
  return wfPart("pods",
    async ({ ns, name }) => (await api(`/api/v1/workflows/${wfPath(ns, name)}/pods`)).json(),
    (data) => { renderRollout(data.services || []); renderWfPods(data.pods || []); },
    (message) => {
      for (const t of ["wf-rollout", "wf-pods"]) $(t).tBodies[0].replaceChildren(errorRow(t, message));
    });
}

function errorRow(table, message) {
  const cols = $(table).tHead.rows[0].cells.length;
  return el("tr", {}, el("td", { colspan: String(cols), class: "error" }, message));
}

function emptyRow(table, message) {
  const cols = $(table).tHead.rows[0].cells.length;
  return el("tr", {}, el("td", { colspan: String(cols), class: "muted" }, message));
}

function renderRollout(services) {
  const rows = services.map((s) => {
    const rollout = [s.rolloutStatus, s.rolloutStatusReason].filter(Boolean).join(": ");
    const done = s.desired ? Math.min(s.available, s.desired) : 0;
    return el("tr", { "data-service": s.id },
      el("td", {}, el("strong", {}, s.id)),
      el("td", { class: "desired" }, String(s.desired)),
      el("td", { class: "updated" }, String(s.updated)),
      el("td", { class: "ready" }, String(s.ready)),
      el("td", { class: "available" }, String(s.available)),
      el("td", { class: "progress" },
        el("progress", { max: String(Math.max(s.desired, 1)), value: String(done),
          "aria-label": `${s.id}: ${s.available} of ${s.desired} available` }),
        ` ${s.available}/${s.desired} available`),
      el("td", { class: "rollout" }, rollout),
      el("td", { class: "message" , title: s.message || "" }, s.message || ""));
  });
  $("wf-rollout").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow("wf-rollout", "No services.")]));
}

function renderWfPods(pods) {
  const rows = pods.map((p) => el("tr", { "data-pod": p.name, "data-service": p.service || "" },
    el("td", { class: "podname" }, p.name),
    el("td", {}, p.service || ""),
    el("td", { class: "status" }, badge(p.status, "pod")),
    el("td", { class: "ready" }, p.ready),
    el("td", { class: "restarts" }, String(p.restarts)),
    el("td", { class: "age", title: p.age || "" }, humanDuration(p.age)),
    el("td", { class: "node" }, p.node || ""),
    el("td", { class: "message", title: p.message || "" }, p.message || "")));
  $("wf-pods").tBodies[0].replaceChildren(...(rows.length ? rows : [emptyRow("wf-pods", "No pods.")]));
}

// ---------- the color history ----------

const isoSecond = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");

function loadWfColors() {
  const until = Date.now();
  return wfPart("the color history",
    ({ ns, name }) => Promise.all(COLOR_WINDOWS.map(async ([, , span]) => {
      const q = new URLSearchParams({ since: isoSecond(until - span) });
      return (await api(`/api/v1/workflows/${wfPath(ns, name)}/colors?${q}`)).json();
    })),
    (docs) => {
      $("wf-colors").replaceChildren(...docs.map((doc, i) => colorStrip(COLOR_WINDOWS[i], doc)));
      const periods = colorPeriods(docs[0]);
      wfPage.stripColor = periods.length ? periods[periods.length - 1].color : null;
      colorsCaughtUp();
    },
    (message) => $("wf-colors").replaceChildren(el("p", { class: "error" }, message)));
}

function colorsCaughtUp() {
  if (!wfPage.color || !wfPage.stripColor || wfPage.color === wfPage.stripColor) return;
  if (wfPage.catchUp.tries >= CATCH_UP_TRIES) return;
  clearTimeout(wfPage.catchUp.timer);
  wfPage.catchUp.tries++;
  wfPage.catchUp.timer = setTimeout(loadWfColors, CATCH_UP_MS);
}

// The window as periods of one color: from its start in colorAtStart, each transition
// starts the next one. A color none was recorded for is "unknown" ("no record").
function colorPeriods(doc) {
  const t0 = Date.parse(doc.since), t1 = Date.parse(doc.until);
  const periods = [];
  let color = doc.colorAtStart || "unknown", at = t0;
  for (const t of doc.transitions || []) {
    const moment = Math.min(Math.max(Date.parse(t.time), at), t1);
    if (moment > at) periods.push({ color, from: at, to: moment });
    color = t.toColor || "unknown";
    at = moment;
  }
  if (t1 > at) periods.push({ color, from: at, to: t1 });
  return periods;
}

function colorStrip([key, label], doc) {
  // A window that starts before anything was recorded (a young Workflow, a new store):
  // the strip starts at the first record, and says so; the time with no record is still
  // written out under it.
  const all = colorPeriods(doc);
  const periods = all.length > 1 && all[0].color === "unknown" ? all.slice(1) : all;
  const t0 = periods.length ? periods[0].from : Date.parse(doc.since);
  const span = Math.max(Date.parse(doc.until) - t0, 1);
  const start = t0 > Date.parse(doc.since) ? `first record ${when(isoSecond(t0))}` : when(doc.since);
  const segments = periods.map((p) => {
    const words = `${COLOR_WORDS[p.color] || p.color} from ${when(isoSecond(p.from))} to ${when(isoSecond(p.to))} (${humanSeconds((p.to - p.from) / 1000)})`;
    const seg = el("span", { class: `seg ${p.color}`, "data-color": p.color, title: words, role: "img", "aria-label": words },
      COLOR_WORDS[p.color] || p.color);
    seg.style.left = `${(((p.from - t0) / span) * 100).toFixed(3)}%`;
    seg.style.width = `${(((p.to - p.from) / span) * 100).toFixed(3)}%`;
    return seg;
  });
  // shares of the recorded time (the time with no record has none)
  const known = Object.entries(doc.seconds || {}).filter(([c]) => c !== "unknown").reduce((a, [, v]) => a + v, 0) || 1;
  const spent = Object.entries(doc.seconds || {}).filter(([, s]) => s > 0)
    .sort((a, b) => (a[0] === "unknown") - (b[0] === "unknown") || b[1] - a[1])
    .map(([c, s]) => el("span", { class: `spent-item ${c}`, "data-color": c },
      `${COLOR_WORDS[c] || c} ${humanSeconds(s)}` + (c === "unknown" ? "" : ` (${((s / known) * 100).toFixed(1)}%)`)));
  const changes = (doc.transitions || []).length;
  return el("div", { class: "color-window", "data-window": key },
    el("div", { class: "strip-head" }, el("strong", {}, label),
      el("span", { class: "muted" }, ` ${changes} change${changes === 1 ? "" : "s"}` +
        (doc.greenShare !== null && doc.greenShare !== undefined ? ` · GREEN ${(doc.greenShare * 100).toFixed(1)}% of the recorded time` : ""))),
    el("div", { class: "strip", "data-window": key, role: "group", "aria-label": `${label}: colors over time` }, segments),
    el("div", { class: "strip-axis muted" }, el("span", { class: "strip-start" }, start), el("span", {}, "now")),
    el("p", { class: "spent", "data-window": key }, "Time in each color: ", spent.length ? spent : "nothing recorded"));
}

// ---------- the runs that use it ----------

function loadWfRuns() {
  return wfPart("runs",
    async ({ ns, name }) => (await api(`/api/v1/workflows/${wfPath(ns, name)}/runs`)).json(),
    (data) => {
      const rows = (data.items || []).map((r) => el("tr", { "data-run": `${r.namespace}/${r.name}` },
        el("td", {}, el("a", { href: `#/runs/${wfPath(r.namespace, r.name)}`, class: "run-link",
          title: `${r.namespace}/${r.name}: graph, timeline, logs` }, r.name)),
        el("td", {}, r.flowName || ""),
        el("td", {}, r.version || ""),
        el("td", {}, badge(r.status)),
        el("td", { class: "time", title: r.startTime || "" }, when(r.startTime)),
        el("td", { class: "duration", title: r.duration || "" }, humanDuration(r.duration)),
        el("td", { class: "message", title: r.message || "" }, r.message || "")));
      $("wf-runs").tBodies[0].replaceChildren(...(rows.length ? rows
        : [emptyRow("wf-runs", "No run in the cluster uses this Workflow.")]));
    },
    (message) => $("wf-runs").tBodies[0].replaceChildren(errorRow("wf-runs", message)));
}

if (typeof module !== "undefined") module.exports = { colorPeriods };
