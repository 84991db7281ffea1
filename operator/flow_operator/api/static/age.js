// Ages and durations as kubectl shows them (86s, 5m2s, 14m, 2h10m, 3d4h): the API keeps
// Go's duration format (`1m26.374975s`, the reference document's), the page shows this.
// A plain script (a global `humanDuration` in the page), also loadable by node for tests.
"use strict";

const GO_UNITS = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, "µs": 1e-6, "μs": 1e-6, ns: 1e-9 };

// Go's time.Duration.String() (e.g. "-1h2m3.5s", "750ms", "0s") as seconds; null if not one.
function goSeconds(text) {
  if (typeof text !== "string") return null;
  const m = /^([-+]?)((?:\d+(?:\.\d*)?|\.\d+)(?:h|m|s|ms|us|µs|μs|ns))+$/.exec(text);
  if (!m) return null;
  let total = 0;
  for (const [, num, unit] of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)/g)) {
    total += parseFloat(num) * GO_UNITS[unit];
  }
  return m[1] === "-" ? -total : total;
}

// k8s.io/apimachinery/pkg/util/duration.HumanDuration, which kubectl's AGE column uses.
function humanSeconds(total) {
  const seconds = Math.trunc(total);
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 ? `${minutes}m${seconds % 60}s` : `${minutes}m`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(seconds / 3600);
  if (hours < 8) return minutes % 60 ? `${hours}h${minutes % 60}m` : `${hours}h`;
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return hours % 24 ? `${days}d${hours % 24}h` : `${days}d`;
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return days % 365 ? `${years}y${days % 365}d` : `${years}y`;
  return `${years}y`;
}

// A Go duration as kubectl would show it; anything else is shown as it came.
function humanDuration(text) {
  const s = goSeconds(text);
  return s === null ? (text || "") : humanSeconds(s);
}

if (typeof module !== "undefined") module.exports = { goSeconds, humanSeconds, humanDuration };
