// One error group: what it is, the devices it occurred on, its recent reports; resolve and
// reopen for roles that may.
import { api, el, fmtTime, tenantAPI } from "../api.js";
import { barChart } from "../chart.js";
import { projectLabel, projectNames } from "../projects.js";

const tenant = document.body.dataset.tenant;
const id = document.getElementById("group-title").dataset.group;
const errBox = document.getElementById("group-error");
const resolveBtn = document.getElementById("group-resolve");
const reopenBtn = document.getElementById("group-reopen");
const names = await projectNames();

function dl(target, pairs) {
  target.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v === undefined || v === "" ? "—" : v)]));
}

function render(g) {
  document.getElementById("group-title").replaceChildren(g.type, " ", el("code", {}, g.id));
  document.title = `${g.type} · ESP Admin`;
  const st = document.getElementById("group-state");
  st.textContent = g.resolved ? "resolved" : "open";
  st.dataset.state = g.resolved ? "resolved" : "open";
  st.className = `badge state-${st.dataset.state}`;
  dl(document.getElementById("group-meta"), [
    ["Message", g.message], ["Firmware", g.firmware_version], ["Project", g.project_id ? projectLabel(names, g.project_id) : ""], ["Count", String(g.count)],
    ["First seen", fmtTime(g.first_seen)], ["Last seen", fmtTime(g.last_seen)],
    ["Resolved", g.resolved ? `${fmtTime(g.resolved_at)}${g.resolved_by ? ` by ${g.resolved_by}` : ""}` : "no"],
    ["Fingerprint", g.fingerprint],
  ]);
  if (resolveBtn) resolveBtn.hidden = g.resolved;
  if (reopenBtn) reopenBtn.hidden = !g.resolved;
}

function frames(bt) {
  if (!Array.isArray(bt) || !bt.length) return "";
  return el("pre", { class: "backtrace" }, bt.map((f) =>
    `${f.pc || ""} ${f.func || ""}${f.file ? ` ${f.file}:${f.line || ""}` : ""}`.trim()).join("\n"));
}

// The newest backtrace, symbolicated with the release's ELF file when the server has it:
// innermost frame first, inlined functions as frames of their own, ESP-IDF's panic machinery
// dimmed.
function renderStack(g) {
  const card = document.getElementById("group-stack-card");
  const stack = g.stack || [];
  card.hidden = !stack.length;
  if (!stack.length) return;
  const badge = document.getElementById("group-stack-state");
  badge.textContent = g.stack_symbolicated ? "symbolicated" : "raw";
  badge.dataset.state = g.stack_symbolicated ? "symbolicated" : "raw";
  document.getElementById("group-stack-note").textContent = g.stack_symbolicated ? ""
    : "Addresses only: upload the release's ELF file (project page, or espadmin release push --elf) to see functions and lines.";
  document.getElementById("group-stack").replaceChildren(...stack.map((f) => el("li", { class: f.runtime ? "frame runtime" : "frame", "data-func": f.func || "" },
    el("code", { class: "func" }, f.func || "??"),
    f.inlined ? el("span", { class: "badge" }, "inlined") : "",
    f.file ? el("span", { class: "loc" }, ` ${f.file}:${f.line || 0}`) : "",
    el("span", { class: "muted pc" }, ` ${f.pc}${f.sp ? ` (sp ${f.sp})` : ""}`))));
}

// The whole core dump the device uploaded, through a short-lived signed URL.
function coreDumpLink(r) {
  if (!r.core_dump_uploaded) return "";
  const btn = el("button", { type: "button", "data-coredump": r.id }, "Download core dump");
  btn.addEventListener("click", async () => {
    try {
      const d = await api("GET", tenantAPI(`errors/${encodeURIComponent(id)}/reports/${encodeURIComponent(r.id)}/coredump`));
      location.assign(d.url);
    } catch (err) {
      errBox.textContent = `The core dump could not be fetched: ${err.message}`;
    }
  });
  return el("p", {}, btn);
}

async function load() {
  try {
    const g = await api("GET", tenantAPI(`errors/${encodeURIComponent(id)}`));
    errBox.textContent = "";
    render(g);
    renderStack(g);
    const devs = (g.devices || []).slice().sort((a, b) => b.count - a.count);
    document.getElementById("group-device-count").textContent = `(${devs.length})`;
    barChart(document.getElementById("group-trend"), (g.trend || []).map((d) => [d.day.slice(5), d.reports]));
    document.getElementById("group-device-rows").replaceChildren(...(devs.length ? devs.map((d) => el("tr", { "data-device": d.device_id },
      el("td", {}, d.device_name
        ? [el("a", { href: `/t/${tenant}/devices/${encodeURIComponent(d.device_id)}` }, d.device_name), " ", el("code", { class: "muted" }, d.device_id)]
        : [el("code", {}, d.device_id), el("span", { class: "muted" }, " (deleted)")]),
      el("td", {}, String(d.count)), el("td", {}, fmtTime(d.first_seen)), el("td", {}, fmtTime(d.last_seen))))
      : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No devices."))]));
    const reps = g.recent_reports || [];
    document.getElementById("group-reports").replaceChildren(...(reps.length ? reps.map((r) => el("article", { class: "report" },
      el("h3", {}, `${fmtTime(r.received_at)} · `, el("code", {}, r.device_id), ` · ${r.severity}`),
      el("p", {}, r.message),
      el("dl", { class: "meta" }, ...[["Firmware", r.firmware_version], ["Code", r.code], ["Reset reason", r.reset_reason],
        ["Uptime", r.uptime_s ? `${r.uptime_s} s` : ""], ["Free heap", r.free_heap ? `${r.free_heap} bytes` : ""]]
        .filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      frames(r.backtrace), coreDumpLink(r))) : [el("p", { class: "muted" }, "No reports kept.")]));
  } catch (err) {
    errBox.textContent = err.status === 404 ? "This error group does not exist." : `The error group could not be loaded: ${err.message}`;
  }
}

for (const [btn, action] of [[resolveBtn, "resolve"], [reopenBtn, "reopen"]]) {
  if (!btn) continue;
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      render(await api("POST", tenantAPI(`errors/${encodeURIComponent(id)}/${action}`)));
      (action === "resolve" ? reopenBtn : resolveBtn).focus();
    } catch (err) {
      errBox.textContent = err.message;
    } finally {
      btn.disabled = false;
    }
  });
}
load();
