// Flow Operator dashboard: pages over the JSON API, kept current by the server's live
// updates (stream.js; the run page is run.js). No framework and no build step; every
// value reaches the page through textContent.
"use strict";

// Only while the stream is down (a proxy that holds Server-Sent Events back, the operator
// restarting): a slow poll keeps the page roughly current until the stream is back.
const FALLBACK_POLL_MS = 15000;
const state = {
  token: sessionStorage.getItem("flowToken") || "",
  page: "workflows",
  expanded: new Set(),   // "ns/name" of runs whose tasks are shown
  cancelling: new Map(), // "ns/name" -> the cancel's answer, shown until the run has ended
  ended: new Map(),      // "ns/name" -> the run as the stream said it ended, until the list says so too
  tasks: new Map(),      // "ns/name" -> run with tasks
  logs: null,            // {ns, name, task, controller}
  timer: null,
  live: null,            // {page, stream, up}: the stream of the list page shown
  items: null,           // the run list as last fetched, patched by the stream
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// RFC 3339 UTC as "2024-02-12 10:01:00" (the full stamp stays in the cell's title)
const when = (ts) => (ts ? ts.replace("T", " ").replace(/Z$/, "") : "");

const badge = (text, extra) => el("span", { class: `badge ${extra || ""} ${text || ""}` }, text || "—");

class Unauthorized extends Error {}

async function api(path, options) {
  const resp = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, ...((options || {}).headers || {}) },
  });
  if (resp.status === 401) throw new Unauthorized("unauthorized");
  if (!resp.ok) {
    let message = `${resp.status} ${resp.statusText}`;
    try { message = (await resp.json()).message || message; } catch (e) { /* not JSON */ }
    if (resp.status === 403 && typeof forbiddenInWords === "function") message = forbiddenInWords(message); // auth.js
    throw new Error(message);
  }
  return resp;
}

// ---------- login ----------

function showLogin(message) {
  $("login").hidden = false;
  $("page-workflows").hidden = true;
  $("page-runs").hidden = true;
  $("page-run").hidden = true;
  $("page-flows").hidden = true;
  $("page-workflow").hidden = true;
  stopLive();
  hideRun();
  hideWorkflow(); // workflow.js
  hideFlows(); // flows.js
  $("logout").hidden = true;
  $("login-error").hidden = !message;
  $("login-error").textContent = message || "";
  $("token").focus();
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  state.token = $("token").value.trim();
  sessionStorage.setItem("flowToken", state.token);
  $("token").value = "";
  route();
});

$("logout").addEventListener("click", () => {
  state.token = "";
  sessionStorage.removeItem("flowToken");
  showLogin();
});

// ---------- routing and polling ----------

const RUN_PAGE = /^#\/runs\/([^/?]+)\/([^/?]+)/;
const FLOWS_PAGE = /^#\/flows(?:\/([^/?]+)\/([^/?]+))?/;
const WORKFLOW_PAGE = /^#\/workflows\/([^/?]+)\/([^/?]+)/; // workflow.js

function route() {
  const one = RUN_PAGE.exec(location.hash);
  const flows = FLOWS_PAGE.exec(location.hash);
  const wf = WORKFLOW_PAGE.exec(location.hash);
  state.page = one ? "run" : flows ? "flows" : wf ? "workflow" : location.hash.startsWith("#/runs") ? "runs" : "workflows";
  $("nav-workflows").classList.toggle("active", state.page === "workflows" || state.page === "workflow");
  $("nav-flows").classList.toggle("active", state.page === "flows");
  $("nav-runs").classList.toggle("active", state.page === "runs" || state.page === "run");
  if (!state.token) { showLogin(); return; }
  $("login").hidden = true;
  $("logout").hidden = false;
  $("page-workflows").hidden = state.page !== "workflows";
  $("page-runs").hidden = state.page !== "runs";
  $("page-run").hidden = state.page !== "run";
  $("page-flows").hidden = state.page !== "flows";
  $("page-workflow").hidden = state.page !== "workflow";
  if (state.page !== "flows") hideFlows(); // flows.js
  if (state.page !== "workflow") hideWorkflow(); // workflow.js
  if (wf) {
    stopLive();
    clearTimeout(state.timer);
    hideRun();
    showWorkflow(decodeURIComponent(wf[1]), decodeURIComponent(wf[2]));
    return;
  }
  if (flows) {
    stopLive();
    clearTimeout(state.timer);
    hideRun();
    const dec = (x) => (x ? decodeURIComponent(x) : null);
    showFlows(dec(flows[1]), dec(flows[2]));
    return;
  }
  if (one) {
    stopLive();
    clearTimeout(state.timer);
    showRun(decodeURIComponent(one[1]), decodeURIComponent(one[2]));
    return;
  }
  hideRun();
  document.title = state.page === "runs" ? "Flow runs · Flow Operator" : "Workflows · Flow Operator";
  startLive();
  refresh();
}

// The list pages follow the stream: a Workflow change refetches the cards (the directory
// has the new status by then); a run change patches its row with the run the event
// carries (it is the decided status, ahead of the index), a run not listed refetches.
function startLive() {
  if (state.live && state.live.page === state.page) return;
  stopLive();
  const page = state.page;
  const live = { page, up: false, stream: null };
  live.stream = openStream({ kinds: page === "runs" ? "runs" : "workflows" }, state.token, {
    ready: () => refresh(),
    reset: () => refresh(),
    change: (kind, data) => (kind === "run" ? runChanged(data.run) : refreshSoon()),
    up: () => { live.up = true; clearTimeout(state.timer); },
    down: () => { live.up = false; clearTimeout(state.timer); state.timer = setTimeout(refresh, FALLBACK_POLL_MS); },
    unauthorized: () => showLogin("That token is not accepted."),
  });
  state.live = live;
}

function stopLive() {
  if (state.live) state.live.stream.close();
  state.live = null;
}

let soonTimer = null;
function refreshSoon() {
  clearTimeout(soonTimer);
  soonTimer = setTimeout(refresh, 150);
}

function runChanged(run) {
  if (!run || state.page !== "runs" || !state.items) return;
  const id = `${encodeURIComponent(run.namespace)}/${encodeURIComponent(run.name)}`;
  const at = state.items.findIndex((r) => r.namespace === run.namespace && r.name === run.name);
  if (at < 0) { refreshSoon(); return; }
  const { tasks, history, ...row } = run;
  state.items[at] = row;
  // A run that has ended stays ended: a list fetched from a view a moment behind the
  // stream must not bring its earlier status (and a live Cancel button) back.
  if (FINISHED.has(row.status)) state.ended.set(id, row);
  if (state.expanded.has(id)) state.tasks.set(id, run);
  renderRuns();
}

async function refresh() {
  clearTimeout(state.timer);
  if (state.page === "flows" || state.page === "run" || state.page === "workflow") return; // their own scripts keep them
  try {
    if (state.page === "workflows") await loadWorkflows();
    else await loadRuns();
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin("That token is not accepted."); return; }
    $("updated").textContent = `update failed: ${e.message}`;
  }
  if (!state.live || !state.live.up) state.timer = setTimeout(refresh, FALLBACK_POLL_MS);
}

window.addEventListener("hashchange", route);

// ---------- Workflows page ----------

async function loadWorkflows() {
  const ns = selectedNamespace(); // namespaces.js: the header's selector, kept in the URL
  const data = await (await api(`/api/v1/workflows${ns ? `?namespace=${encodeURIComponent(ns)}` : ""}`)).json();
  const filter = $("wf-filter").value.trim().toLowerCase();
  const items = data.items.filter((w) => !filter || w.id.toLowerCase().includes(filter));
  const counts = {};
  for (const w of data.items) counts[w.actualStatus || "unknown"] = (counts[w.actualStatus || "unknown"] || 0) + 1;
  $("wf-counts").textContent = `${data.items.length} workflows: ` +
    Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", ");
  $("workflows").replaceChildren(...items.map(workflowCard));
}

function workflowCard(w) {
  const details = (w.status && w.status.details) || {};
  const rows = [];
  const component = (id, kind, c, detail) => el("tr", { class: "component" },
    el("td", {}, el("strong", {}, id), el("span", { class: "muted" }, ` ${kind}`)),
    el("td", {}, `${c.actual}/${c.desired}`), el("td", {}, badge(c.status)),
    el("td", { class: "detail" }, detail));
  if (details.stream) rows.push(component(details.stream.id, "stream", details.stream, ""));
  for (const s of details.services || []) {
    // s.message: why its pods cannot be created (the Deployment's ReplicaFailure message)
    const rollout = [s.rolloutStatus, s.rolloutStatusReason].filter(Boolean).join(": ");
    rows.push(component(s.id, "service", s, [rollout, s.message].filter(Boolean).join(" · ")));
    for (const p of s.replicasDetail || []) {
      rows.push(el("tr", { class: "pod" },
        el("td", { class: "podname" }, `↳ ${p.name}`),
        el("td", { class: "age", title: p.age || "" }, humanDuration(p.age)),
        el("td", {}, badge(p.status, "pod")),
        el("td", { class: "detail" }, p.statusMessage || (p.ready ? "ready" : "not ready"))));
    }
  }
  const color = w.actualStatus || "";
  return el("article", { class: `wf ${color}`, "data-id": w.id },
    el("h2", {}, badge(color), el("a", { href: wfHref(w.namespace, w.name), class: "wf-link", // workflow.js
      title: `${w.namespace}/${w.name}: rollout, pods, color history, runs` }, w.name), el("span", { class: "ns" }, w.namespace)),
    el("div", { class: "meta" },
      `${w.desiredStatus} · ${w.publishingMode}` +
      (w.servicesReady ? ` · ${w.servicesReady} components ready` : "") +
      (w.published ? "" : " · never published")),
    w.message ? el("div", { class: "message" }, w.message) : null,
    rows.length ? el("table", {},
      el("colgroup", {}, ["c1", "c2", "c3", "c4"].map((c) => el("col", { class: c }))),
      el("thead", {}, el("tr", {}, ["Component / pod", "Ready / age", "Status", "Rollout / message"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)) : null);
}

$("wf-filter").addEventListener("input", () => refresh());

// ---------- Flow Run Status page ----------

const RUN_FIELDS = ["flowName", "version", "level", "runType", "configuration", "flowType",
  "startTime", "endTime", "duration"];
const FINISHED = new Set(["Completed", "Failed", "Crashed", "Cancelled"]);
// times as "2024-02-12 10:01:00", durations as kubectl's ages (the exact value in the title)
const cell = (field, value) =>
  field.endsWith("Time") ? when(value) : field === "duration" ? humanDuration(value) : value || "";

// The run list is paged by the server (live runs merged with the history): the first
// PAGE runs, then "more" follows the answer's `continue`. A refresh reads again as many
// as are shown (at most the server's 1000), so a page read with "more" stays.
const PAGE = 100;
const runsUrl = (limit, cursor) => {
  const q = $("run-search").value.trim();
  const params = new URLSearchParams({ limit: String(limit) });
  if (q) params.set("search", q);
  const ns = selectedNamespace(); // namespaces.js
  if (ns) params.set("namespace", ns);
  if (cursor) params.set("continue", cursor);
  return `/api/v1/flowruns?${params}`;
};

async function loadRuns() {
  const shown = Math.min(1000, Math.max(PAGE, (state.items || []).length));
  const [data] = await Promise.all([api(runsUrl(shown)).then((r) => r.json()), knowFlows()]); // flows.js
  await Promise.all([...state.expanded].map(async (id) => {
    try { state.tasks.set(id, await (await api(`/api/v1/flowruns/${id}`)).json()); }
    catch (e) { if (e instanceof Unauthorized) throw e; }
  }));
  state.items = data.items.map(stillEnded);
  state.runPage = { total: data.total, counts: data.counts || {}, next: data.continue || null };
  renderRuns();
}

function stillEnded(row) {
  const id = `${encodeURIComponent(row.namespace)}/${encodeURIComponent(row.name)}`;
  const ended = state.ended.get(id);
  if (!ended) return row;
  if (FINISHED.has(row.status)) { state.ended.delete(id); return row; } // the list has caught up
  return ended;
}

async function moreRuns() {
  const next = state.runPage && state.runPage.next;
  if (!next) return;
  const data = await (await api(runsUrl(PAGE, next))).json();
  state.items = [...(state.items || []), ...data.items.map(stillEnded)];
  state.runPage = { total: data.total, counts: data.counts || {}, next: data.continue || null };
  renderRuns();
}

function runCounts(shown) {
  const page = state.runPage || { counts: {} };
  const total = page.total ?? shown;
  const n = (x) => Number(x).toLocaleString("en");
  const counts = Object.entries(page.counts).filter(([, c]) => c > 0).map(([k, c]) => `${n(c)} ${k}`);
  return `${shown < total ? `${n(shown)} of ` : ""}${n(total)} runs` + (counts.length ? `: ${counts.join(", ")}` : "");
}

function moreButton() {
  let button = $("runs-more");
  if (!button) {
    button = el("button", { id: "runs-more", type: "button", onclick: () => moreRuns().catch((e) => {
      $("runs-error").hidden = false;
      $("runs-error").textContent = `more runs failed: ${e.message}`;
    }) }, "more");
    $("runs-empty").before(button);
  }
  return button;
}

function renderRuns() {
  const data = { items: state.items || [] };
  const rows = [];
  for (const run of data.items) {
    const id = `${encodeURIComponent(run.namespace)}/${encodeURIComponent(run.name)}`;
    rows.push(runRow(run, id));
    if (state.expanded.has(id)) rows.push(tasksRow(id));
  }
  $("runs").tBodies[0].replaceChildren(...rows);
  $("runs-empty").hidden = data.items.length > 0;
  $("run-counts").textContent = runCounts(data.items.length);
  moreButton().hidden = !(state.runPage && state.runPage.next);
  $("runs-error").hidden = true;
}

function runRow(run, id) {
  const open = state.expanded.has(id);
  // The operator ends a cancelled run when it has deleted its Jobs: until then the row
  // says the request is on its way, and shows the run's status as the operator has it.
  // (A cancel is for good: the note is kept, and shown only while the run has not ended.)
  const cancelling = state.cancelling.has(id) && !FINISHED.has(run.status);
  const message = cancelling ? state.cancelling.get(id) : run.message || "";
  return el("tr", { class: "run", "data-run": `${run.namespace}/${run.name}` },
    el("td", {}, el("button", {
      class: "expand", title: open ? "hide tasks" : "show tasks", "aria-expanded": String(open),
      onclick: () => { open ? state.expanded.delete(id) : state.expanded.add(id); refresh(); },
    }, open ? "▾" : "▸")),
    ...RUN_FIELDS.map((f) => el("td", { class: f, title: run[f] || "" }, f === "flowName"
      ? runNameCell(run, id)
      : cell(f, run[f]))),
    el("td", {}, badge(run.status)),
    el("td", { class: cancelling ? "message muted" : "message", title: message }, message),
    el("td", { class: "actions" },
      el("button", { class: "danger cancel", disabled: FINISHED.has(run.status) || cancelling, onclick: () => act(id, "cancel") }, cancelling ? "Cancelling…" : "Cancel"),
      " ",
      el("button", { class: "rerun", disabled: !FINISHED.has(run.status), onclick: () => act(id, "rerun") }, "Rerun")));
}

// The flow name links to the run's page, and a small link before it to its Flow (flows.js).
function runNameCell(run, id) {
  const flow = flowOfRun(run);
  return [
    flow ? el("a", { href: flow, class: "flow-link", title: `the Flow ${run.flowName}: versions, schedules, Run`,
      "aria-label": `the Flow ${run.flowName}` }, "⤴") : null,
    el("a", { href: `#/runs/${id}`, class: "run-link", title: `${run.namespace}/${run.name}: graph, timeline, logs` }, cell("flowName", run.flowName)),
  ];
}

function tasksRow(id) {
  const run = state.tasks.get(id);
  const tasks = (run && run.tasks) || [];
  const body = tasks.map((t) => el("tr", { class: "task", "data-task": t.name },
    el("td", {}, t.name), el("td", {}, t.version || ""), el("td", {}, badge(t.status)),
    el("td", { class: "time", title: t.startTime || "" }, when(t.startTime)),
    el("td", { class: "time", title: t.endTime || "" }, when(t.endTime)),
    el("td", { class: "runtime", title: t.runtime || "" }, humanDuration(t.runtime)),
    el("td", { class: "message", title: t.message || "" }, t.message || ""),
    el("td", {}, el("button", { class: "logs", disabled: !t.pod, onclick: () => openLogs(id, t.name) }, "Logs"))));
  return el("tr", { class: "tasks" }, el("td", { colspan: "13" },
    run ? el("table", {},
      el("thead", {}, el("tr", {}, ["Task", "Version", "Status", "Start Time", "End Time", "Runtime", "Message", "Log"].map((h) => el("th", {}, h)))),
      el("tbody", {}, body.length ? body : el("tr", {}, el("td", { colspan: "8" }, "no tasks yet"))))
      : "loading…"));
}

async function act(id, verb) {
  if (verb === "cancel" && !confirm(`Cancel ${decodeURIComponent(id)}?`)) return;
  try {
    const answer = await (await api(`/api/v1/flowruns/${id}/${verb}`, { method: "POST" })).json();
    // the operator's answer: the run as it stands, with the request noted
    if (verb === "cancel") state.cancelling.set(id, answer.message || "cancel requested");
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin("That token is not accepted."); return; }
    $("runs-error").hidden = false;
    $("runs-error").textContent = `${verb} failed: ${e.message}`;
  }
  refresh();
}

let searchTimer = null;
$("run-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => { state.items = null; refresh(); }, 200);  // a new search: its first page
});

// ---------- logs ----------

async function openLogs(id, task) {
  closeLogs();
  const controller = new AbortController();
  state.logs = { id, task, controller };
  $("logs").hidden = false;
  $("logs-title").textContent = `${decodeURIComponent(id)} · ${task}`;
  const out = $("logs-body");
  out.textContent = "";
  const follow = $("logs-follow").checked;
  try {
    const resp = await api(`/api/v1/flowruns/${id}/tasks/${encodeURIComponent(task)}/logs?follow=${follow}`,
      { signal: controller.signal });
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      out.append(decoder.decode(value, { stream: true }));
      out.scrollTop = out.scrollHeight;
    }
    if (!out.textContent) out.textContent = "(the log is empty)";
  } catch (e) {
    if (e.name !== "AbortError") out.textContent += `\n[log unavailable: ${e.message}]`;
  }
}

function closeLogs() {
  if (state.logs) state.logs.controller.abort();
  state.logs = null;
  $("logs").hidden = true;
}

$("logs-close").addEventListener("click", closeLogs);
$("logs-follow").addEventListener("change", () => {
  if (state.logs) openLogs(state.logs.id, state.logs.task);
});

// after the deferred scripts that follow (run.js): the first route may be a run page
document.addEventListener("DOMContentLoaded", route);
