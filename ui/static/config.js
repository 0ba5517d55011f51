// A device's effective configuration: where each value comes from, the sync state, and
// (for roles that may) setting and removing the device's own keys.
import { api, can, clearErrors, el, fmtTime, showError, tenantAPI, toast } from "./api.js";

export function deviceConfig(deviceID) {
  const base = `devices/${encodeURIComponent(deviceID)}/config`;
  const rows = document.getElementById("config-rows");
  const errBox = document.getElementById("config-error");
  const sync = document.getElementById("config-sync");
  const form = document.getElementById("config-form");
  const versions = new Map(); // device-layer key → version
  const write = can("config:write");

  const show = (v) => (v && typeof v === "object" && v.secret ? "•••• (secret, set)" : typeof v === "string" ? v : JSON.stringify(v));

  async function load() {
    try {
      const [eff, own] = await Promise.all([api("GET", tenantAPI(`${base}/effective`)), api("GET", tenantAPI(base))]);
      versions.clear();
      for (const e of own.entries || []) versions.set(e.key, e.version);
      errBox.textContent = "";
      const st = (eff.sync && eff.sync.state) || "";
      sync.dataset.state = st;
      sync.textContent = st ? st.replace("_", " ") : "no version yet";
      document.getElementById("config-version").textContent = eff.version
        ? `Version ${eff.version}${eff.sync && eff.sync.applied_version ? `, device applied ${eff.sync.applied_version}` : ""}${eff.sync && eff.sync.error ? ` — ${eff.sync.error}` : ""} · ${fmtTime(eff.created_at)}`
        : "";
      const list = eff.entries || [];
      if (!list.length) return rows.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No configuration yet.")));
      rows.replaceChildren(...list.map((e) => el("tr", { "data-key": e.key },
        el("td", {}, el("code", {}, e.key)), el("td", {}, show(e.value)), el("td", {}, e.type),
        el("td", {}, e.layer, e.source && e.layer !== "device" ? el("span", { class: "muted" }, ` (${e.source})`) : ""),
        write ? el("td", {}, e.layer === "device" ? el("button", {
          type: "button", class: "danger", "aria-label": `Remove ${e.key} from this device`,
          onclick: async () => {
            try {
              await api("DELETE", tenantAPI(`${base}/${encodeURIComponent(e.key)}?version=${versions.get(e.key) || 0}`));
              load();
            } catch (err) {
              errBox.textContent = `${e.key}: ${err.message}`;
            }
          },
        }, "Remove") : "") : "")));
    } catch (err) {
      errBox.textContent = `Configuration could not be loaded: ${err.message}`;
    }
  }

  if (form) onSaveEntry(form, base, versions, (key) => `${key} saved; the device receives it now or when it reconnects`, load);
  load();
  return { reload: load };
}

export async function deviceErrors(deviceID) {
  const rows = document.getElementById("error-rows");
  try {
    const page = await api("GET", tenantAPI(`devices/${encodeURIComponent(deviceID)}/errors?limit=50`));
    const items = page.items || [];
    if (!items.length) return rows.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No errors reported.")));
    rows.replaceChildren(...items.map((g) => el("tr", {},
      el("td", {}, el("strong", {}, g.type), " ", g.message), el("td", {}, g.firmware_version), el("td", {}, String(g.count)),
      el("td", {}, fmtTime(g.last_seen)), el("td", {}, g.resolved ? "resolved" : "open"))));
  } catch (err) {
    rows.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "form-error" }, `Errors could not be loaded: ${err.message}`)));
  }
}

// show renders a config value; a secret is only ever "set".
function showValue(v) {
  if (v === undefined || v === null) return "—";
  if (typeof v === "object" && v.secret) return "•••• (secret, set)";
  return typeof v === "string" ? v : JSON.stringify(v);
}

// onSaveEntry makes form (fields key, type, value, secret) set one config entry under base:
// the value is parsed for its type, the entry's last seen version guards the write, and
// saved(key) is the toast shown before reload runs.
function onSaveEntry(form, base, versions, saved, reload) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = form.elements.key.value.trim();
    const type = form.elements.type.value;
    const body = { type, value: parseValue(type, form.elements.value.value), secret: form.elements.secret.checked, version: versions.get(key) || 0 };
    const btn = form.querySelector('button[type="submit"]');
    btn.disabled = true;
    try {
      if (!key) throw Object.assign(new Error("invalid input"), { fields: { key: "is required" } });
      await api("PUT", tenantAPI(`${base}/${encodeURIComponent(key)}`), body);
      clearErrors(form);
      toast(saved(key));
      form.reset();
      reload();
    } catch (err) {
      showError(form, err);
    } finally {
      btn.disabled = false;
    }
  });
}

// parseValue turns what was typed into a value of the entry's type; what does not parse is
// sent as typed, so the server answers with the field error.
function parseValue(type, raw) {
  switch (type) {
    case "int": return /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
    case "float": return raw.trim() !== "" && !isNaN(Number(raw)) ? Number(raw) : raw;
    case "bool": return raw.trim() === "true" ? true : raw.trim() === "false" ? false : raw;
    case "json": try { return JSON.parse(raw); } catch { return raw; }
    default: return raw;
  }
}

// projectVariables lists a project's config entries ("project variables") and, for roles
// that may, sets and removes them. Secret values are write-only: they read back as "set".
export function projectVariables(projectID) {
  const base = `projects/${encodeURIComponent(projectID)}/config`;
  const rows = document.getElementById("variable-rows");
  const errBox = document.getElementById("variables-error");
  const form = document.getElementById("project-config-form");
  const write = can("config:write");
  const versions = new Map();

  async function load() {
    try {
      const res = await api("GET", tenantAPI(base));
      const list = res.entries || [];
      versions.clear();
      for (const e of list) versions.set(e.key, e.version);
      errBox.textContent = "";
      if (!list.length) return rows.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No variables yet.")));
      rows.replaceChildren(...list.map((e) => el("tr", { "data-key": e.key },
        el("td", {}, el("code", {}, e.key)),
        el("td", { "data-secret": e.secret ? "true" : "false" }, showValue(e.value)),
        el("td", {}, e.type + (e.secret ? " (secret)" : "")),
        el("td", {}, fmtTime(e.updated_at)),
        write ? el("td", {}, el("button", {
          type: "button", class: "danger", "aria-label": `Remove variable ${e.key}`,
          onclick: async () => {
            if (!confirm(`Remove the variable ${e.key}? Every device of the project loses it.`)) return;
            try {
              await api("DELETE", tenantAPI(`${base}/${encodeURIComponent(e.key)}?version=${e.version}`));
              toast(`${e.key} removed`);
              load();
            } catch (err) {
              errBox.textContent = `${e.key}: ${err.message}`;
            }
          },
        }, "Remove")) : "")));
    } catch (err) {
      errBox.textContent = `Variables could not be loaded: ${err.message}`;
    }
  }

  if (form) onSaveEntry(form, base, versions, (key) => `${key} saved; the project's devices receive it now or when they reconnect`, load);
  load();
  return { reload: load };
}

// configVersions lists a device's config versions with the diff of each, and offers a
// rollback to an earlier one for roles that may.
export function configVersions(deviceID, onRollback) {
  const base = `devices/${encodeURIComponent(deviceID)}/config`;
  const list = document.getElementById("config-versions");
  const errBox = document.getElementById("config-versions-error");
  const write = can("config:write");

  const change = (c) => {
    const what = c.op === "added" ? ["added ", showValue(c.new)]
      : c.op === "removed" ? ["removed (was ", showValue(c.old), ")"]
        : ["", showValue(c.old), " → ", showValue(c.new)];
    return el("li", { class: `diff diff-${c.op}`, "data-op": c.op },
      el("code", {}, c.key), el("span", { class: "muted" }, ` ${c.layer}${c.secret ? ", secret" : ""}: `), ...what);
  };

  async function load() {
    try {
      const page = await api("GET", tenantAPI(`${base}/versions?limit=20`));
      const items = page.items || [];
      errBox.textContent = "";
      if (!items.length) return list.replaceChildren(el("p", { class: "muted" }, "No versions yet."));
      const current = items[0].version;
      list.replaceChildren(...items.map((v) => el("article", { class: "version", "data-version": v.version },
        el("h3", {}, `Version ${v.version}`, v.version === current ? el("span", { class: "badge" }, " current") : "",
          el("span", { class: "muted" }, ` · ${v.reason} · ${fmtTime(v.created_at)}`)),
        v.changes && v.changes.length ? el("ul", { class: "changes" }, v.changes.map(change)) : el("p", { class: "muted" }, "No changes."),
        write && v.version !== current ? el("button", {
          type: "button", "aria-label": `Roll back to version ${v.version}`,
          onclick: async (ev) => {
            if (!confirm(`Make version ${v.version}'s configuration current again?`)) return;
            ev.target.disabled = true;
            try {
              const res = await api("POST", tenantAPI(`${base}/rollback`), { version: v.version });
              toast(`Rolled back: version ${res.version} has the content of ${v.version}`);
              load();
              if (onRollback) onRollback();
            } catch (err) {
              errBox.textContent = `Version ${v.version}: ${err.message}`;
              ev.target.disabled = false;
            }
          },
        }, `Roll back to ${v.version}`) : "")));
    } catch (err) {
      errBox.textContent = `Versions could not be loaded: ${err.message}`;
    }
  }
  load();
  return { reload: load };
}

// deviceUpdates shows a device's update history: one entry per rollout that included it.
export async function deviceUpdates(deviceID) {
  const rows = document.getElementById("update-rows");
  try {
    const res = await api("GET", tenantAPI(`devices/${encodeURIComponent(deviceID)}/updates`));
    const items = (res.items || []).slice().sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1));
    if (!items.length) return rows.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No updates yet.")));
    const versions = new Map();
    await Promise.all([...new Set(items.map((u) => u.rollout_id))].map(async (rid) => {
      try {
        versions.set(rid, (await api("GET", tenantAPI(`rollouts/${encodeURIComponent(rid)}`))).version);
      } catch { /* shown as unknown */ }
    }));
    rows.replaceChildren(...items.map((u) => el("tr", { "data-update": u.rollout_id },
      el("td", {}, versions.get(u.rollout_id) || "—"),
      el("td", {}, el("span", { class: `badge state-${u.state}`, "data-state": u.state }, u.state)),
      el("td", {}, `${u.progress || 0}%`),
      el("td", {}, u.reason || ""),
      el("td", {}, fmtTime(u.updated_at)))));
  } catch (err) {
    rows.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "form-error" }, `Update history could not be loaded: ${err.message}`)));
  }
}
