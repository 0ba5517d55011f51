// One device: status and metadata, commands with live state, editing and credentials.
import { api, ago, downloadLink, el, fmtTime, tenantAPI, toast } from "../api.js";
import { liveEvents } from "../live.js";
import { configVersions, deviceConfig, deviceErrors, deviceUpdates } from "../config.js";
import { logConsole } from "../logconsole.js";

const id = document.getElementById("device-title").dataset.device;
const base = `devices/${encodeURIComponent(id)}`;
const errBox = document.getElementById("device-error");
let device = null;
const commands = new Map();

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
    ["Name", d.name], ["Project", d.project_id], ["Tags", d.tags.join(", ")],
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
    edit.elements.project_id.value = d.project_id || "";
    edit.elements.tags.value = d.tags.join(", ");
    edit.dataset.filled = "1";
  }
  const toggle = document.getElementById("toggle-disabled");
  if (toggle) toggle.textContent = d.disabled ? "Enable device" : "Disable device";
}

function commandRow(c) {
  const result = c.error || (c.ack ? JSON.stringify(c.ack.result ?? c.ack) : "");
  return el("tr", { "data-command": c.id },
    el("td", {}, c.name, c.params && Object.keys(c.params).length ? el("span", { class: "muted" }, " " + JSON.stringify(c.params)) : ""),
    el("td", {}, el("span", { class: `badge state-${c.state}`, "data-state": c.state }, c.state)),
    el("td", {}, fmtTime(c.created_at)),
    el("td", {}, result));
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
  box.textContent = "";
  btn.disabled = true;
  try {
    const res = await api("POST", tenantAPI("commands"), { name, params, target: { device_ids: [id] } });
    for (const c of res.items || []) commands.set(c.id, c);
    renderCommands();
    toast(`${name} sent`);
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
on("cmd-restart", (b) => send("restart", { reason: "restart from the web UI" }, b));
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
    const a = document.getElementById("rotated-download");
    downloadLink(a, `espadmin-${id}.json`, JSON.stringify(res.provisioning, null, 2));
    const panel = document.getElementById("rotated");
    panel.hidden = false;
    panel.focus();
    a.click();
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

await Promise.all([loadDevice(), loadCommands()]);
const config = deviceConfig(id);
const history = configVersions(id, () => config.reload());
logConsole(id);
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
    if (device.online) device.presence_changed_at = ev.at;
    else device.last_seen_at = ev.at;
    renderDevice();
  },
  metadata(ev) {
    if (ev.device_id === id) loadDevice();
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
