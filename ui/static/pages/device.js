// One device: status and metadata, commands with live state, editing and credentials.
import { api, ago, el, fmtTime, tenantAPI, toast } from "../api.js";
import { liveEvents } from "../live.js";
import { configVersions, deviceConfig, deviceErrors, deviceUpdates } from "../config.js";
import { lineChart } from "../chart.js";
import { logConsole } from "../logconsole.js";
import { provisioningDownloads } from "../bundle.js";
import { fillProjectSelect, projectLabel, projectNames } from "../projects.js";

const id = document.getElementById("device-title").dataset.device;
const base = `devices/${encodeURIComponent(id)}`;
const errBox = document.getElementById("device-error");
let device = null;
const commands = new Map();

// Tabs: one section of the device at a time; the URL's #fragment keeps it over reloads and
// links (…/devices/ID#logs). Arrow keys, Home and End move between tabs.
const tabs = [...document.querySelectorAll('#device-tabs [role="tab"]')];
function showTab(tab, focus) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (focus) tab.focus();
  window.history.replaceState(null, "", tab.id === "tab-overview" ? location.pathname + location.search : `#${tab.id.slice(4)}`);
}
for (const t of tabs) {
  t.addEventListener("click", () => showTab(t, false));
  t.addEventListener("keydown", (ev) => {
    const i = tabs.indexOf(t);
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
    if (next === undefined) return;
    ev.preventDefault();
    showTab(tabs[(next + tabs.length) % tabs.length], true);
  });
}
const fromHash = tabs.find((t) => t.id === `tab-${location.hash.slice(1)}`);
if (fromHash) showTab(fromHash, false);
// Project names are read after the tab is restored, so a reload does not flash the overview.
const names = await projectNames();

function dl(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v === undefined || v === "" ? "—" : v)]));
}

function renderDevice() {
  const d = device;
  document.getElementById("device-title").replaceChildren(d.name, " ", el("code", {}, d.id));
  document.title = `${d.name} · ESP Admin`;
  const p = document.getElementById("presence");
  p.textContent = d.disabled ? "disabled" : d.online ? "online" : "offline";
  p.className = `badge ${d.online ? "online" : "offline"}`;
  p.dataset.status = d.online ? "online" : "offline";
  document.getElementById("presence-at").textContent = d.online ? `since ${fmtTime(d.presence_changed_at)}` : `last seen ${ago(d.last_seen_at)}`;
  dl(document.getElementById("device-meta"), [
    ["Name", d.name],
    ["Project", d.project_id ? el("a", { href: `/t/${document.body.dataset.tenant}/projects/${encodeURIComponent(d.project_id)}` }, projectLabel(names, d.project_id)) : ""],
    ["Tags", d.tags.join(", ")],
    ["Created", fmtTime(d.created_at)], ["Credentials rotated", fmtTime(d.credentials_rotated_at)],
  ]);
  const m = d.metadata;
  if (m) {
    dl(document.getElementById("device-metadata"), [
      ["Firmware", m.firmware_version], ["Firmware project", m.project], ["Chip", `${m.chip_model} rev ${m.chip_revision}`],
      ["ESP-IDF", m.idf_version], ["MAC", m.mac], ["IP", m.ip], ["RSSI", m.rssi ? `${m.rssi} dBm` : ""],
      ["Free heap", m.free_heap ? `${m.free_heap} bytes` : ""], ["Uptime", `${m.uptime_seconds} s`],
      ["Reset reason", m.reset_reason], ["Config version", String(m.config_version)], ["Reported", fmtTime(m.updated_at)],
    ]);
  }
  const edit = document.getElementById("edit-device-form");
  if (edit && !edit.dataset.filled) {
    edit.elements.name.value = d.name;
    fillProjectSelect(edit.elements.project_id, d.project_id || "");
    edit.elements.tags.value = d.tags.join(", ");
    edit.dataset.filled = "1";
  }
  const toggle = document.getElementById("toggle-disabled");
  if (toggle) toggle.textContent = d.disabled ? "Enable device" : "Disable device";
}

// commandSummary is one short line of a command's parameters; secret values never appear.
function commandSummary(c) {
  const p = c.params || {};
  const plural = (n, w) => `${n} ${w}${n === 1 ? "" : "s"}`;
  switch (c.name) {
    case "restart":
      return p.reason ? `reason: ${p.reason}` : "";
    case "debug":
      return p.enabled ? ["on", p.level && `level ${p.level}`, p.duration_s && `for ${p.duration_s} s`].filter(Boolean).join(", ") : "off";
    case "config": {
      const entries = p.entries || [];
      const secret = entries.filter((e) => e.secret).length;
      return `version ${p.version}, ${plural(entries.length, "value")}${secret ? ` (${secret} secret)` : ""}`;
    }
    case "update":
      return p.version ? `to ${p.version}` : "";
  }
  return Object.entries(p).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k}: ${String(v).slice(0, 40)}`).join(", ");
}

// redacted is a command for its details: secret config values and URL queries (signed
// download links) are replaced.
function redacted(c) {
  return JSON.stringify({ params: c.params, ack: c.ack, error: c.error || undefined }, (k, v) => {
    if (v && typeof v === "object" && v.secret === true && "value" in v) return { ...v, value: "(secret, encrypted for the device)" };
    if (k === "url" && typeof v === "string") return v.split("?")[0] + (v.includes("?") ? "?…" : "");
    return v;
  }, 2);
}

function commandResult(c) {
  if (c.error) return c.error;
  if (!c.ack) return "";
  const r = c.ack.result ?? "";
  const msg = c.ack.message || c.ack.msg || "";
  return [r, msg].filter(Boolean).join(": ");
}

function commandRow(c) {
  return el("tr", { "data-command": c.id },
    el("td", { class: "command" }, el("strong", {}, c.name), " ", el("span", { class: "muted" }, commandSummary(c)),
      el("details", {}, el("summary", {}, "Details"), el("pre", { class: "command-details" }, redacted(c)))),
    el("td", {}, el("span", { class: `badge state-${c.state}`, "data-state": c.state }, c.state)),
    el("td", {}, fmtTime(c.created_at)),
    el("td", { class: "result" }, commandResult(c)));
}

function renderCommands() {
  const rows = document.getElementById("command-rows");
  const list = [...commands.values()].sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
  if (!list.length) return rows.replaceChildren(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No commands sent yet.")));
  rows.replaceChildren(...list.map(commandRow));
}

async function loadDevice() {
  try {
    device = await api("GET", tenantAPI(base));
    errBox.textContent = "";
    renderDevice();
  } catch (err) {
    errBox.textContent = err.status === 404 ? "This device does not exist (or was deleted)." : `The device could not be loaded: ${err.message}`;
  }
}

async function loadCommands() {
  try {
    const page = await api("GET", tenantAPI(`${base}/commands?limit=50`));
    commands.clear();
    for (const c of page.items) commands.set(c.id, c);
    renderCommands();
  } catch (err) {
    errBox.textContent = `Commands could not be loaded: ${err.message}`;
  }
}

async function send(name, params, btn) {
  const box = document.getElementById("cmd-error");
  const done = document.getElementById("cmd-done");
  box.textContent = done.textContent = "";
  btn.disabled = true;
  try {
    const res = await api("POST", tenantAPI("commands"), { name, params, target: { device_ids: [id] } });
    for (const c of res.items || []) commands.set(c.id, c);
    renderCommands();
    const queued = (res.items || []).some((c) => c.state === "queued");
    done.textContent = queued ? `${name}: the device is offline; queued until the device connects.` : `${name} sent.`;
    toast(queued ? `${name} queued until the device connects` : `${name} sent`);
  } catch (err) {
    box.textContent = err.message;
  } finally {
    btn.disabled = false;
  }
}

const on = (elId, fn) => {
  const b = document.getElementById(elId);
  if (b) b.addEventListener("click", () => fn(b));
};
on("cmd-restart", (b) => {
  if (!confirm(`Restart ${device ? device.name : "this device"}? It reboots at once and is offline until it has started again.`)) return;
  send("restart", { reason: "restart from the web UI" }, b);
});
on("cmd-debug-on", (b) => send("debug", { enabled: true }, b));
on("cmd-debug-off", (b) => send("debug", { enabled: false }, b));

on("rotate", async (b) => {
  const box = document.getElementById("cred-error");
  box.textContent = "";
  if (!confirm("Rotate the credentials? The device cannot connect until it has the new bundle.")) return;
  b.disabled = true;
  try {
    const res = await api("POST", tenantAPI(`${base}/rotate-credentials`));
    document.getElementById("rotated-secret").textContent = res.secret;
    const downloads = provisioningDownloads({ ...res, id });
    document.getElementById("rotated-downloads").replaceChildren(...downloads);
    const panel = document.getElementById("rotated");
    panel.hidden = false;
    panel.focus();
    downloads.at(-1).querySelector("a").click();
    device = res;
    renderDevice();
  } catch (err) {
    box.textContent = err.message;
  } finally {
    b.disabled = false;
  }
});

on("toggle-disabled", async (b) => {
  const box = document.getElementById("cred-error");
  box.textContent = "";
  if (!device.disabled &&
    !confirm(`Disable ${device.name}? This locks the device out at once: the broker closes its connection and refuses it until you enable it again.`)) return;
  try {
    device = await api("POST", tenantAPI(`${base}/${device.disabled ? "enable" : "disable"}`));
    renderDevice();
  } catch (err) {
    box.textContent = err.message;
  }
});

const edit = document.getElementById("edit-device-form");
if (edit) {
  edit.addEventListener("api-success", (ev) => {
    device = ev.detail;
    renderDevice();
  });
}

// Presence and health charts from the device's history; presence holds until now.
async function loadHealth() {
  const hours = document.getElementById("health-hours").value;
  try {
    const { samples } = await api("GET", tenantAPI(`${base}/history?hours=${hours}`));
    const presence = samples.filter((s) => s.kind === "presence").map((s) => [Date.parse(s.at), s.online ? 1 : 0]);
    if (device) presence.push([Date.now(), device.online ? 1 : 0]);
    const meta = samples.filter((s) => s.kind === "metadata");
    lineChart(document.getElementById("chart-online"), presence, { label: "Online (1) or offline (0)", step: true });
    lineChart(document.getElementById("chart-rssi"), meta.filter((s) => s.rssi).map((s) => [Date.parse(s.at), s.rssi]), { label: "RSSI", unit: " dBm" });
    lineChart(document.getElementById("chart-heap"), meta.map((s) => [Date.parse(s.at), s.free_heap]),
      { label: "Free heap", unit: " KB", format: (v) => String(Math.round(v / 1024)) });
  } catch (err) {
    errBox.textContent = `History could not be loaded: ${err.message}`;
  }
}
document.getElementById("health-hours").addEventListener("change", loadHealth);

await Promise.all([loadDevice(), loadCommands()]);
loadHealth();
const config = deviceConfig(id);
const history = configVersions(id, () => config.reload());
const logs = logConsole(id);
deviceErrors(id);
deviceUpdates(id);
let pendingUpdates = null;
const laterUpdates = () => {
  clearTimeout(pendingUpdates);
  pendingUpdates = setTimeout(() => deviceUpdates(id), 300);
};
liveEvents({
  presence(ev) {
    if (ev.device_id !== id || !device) return;
    device.online = ev.data.online;
    logs.setOnline(device.online);
    if (device.online) device.presence_changed_at = ev.at;
    else device.last_seen_at = ev.at;
    renderDevice();
    loadHealth();
  },
  metadata(ev) {
    if (ev.device_id !== id) return;
    loadDevice();
    loadHealth();
  },
  command(ev) {
    if (ev.device_id !== id) return;
    const c = commands.get(ev.data.id);
    if (!c) return loadCommands();
    c.state = ev.data.state;
    if (ev.data.error) c.error = ev.data.error;
    renderCommands();
    if (["succeeded", "failed"].includes(c.state)) api("GET", tenantAPI(`${base}/commands/${c.id}`)).then((full) => {
      commands.set(full.id, full);
      renderCommands();
    }).catch(() => {});
  },
  commands_expired: loadCommands,
  device(ev) {
    if (ev.device_id === id) loadDevice();
  },
  config(ev) {
    if (!ev.device_id || ev.device_id === id) {
      config.reload();
      history.reload();
    }
  },
  device_update(ev) {
    if (!ev.device_id || ev.device_id === id) laterUpdates();
  },
  dropped() {
    loadDevice();
    loadCommands();
    config.reload();
    history.reload();
    laterUpdates();
  },
});
