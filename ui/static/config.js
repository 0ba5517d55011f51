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

  function parse(type, raw) {
    switch (type) {
      case "int": return /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
      case "float": return raw.trim() !== "" && !isNaN(Number(raw)) ? Number(raw) : raw;
      case "bool": return raw.trim() === "true" ? true : raw.trim() === "false" ? false : raw;
      case "json": try { return JSON.parse(raw); } catch { return raw; }
      default: return raw;
    }
  }

  if (form) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const key = form.elements.key.value.trim();
      const type = form.elements.type.value;
      const body = { type, value: parse(type, form.elements.value.value), secret: form.elements.secret.checked, version: versions.get(key) || 0 };
      const btn = form.querySelector('button[type="submit"]');
      btn.disabled = true;
      try {
        if (!key) throw Object.assign(new Error("invalid input"), { fields: { key: "is required" } });
        await api("PUT", tenantAPI(`${base}/${encodeURIComponent(key)}`), body);
        clearErrors(form);
        toast(`${key} saved; the device receives it now or when it reconnects`);
        form.reset();
        load();
      } catch (err) {
        showError(form, err);
      } finally {
        btn.disabled = false;
      }
    });
  }
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
