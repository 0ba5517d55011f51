// The dashboard: online and offline counts, firmware versions, active rollouts and recent
// errors, kept live.
import { ago, api, el, tenantAPI } from "../api.js";
import { barChart } from "../chart.js";
import { liveEvents } from "../live.js";

const devices = new Map();
const errBox = document.getElementById("dashboard-error");

async function loadAll() {
  const all = new Map();
  let cursor = "";
  do {
    const q = new URLSearchParams({ limit: "500" });
    if (cursor) q.set("cursor", cursor);
    const page = await api("GET", tenantAPI("devices?" + q));
    for (const d of page.items) all.set(d.id, d);
    cursor = page.next_cursor;
  } while (cursor);
  devices.clear();
  for (const [k, v] of all) devices.set(k, v);
}

function render() {
  let online = 0;
  const versions = new Map();
  for (const d of devices.values()) {
    if (d.online) online++;
    const v = (d.metadata && d.metadata.firmware_version) || "unknown";
    versions.set(v, (versions.get(v) || 0) + 1);
  }
  document.getElementById("stat-online").textContent = online;
  document.getElementById("stat-offline").textContent = devices.size - online;
  document.getElementById("stat-total").textContent = devices.size;
  const data = [...versions].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  barChart(document.getElementById("fw-chart"), data, { unit: "" });
}

async function reload() {
  try {
    await loadAll();
    errBox.textContent = "";
    render();
  } catch (err) {
    errBox.textContent = `Devices could not be loaded: ${err.message}`;
  }
}

const tenant = document.body.dataset.tenant;

async function loadRollouts() {
  const box = document.getElementById("dash-rollouts");
  try {
    const lists = await Promise.all(["active", "paused"].map((st) => api("GET", tenantAPI(`rollouts?state=${st}&limit=20`))));
    const items = lists.flatMap((p) => p.items || []).filter((r) => r.state === "active" || r.state === "paused");
    if (!items.length) return box.replaceChildren(el("li", { class: "muted" }, "No rollout is running."));
    box.replaceChildren(...items.map((r) => {
      const t = r.totals || {};
      const total = Object.values(t).reduce((a, b) => a + b, 0);
      const done = (t.succeeded || 0) + (t.failed || 0) + (t.skipped || 0);
      return el("li", { "data-rollout": r.id },
        el("a", { href: `/t/${tenant}/projects/${encodeURIComponent(r.project_id)}` }, r.version), " ",
        el("span", { class: `badge state-${r.state}`, "data-state": r.state }, r.state), " ",
        el("progress", { max: total || 1, value: done, "aria-label": `${r.version}: ${done} of ${total} devices done` }),
        ` ${done} of ${total}`);
    }));
  } catch (err) {
    box.replaceChildren(el("li", { class: "form-error" }, `Rollouts could not be loaded: ${err.message}`));
  }
}

async function loadErrors() {
  const box = document.getElementById("dash-errors");
  try {
    const page = await api("GET", tenantAPI("errors?resolved=false&limit=5"));
    const items = page.items || [];
    if (!items.length) return box.replaceChildren(el("li", { class: "muted" }, "No open errors."));
    box.replaceChildren(...items.map((g) => el("li", {},
      el("a", { href: `/t/${tenant}/errors/${encodeURIComponent(g.id)}` }, el("strong", {}, g.type)), ` ${g.message} `,
      el("span", { class: "muted" }, `· ${g.count}× · ${g.firmware_version} · ${ago(g.last_seen)}`))));
  } catch (err) {
    box.replaceChildren(el("li", { class: "form-error" }, `Errors could not be loaded: ${err.message}`));
  }
}

await Promise.all([reload(), loadRollouts(), loadErrors()]);
let pendingRollouts = null;
const laterRollouts = () => {
  clearTimeout(pendingRollouts);
  pendingRollouts = setTimeout(loadRollouts, 300);
};
let pending = null;
const later = () => {
  clearTimeout(pending);
  pending = setTimeout(reload, 300);
};
liveEvents({
  presence(ev) {
    const d = devices.get(ev.device_id);
    if (!d) return later();
    d.online = ev.data.online;
    render();
  },
  metadata(ev) {
    const d = devices.get(ev.device_id);
    if (!d) return later();
    d.metadata = Object.assign(d.metadata || {}, ev.data);
    render();
  },
  device: later,
  rollout: laterRollouts,
  device_update: laterRollouts,
  dropped() {
    later();
    laterRollouts();
    loadErrors();
  },
});
