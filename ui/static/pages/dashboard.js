// The dashboard: online and offline counts and firmware versions, kept live.
import { api, tenantAPI } from "../api.js";
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

await reload();
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
  dropped: later,
});
