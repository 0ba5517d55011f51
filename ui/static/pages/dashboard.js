// The dashboard: online and offline counts, firmware versions, active rollouts and recent
// errors, kept live.
import { ago, api, el, tenantAPI } from "../api.js";
import { barChart, lineChart } from "../chart.js";
import { liveEvents } from "../live.js";

const errBox = document.getElementById("dashboard-error");

// The counts come from one grouped query on the server, so the dashboard stays light at any
// fleet size.
async function reload() {
  try {
    const st = await api("GET", tenantAPI("devices/stats"));
    errBox.textContent = "";
    document.getElementById("stat-online").textContent = st.online;
    document.getElementById("stat-offline").textContent = st.offline;
    document.getElementById("stat-total").textContent = st.total;
    barChart(document.getElementById("fw-chart"), st.firmware.map((f) => [f.version || "unknown", f.devices]), { unit: "" });
    const hist = await api("GET", tenantAPI("devices/stats/history?hours=168"));
    const points = hist.samples.map((p) => [Date.parse(p.at), p.online]);
    points.push([Date.now(), st.online]);
    lineChart(document.getElementById("online-history"), points, { label: "Online devices over the last 7 days", step: true });
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
  api("GET", tenantAPI("errors/trend")).then((t) => barChart(document.getElementById("errors-trend"),
    t.days.map((d) => [d.day.slice(5), d.reports]))).catch((err) => {
    document.getElementById("errors-trend").replaceChildren(el("p", { class: "form-error" }, `Error counts could not be loaded: ${err.message}`));
  });
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
  pending = setTimeout(reload, 500);
};
liveEvents({
  presence: later,
  metadata: later,
  device: later,
  rollout: laterRollouts,
  device_update: laterRollouts,
  dropped() {
    later();
    laterRollouts();
    loadErrors();
  },
});
