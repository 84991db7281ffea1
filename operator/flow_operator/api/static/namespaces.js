// The header's namespace selector (issue 18): next to who is signed in, the namespaces
// GET /api/v1/me says the caller may list Workflows or runs in (auth.js hands its answer
// over as the `flow:me` event). Choosing one scopes the Workflow cards and the run table
// (app.js asks the API with `namespace`), and is kept in the URL (`#/runs?ns=team-a`), so
// a copied link shows a colleague the same view. "All namespaces" is offered only to a
// caller who may see more than one (or every one, cluster-wide).
"use strict";

// The namespace the URL asks for ("" : all the caller may see).
function selectedNamespace() {
  const q = location.hash.indexOf("?");
  return new URLSearchParams(q < 0 ? "" : location.hash.slice(q + 1)).get("ns") || "";
}

// What the selector offers for a `me` answer: {all, namespaces}.
function namespaceChoices(me) {
  const namespaces = ((me && me.namespaces) || [])
    .filter((n) => (n.actions || []).some((a) => a === "workflows" || a === "flowruns"))
    .map((n) => n.namespace)
    .sort();
  const clusterWide = ((me && me.clusterWide) || []).some((k) => k === "workflows" || k === "flowruns");
  return { all: clusterWide || namespaces.length > 1, namespaces };
}

// The list page's hash for a namespace: `#/workflows`, `#/runs` and `#/flows` keep their
// page; a detail page (a run, a Workflow) goes back to the Workflows list.
function scopedHash(hash, ns) {
  const path = (hash || "").split("?")[0];
  const page = /^#\/(workflows|runs|flows)$/.test(path) ? path : "#/workflows";
  return ns ? `${page}?ns=${encodeURIComponent(ns)}` : page;
}

if (typeof module !== "undefined") module.exports = { namespaceChoices, scopedHash };

if (typeof document !== "undefined") {
  const header = document.querySelector("header");
  const label = document.createElement("label");
  label.htmlFor = "ns-select";
  label.className = "ns-label";
  label.textContent = "Namespace";
  const select = document.createElement("select");
  select.id = "ns-select";
  label.hidden = select.hidden = true;
  header.insertBefore(label, document.getElementById("logout"));
  header.insertBefore(select, document.getElementById("logout"));
  let me = null;

  function option(value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    return o;
  }

  function render() {
    const { all, namespaces } = namespaceChoices(me);
    const chosen = selectedNamespace();
    const options = [];
    if (all) options.push(option("", "All namespaces"));
    for (const ns of namespaces) options.push(option(ns, ns));
    select.replaceChildren(...options);
    // a namespace in the URL that is not offered (a link from someone who sees more): the
    // first one offered instead, in the URL too
    if (me && chosen && !options.some((o) => o.value === chosen)) {
      location.replace(scopedHash(location.hash, options[0] ? options[0].value : ""));
      return;
    }
    select.value = chosen || (options[0] ? options[0].value : "");
    label.hidden = select.hidden = !me || options.length === 0;
    for (const [id, page] of [["nav-workflows", "#/workflows"], ["nav-runs", "#/runs"], ["nav-flows", "#/flows"]]) {
      const link = document.getElementById(id);
      if (link) link.href = scopedHash(page, chosen);
    }
  }

  select.addEventListener("change", () => {
    location.hash = scopedHash(location.hash, select.value);
  });
  document.addEventListener("flow:me", (event) => { me = event.detail; render(); });
  window.addEventListener("hashchange", render);
}
