// The run page (#/runs/<namespace>/<name>, deep links: ?task=<task>&q=<search>): the graph
// of the tasks (dagre lays it out, this file draws the SVG from its coordinates), the
// timeline, the phase history and a task's log. Live: one stream scoped to this run.
// Uses app.js's helpers (api, el, $, badge, when, state); every value goes in as text.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 168, NODE_H = 48;
// what a state's color means, in words too (the node and the bar carry the text)
const TASK_FINAL = new Set(["Succeeded", "Failed", "Crashed", "Cancelled", "Skipped"]);

const runPage = {
  id: null,        // {ns, name}
  run: null,       // the run as the API or the stream gave it
  stream: null,
  log: null,       // {task, controller, text}
  clock: null,     // redraws a running timeline
};

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function runPath(ns, name) {
  return `${encodeURIComponent(ns)}/${encodeURIComponent(name)}`;
}

function runHashParams() {
  const q = location.hash.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : location.hash.slice(q + 1));
}

// keep the page's state in its URL (the task and the search), without a new history entry
function setRunHash() {
  if (!runPage.id) return;
  const p = new URLSearchParams();
  if (runPage.log) p.set("task", runPage.log.task);
  const search = $("run-log-search").value;
  if (runPage.log && search) p.set("q", search);
  const hash = `#/runs/${runPath(runPage.id.ns, runPage.id.name)}${p.toString() ? `?${p}` : ""}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

async function showRun(ns, name) {
  const same = runPage.id && runPage.id.ns === ns && runPage.id.name === name;
  if (!same) {
    hideRun();
    runPage.id = { ns, name };
    runPage.run = null;
    $("run-title").textContent = name;
    $("run-ns").textContent = ns;
    document.title = `${name} · Flow run · Flow Operator`;
    runPage.stream = openStream({ namespace: ns, run: name, kinds: "runs" }, state.token, {
      ready: () => loadRun(),
      reset: () => loadRun(),
      change: (kind, data) => { if (data.run) { renderRun(keepAttempts(data.run)); attemptsSoon(); } },
      up: () => { $("run-live").textContent = "live"; $("run-live").className = "live on"; },
      down: () => { $("run-live").textContent = "reconnecting…"; $("run-live").className = "live off"; },
      unauthorized: () => showLogin("That token is not accepted."),
    });
    runPage.clock = setInterval(() => { if (runPage.run && !FINISHED.has(runPage.run.status)) renderTimeline(runPage.run); }, 1000);
  }
  const params = runHashParams();
  $("run-log-search").value = params.get("q") || "";
  const task = params.get("task");
  if (task && (!runPage.log || runPage.log.task !== task)) openRunLog(task);
}

function hideRun() {
  if (runPage.stream) runPage.stream.close();
  clearInterval(runPage.clock);
  clearTimeout(runPage.attemptsTimer);
  closeRunLog();
  runPage.id = null;
  runPage.stream = null;
}

async function loadRun() {
  const { ns, name } = runPage.id;
  try {
    renderRun(await (await api(`/api/v1/flowruns/${runPath(ns, name)}`)).json());
    $("run-error").hidden = true;
  } catch (e) {
    if (e instanceof Unauthorized) { showLogin("That token is not accepted."); return; }
    $("run-error").hidden = false;
    $("run-error").textContent = `Cannot show ${ns}/${name}: ${e.message}`;
  }
}

// The stream carries the run's status, not its pods: a change keeps the attempts shown
// and asks the run's detail for them again (one request per burst of changes).
function keepAttempts(run) {
  const before = new Map(((runPage.run || {}).tasks || []).map((t) => [t.name, t.attemptDetail]));
  return { ...run, tasks: (run.tasks || []).map((t) => (t.attemptDetail || !before.get(t.name) ? t : { ...t, attemptDetail: before.get(t.name) })) };
}

function attemptsSoon() {
  clearTimeout(runPage.attemptsTimer);
  runPage.attemptsTimer = setTimeout(loadAttempts, 300);
}

async function loadAttempts() {
  if (!runPage.id) return;
  const { ns, name } = runPage.id;
  try {
    const detail = await (await api(`/api/v1/flowruns/${runPath(ns, name)}`)).json();
    if (!runPage.run || !runPage.id || runPage.id.ns !== ns || runPage.id.name !== name) return;
    const found = new Map((detail.tasks || []).map((t) => [t.name, t.attemptDetail]));
    runPage.run = { ...runPage.run, tasks: (runPage.run.tasks || []).map((t) => ({ ...t, attemptDetail: found.get(t.name) || t.attemptDetail })) };
    renderTimeline(runPage.run);
  } catch (e) {
    if (e instanceof Unauthorized) showLogin("That token is not accepted.");  // else: the bars stay as they were
  }
}

function renderRun(run) {
  if (!runPage.id || run.namespace !== runPage.id.ns || run.name !== runPage.id.name) return;
  runPage.run = run;
  $("run-error").hidden = true;
  document.title = `${run.name} (${run.status}) · Flow run · Flow Operator`;
  $("run-status").replaceChildren(badge(run.status));
  $("run-meta").textContent = [
    run.flowName && `flow ${run.flowName}${run.version ? ` v${run.version}` : ""}`,
    run.configuration && `configuration ${run.configuration}`,
    run.runType, run.startTime && `started ${when(run.startTime)}`,
    run.duration && `took ${humanDuration(run.duration)}`,
  ].filter(Boolean).join(" · ");
  $("run-message").textContent = run.message || "";
  renderGraph(run);
  renderTimeline(run);
  renderHistory(run);
}

// ---------- the graph ----------

function renderGraph(run) {
  const tasks = run.tasks || [];
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: "LR", nodesep: 24, ranksep: 56, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const t of tasks) g.setNode(t.name, { width: NODE_W, height: NODE_H });
  const names = new Set(tasks.map((t) => t.name));
  for (const t of tasks) for (const d of t.dependsOn || []) if (names.has(d)) g.setEdge(d, t.name);
  dagre.layout(g);
  const { width, height } = g.graph();
  const box = svg("svg", {
    class: "dag", width: Math.max(width, 1), height: Math.max(height, 1),
    viewBox: `0 0 ${Math.max(width, 1)} ${Math.max(height, 1)}`, role: "group",
    "aria-label": `Task graph of ${run.name}: ${tasks.length} tasks`,
  });
  box.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }))));
  for (const e of g.edges()) {
    const points = g.edge(e).points;
    const d = points.map((p, i) => `${i ? "L" : "M"} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(" ");
    box.append(svg("path", { class: "edge", d, "data-from": e.v, "data-to": e.w, "marker-end": "url(#arrow)" }));
  }
  for (const t of tasks) {
    const n = g.node(t.name);
    const x = n.x - NODE_W / 2, y = n.y - NODE_H / 2;
    const selected = runPage.log && runPage.log.task === t.name;
    const node = svg("g", {
      class: `node ${t.status}${selected ? " selected" : ""}`, "data-task": t.name, "data-status": t.status,
      tabindex: 0, role: "button", "aria-label": `${t.name}: ${t.status}${t.pod ? ", open its log" : ""}`,
      transform: `translate(${x.toFixed(1)},${y.toFixed(1)})`,
    },
      svg("title", {}, `${t.name}: ${t.status}${t.message ? ` — ${t.message}` : ""}`),
      svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
      svg("text", { x: 10, y: 19, class: "name" }, t.name.length > 22 ? `${t.name.slice(0, 21)}…` : t.name),
      svg("text", { x: 10, y: 37, class: "state" }, stateText(t)));
    const open = () => openRunLog(t.name);
    node.addEventListener("click", open);
    node.addEventListener("keydown", (ev) => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); open(); } });
    box.append(node);
  }
  // keep the focus on the node that had it (a live redraw must not steal the keyboard)
  const focused = document.activeElement && document.activeElement.getAttribute && document.activeElement.getAttribute("data-task");
  $("run-dag").replaceChildren(box);
  if (focused) { const again = box.querySelector(`g.node[data-task="${CSS.escape(focused)}"]`); if (again) again.focus(); }
}

const STATE_MARK = { Succeeded: "✓", Failed: "✗", Crashed: "✗", Running: "▶", Pending: "…", Cancelled: "■", Skipped: "–" };

function stateText(t) {
  const attempts = t.attempts > 1 ? ` · ${t.attempts} attempts` : "";
  return `${STATE_MARK[t.status] || ""} ${t.status}${attempts}`.trim();
}

// ---------- the timeline ----------

const ms = (ts) => (ts ? Date.parse(ts) : NaN);

// What each part of an attempt's bar is, in words (the legend, the titles, the row's text).
const SEGMENT_WORDS = {
  waiting: "waiting for its Job and pod", backoff: "retry back-off", unscheduled: "waiting for a node",
  starting: "starting its container", pending: "pending", running: "running",
};
const OUTCOME_MARK = { Succeeded: "✓", Failed: "✗", OOMKilled: "✗ OOMKilled", Evicted: "⏏ Evicted", Running: "▶", Pending: "…" };

function attemptWords(a) {
  const why = [a.reason && a.reason !== a.outcome ? a.reason : "", a.exitCode ? `exit ${a.exitCode}` : ""].filter(Boolean).join(", ");
  return `attempt ${a.attempt} ${a.outcome}${why ? ` (${why})` : ""}`;
}

function renderTimeline(run) {
  const tasks = run.tasks || [];
  const now = Date.now();
  const segs = tasks.flatMap((t) => (t.attemptDetail || []).flatMap((a) => a.segments || []));
  const starts = [...tasks.map((t) => ms(t.startTime)), ...segs.map((g) => ms(g.start))].filter((v) => !isNaN(v));
  const runStart = ms(run.startTime);
  const t0 = Math.min(...starts, isNaN(runStart) ? Infinity : runStart);
  const ends = [...tasks.map((t) => (t.endTime ? ms(t.endTime) : t.startTime ? now : NaN)), ...segs.map((g) => ms(g.end))].filter((v) => !isNaN(v));
  const t1 = Math.max(...ends, run.endTime ? ms(run.endTime) : -Infinity, t0 + 1000);
  if (!isFinite(t0)) { $("run-timeline").replaceChildren(el("p", { class: "muted" }, "No task has started yet.")); return; }
  const span = t1 - t0;
  const pct = (v) => `${(((v - t0) / span) * 100).toFixed(2)}%`;
  const place = (node, a, b) => { node.style.left = pct(a); node.style.width = `max(2px, calc(${pct(b)} - ${pct(a)}))`; return node; };
  const rows = tasks.map((t) => {
    const start = ms(t.startTime);
    const end = t.endTime ? ms(t.endTime) : now;
    const tried = t.attemptDetail || [];
    const failedBefore = Math.max(0, (t.attempts || 0) - (t.status === "Failed" || t.status === "Crashed" ? 0 : 1));
    const label = isNaN(start) ? "not started"
      : `${humanSeconds((end - start) / 1000)}${t.endTime ? "" : " so far"}`;
    const detail = tried.length ? tried.map(attemptWords).join(" · ") : [
      t.attempts ? `${t.attempts} attempt${t.attempts > 1 ? "s" : ""}` : "",
      failedBefore ? `${failedBefore} failed attempt${failedBefore > 1 ? "s" : ""}` : "",
      t.reason || "",
    ].filter(Boolean).join(", ");
    const bar = isNaN(start) ? null : el("div", {
      class: `bar ${t.status}${tried.length ? " has-attempts" : ""}`, style: null, "data-task": t.name,
      title: `${t.name}: ${t.status}, ${when(t.startTime)} → ${t.endTime ? when(t.endTime) : "now"}${detail ? ` (${detail})` : ""}`,
    }, !tried.length && failedBefore ? el("span", { class: "retries", "aria-label": `${failedBefore} failed attempts before` }, "✗".repeat(Math.min(failedBefore, 5))) : null);
    if (bar) place(bar, start, end);
    const attempts = tried.map((a) => {
      const parts = (a.segments || []).map((g) => place(el("div", {
        class: `seg ${g.kind}`, "data-kind": g.kind,
        title: `${t.name}, attempt ${a.attempt}: ${SEGMENT_WORDS[g.kind] || g.kind}${g.reason ? ` (${g.reason})` : ""} ` +
          `${humanSeconds((ms(g.end) - ms(g.start)) / 1000)}, ${when(g.start)} → ${when(g.end)}${g.message ? ` — ${g.message}` : ""}`,
      }), ms(g.start), ms(g.end)));
      const last = (a.segments || []).slice(-1)[0];
      const mark = last ? el("span", { class: `attempt-mark ${a.outcome}`, "aria-hidden": "true" }, OUTCOME_MARK[a.outcome] || a.outcome) : null;
      if (mark) mark.style.left = `calc(${pct(ms(last.start))} + 3px)`;  // inside its last part
      return el("div", { class: `attempt ${a.outcome}`, "data-attempt": String(a.attempt), "data-outcome": a.outcome,
        "data-pod": a.pod || "", role: "img", "aria-label": `${t.name}: ${attemptWords(a)}` }, parts, mark);
    });
    return el("div", { class: "tl-row", "data-task": t.name },
      el("div", { class: "tl-name" }, t.name),
      el("div", { class: `tl-track${tried.length ? " with-attempts" : ""}` }, bar, attempts),
      el("div", { class: "tl-text", title: detail }, `${t.status} · ${label}${detail ? ` · ${detail}` : ""}`));
  });
  const anyAttempts = tasks.some((t) => (t.attemptDetail || []).length);
  const legend = anyAttempts
    ? el("div", { class: "tl-legend muted", id: "run-timeline-legend" },
      Object.entries(SEGMENT_WORDS).filter(([k]) => segs.some((g) => g.kind === k))
        .map(([k, words]) => el("span", { class: "key" }, el("span", { class: `swatch seg ${k}` }), words)),
      el("span", { class: "key" }, "✗ failed · ✗ OOMKilled · ⏏ evicted · ✓ succeeded"))
    : tasks.some((t) => t.startTime) && FINISHED.has(run.status)
      ? el("p", { class: "muted tl-note", id: "run-timeline-note" }, "Each attempt's own times (waiting, pending, running) are shown while the run's pods exist; the run store keeps each task's start, end and number of attempts, not each attempt's times.")
      : null;
  $("run-timeline").replaceChildren(
    el("div", { class: "tl-axis muted" }, el("span", {}, when(new Date(t0).toISOString().replace(/\.\d+Z$/, "Z"))), el("span", {}, `${humanSeconds(span / 1000)} in all`)),
    ...rows, legend);
}

// ---------- the phase history ----------

function renderHistory(run) {
  const rows = (run.history || []).map((h) => el("tr", {},
    el("td", { class: "time", title: h.time }, when(h.time)), el("td", {}, badge(h.phase)),
    el("td", {}, h.reason || ""), el("td", { class: "message" }, h.message || "")));
  $("run-history").tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "4", class: "muted" }, "No phase change recorded yet."))]));
}

// ---------- the log ----------

async function openRunLog(task) {
  closeRunLog();
  const run = runPage.run;
  const line = run && (run.tasks || []).find((t) => t.name === task);
  const controller = new AbortController();
  runPage.log = { task, controller, text: "" };
  $("run-log").hidden = false;
  $("run-log-title").textContent = `Log of ${task}`;
  $("run-log-body").textContent = "";
  document.querySelectorAll("#run-dag g.node").forEach((n) => n.classList.toggle("selected", n.getAttribute("data-task") === task));
  setRunHash();
  const follow = $("run-log-follow").checked;
  const { ns, name } = runPage.id;
  try {
    const resp = await api(`/api/v1/flowruns/${runPath(ns, name)}/tasks/${encodeURIComponent(task)}/logs?follow=${follow}`,
      { signal: controller.signal });
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      runPage.log.text += decoder.decode(value, { stream: true });
      showLogText();
    }
    if (!runPage.log.text) $("run-log-body").textContent = "(the log is empty)";
  } catch (e) {
    if (e.name === "AbortError") return;
    if (e instanceof Unauthorized) { showLogin("That token is not accepted."); return; }
    const why = line && !line.pod ? "the task has no pod yet" : e.message;
    $("run-log-body").textContent = `[log unavailable: ${why}]`;
  }
}

// the log as text nodes, each match of the search in a <mark> (never innerHTML)
function showLogText() {
  const body = $("run-log-body");
  const text = runPage.log ? runPage.log.text : "";
  const q = $("run-log-search").value;
  const parts = [];
  let count = 0;
  if (q) {
    const lower = text.toLowerCase(), needle = q.toLowerCase();
    let at = 0, i;
    while ((i = lower.indexOf(needle, at)) >= 0) {
      parts.push(text.slice(at, i), el("mark", {}, text.slice(i, i + q.length)));
      at = i + q.length;
      count++;
    }
    parts.push(text.slice(at));
  } else parts.push(text);
  const atBottom = body.scrollTop + body.clientHeight >= body.scrollHeight - 4;
  body.replaceChildren(...parts.filter((p) => p !== ""));
  $("run-log-matches").textContent = q ? `${count} match${count === 1 ? "" : "es"}` : "";
  if (q && count) body.querySelector("mark").scrollIntoView({ block: "nearest" });
  else if (atBottom) body.scrollTop = body.scrollHeight;
}

function closeRunLog() {
  if (runPage.log) runPage.log.controller.abort();
  runPage.log = null;
  $("run-log").hidden = true;
  document.querySelectorAll("#run-dag g.node.selected").forEach((n) => n.classList.remove("selected"));
}

function downloadRunLog() {
  if (!runPage.log) return;
  const url = URL.createObjectURL(new Blob([runPage.log.text], { type: "text/plain" }));
  const a = el("a", { href: url, download: `${runPage.id.name}-${runPage.log.task}.log` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

$("run-log-search").addEventListener("input", () => { showLogText(); setRunHash(); });
$("run-log-close").addEventListener("click", () => { closeRunLog(); setRunHash(); });
$("run-log-download").addEventListener("click", downloadRunLog);
$("run-log-follow").addEventListener("change", () => { if (runPage.log) openRunLog(runPage.log.task); });
