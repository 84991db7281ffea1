// Live updates: GET /api/v1/stream (Server-Sent Events), read with fetch() because
// EventSource cannot send the Authorization header. Reconnects after a drop with
// Last-Event-ID, so the server replays what was missed (or says `reset`: fetch again).
// A plain script: `openStream` is a global of the page (docs/dashboard.md).
"use strict";

const STREAM_RETRY_MS = 2000;

// query: {namespace, run, kinds}; on: {ready, reset, change(kind, data), up, down, unauthorized}
function openStream(query, token, on) {
  let lastId = null;
  let closed = false;
  let controller = null;
  let timer = null;
  const params = new URLSearchParams(Object.entries(query).filter(([, v]) => v));

  function dispatch(frame) {
    let event = "message", data = "", id = null;
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const at = line.indexOf(":");
      const field = at < 0 ? line : line.slice(0, at);
      const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
      if (field === "event") event = value;
      else if (field === "data") data += (data ? "\n" : "") + value;
      else if (field === "id") id = value;
    }
    if (id !== null) lastId = id;
    if (!data) return;
    const body = JSON.parse(data);
    if (event === "ready") (on.ready || (() => {}))(body);
    else if (event === "reset") (on.reset || on.ready || (() => {}))(body);
    else (on.change || (() => {}))(event, body);
  }

  async function connect() {
    controller = new AbortController();
    const headers = { Authorization: `Bearer ${token}` };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    try {
      const resp = await fetch(`/api/v1/stream?${params}`, { headers, signal: controller.signal });
      if (resp.status === 401) { closed = true; (on.unauthorized || (() => {}))(); return; }
      if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
      (on.up || (() => {}))();
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (e) {
      if (closed || e.name === "AbortError") return;
    }
    if (closed) return;
    (on.down || (() => {}))();
    timer = setTimeout(connect, STREAM_RETRY_MS);
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      if (controller) controller.abort();
    },
  };
}

if (typeof module !== "undefined") module.exports = { openStream };
