// Flow Operator dashboard: who is signed in, and what they may do (docs/security.md).
// The token is app.js's (sessionStorage: this tab only). Once signed in, GET /api/v1/me
// says who the token is and, per namespace, the actions they have; the header shows the
// caller, and the buttons of actions they may not do are disabled with the reason in their
// title. A 403 is put in plain words: "You (bob) cannot cancel runs in team-b."
"use strict";

// What the dashboard's buttons do, as `me` names the actions.
const BUTTON_ACTIONS = { cancel: "cancel", rerun: "rerun", logs: "logs", run: "run" };
// An RBAC refusal (`<user> cannot <verb> <resource> in <ns>`) as what it stops.
const REFUSED_WORDS = {
  "patch flowruns": "cancel runs",
  "create flowruns": "start runs (rerun, Run)",
  "get flowruns": "see runs",
  "list flowruns": "list runs",
  "get pods/log": "read task logs",
  "get flows": "see flows",
  "list flows": "list flows",
  "list workflows": "list workflows",
  "deletecollection flowruns": "prune the history",
};
const ACTION_WORDS = { cancel: "cancel runs", rerun: "rerun runs", run: "run flows", logs: "read task logs" };

// "system:serviceaccount:team-a:alice" -> "alice"; "token:ops" -> "ops"; others as they are.
function shortName(user) {
  const sa = /^system:serviceaccount:[^:]+:(.+)$/.exec(user || "");
  if (sa) return sa[1];
  const token = /^token:(.+)$/.exec(user || "");
  return token ? token[1] : user || "";
}

// The API's 403 message in plain words; anything else as it came.
function forbiddenInWords(message) {
  const m = /^(\S+) cannot (\S+) (\S+) (?:in (\S+)|(cluster-wide))$/.exec(message || "");
  if (m) {
    const what = REFUSED_WORDS[`${m[2]} ${m[3]}`] || `${m[2]} ${m[3]}`;
    const where = m[4] ? `in ${m[4]}` : "in every namespace";
    return `You (${shortName(m[1])}) cannot ${what} ${where}.`;
  }
  if (/read-only/.test(message || "")) return "The dashboard is read-only: no actions can be done.";
  return message;
}

const ACTIONS = new Set(["cancel", "rerun", "run"]); // what read-only refuses
// May the caller of this `me` answer do `action` in `namespace`? No answer yet, or a
// namespace the answer does not list (none of the caller's, or new since): yes, and the
// API decides (a caller sees rows only of namespaces they may list, which `me` lists).
function mayDo(me, namespace, action) {
  if (!me) return true;
  if (me.readOnly && ACTIONS.has(action)) return false;
  const ns = (me.namespaces || []).find((n) => n.namespace === namespace);
  return ns ? ns.actions.includes(action) : true;
}

// Why not, in the words the header uses.
function whyNot(me, namespace, action) {
  if (me.readOnly) return "The dashboard is read-only.";
  return `You (${shortName(me.user)}) cannot ${ACTION_WORDS[action] || action} in ${namespace}.`;
}

if (typeof module !== "undefined") module.exports = { shortName, forbiddenInWords, mayDo, whyNot };

if (typeof document !== "undefined") {
  const auth = { me: null, token: null, asking: null };

  const header = document.querySelector("header");
  const who = document.createElement("span");
  who.id = "whoami";
  who.className = "muted";
  who.hidden = true;
  header.insertBefore(who, document.getElementById("logout"));

  const currentToken = () => sessionStorage.getItem("flowToken") || "";

  async function askMe() {
    const token = currentToken();
    if (!token) { forget(); return; }
    if (token === auth.token && (auth.me || auth.asking)) return;
    auth.token = token;
    auth.me = null;
    const asking = fetch("/api/v1/me", { headers: { Authorization: `Bearer ${token}` } })
      .then((resp) => (resp.ok ? resp.json() : null))
      .catch(() => null);
    auth.asking = asking;
    const me = await asking;
    if (auth.asking !== asking) return; // signed out or in again meanwhile
    auth.asking = null;
    auth.me = me;
    show();
  }

  function forget() {
    auth.me = null;
    auth.token = null;
    auth.asking = null;
    who.hidden = true;
    who.textContent = "";
    document.dispatchEvent(new CustomEvent("flow:me", { detail: null })); // namespaces.js
  }

  function show() {
    const me = auth.me;
    if (!me) { who.hidden = true; return; }
    const namespaces = (me.namespaces || []).map((n) => n.namespace);
    who.textContent = `signed in as ${shortName(me.user)}` + (me.readOnly ? " · read-only" : "");
    who.title = `${me.user}\ngroups: ${(me.groups || []).join(", ")}\n` +
      `namespaces: ${me.clusterWide && me.clusterWide.length ? "all" : namespaces.join(", ") || "none"}`;
    who.hidden = false;
    applyTo(document.body);
    document.dispatchEvent(new CustomEvent("flow:me", { detail: me })); // namespaces.js
  }

  // The namespace of a button: its run row's (or the task row's run), its Flow row's, or
  // the run or Flow page's.
  function namespaceOf(button) {
    let row = button.closest("tr.run, tr.tasks, tr.flow");
    if (row && row.matches("tr.tasks")) row = row.previousElementSibling;
    const id = row && (row.getAttribute("data-run") || row.getAttribute("data-flow"));
    if (id) return id.split("/")[0];
    const page = /^#\/(?:runs|flows)\/([^/?]+)\//.exec(location.hash);
    return page ? decodeURIComponent(page[1]) : null;
  }

  function applyTo(root) {
    const me = auth.me;
    if (!me) return;
    for (const [cls, action] of Object.entries(BUTTON_ACTIONS)) {
      for (const button of root.querySelectorAll(`button.${cls}`)) {
        const ns = namespaceOf(button);
        if (ns === null || mayDo(me, ns, action)) continue;
        button.disabled = true;
        button.classList.add("not-allowed");
        button.title = whyNot(me, ns, action);
      }
    }
  }

  // The pages re-render their rows; each new row is checked as it comes.
  new MutationObserver(() => applyTo(document.body))
    .observe(document.body, { childList: true, subtree: true });

  document.getElementById("login-form").addEventListener("submit", () => setTimeout(askMe));
  document.getElementById("logout").addEventListener("click", forget);
  window.addEventListener("hashchange", askMe);
  document.addEventListener("DOMContentLoaded", askMe);
}
