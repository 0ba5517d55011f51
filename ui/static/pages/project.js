// One project: releases (upload with a progress bar, image details) and rollouts with live
// progress and pause, resume and abort.
import { api, ApiError, can, clearErrors, csrfToken, el, fmtTime, showError, tenantAPI, toast } from "../api.js";
import { liveEvents } from "../live.js";
import { projectVariables } from "../config.js";

const id = document.getElementById("project-title").dataset.project;
const base = `projects/${encodeURIComponent(id)}`;
const errBox = document.getElementById("project-error");
const write = can("releases:write");
const tenant = document.body.dataset.tenant;
let releases = [];
let latestRollout = null;
const projectDevices = new Map();
// How many rollouts and rollout devices are shown: live reloads keep what "Load more" added.
const ROLLOUT_PAGE = 20;
const DEVICE_PAGE = 100;
let rolloutsShown = ROLLOUT_PAGE;
let rolloutDevicesShown = DEVICE_PAGE;

async function loadProject() {
  try {
    const p = await api("GET", tenantAPI(base));
    document.getElementById("project-title").replaceChildren(p.name, " ", el("code", {}, p.id));
    const meta = [["Description", p.description || "—"], ["Signing", p.signing && p.signing.enabled ? "Ed25519" : "off (unsafe)"],
      ["Version mismatch", p.version_mismatch], ["Created", fmtTime(p.created_at)]];
    document.getElementById("project-meta").replaceChildren(...meta.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  } catch (err) {
    errBox.textContent = err.status === 404 ? "This project does not exist." : `The project could not be loaded: ${err.message}`;
  }
}

async function loadReleases() {
  const rows = document.getElementById("release-rows");
  try {
    const page = await api("GET", tenantAPI(`${base}/releases?limit=100`));
    releases = page.items || [];
    rows.replaceChildren(...(releases.length ? releases.map((r) => el("tr", { "data-release": r.version },
      el("td", {}, el("strong", {}, r.version), r.notes ? el("div", { class: "muted" }, r.notes) : "",
        (r.warnings || []).map((w) => el("div", { class: "warning", "data-f": "warning" }, "⚠ ", w))),
      el("td", { "data-f": "chip" }, r.image.chip || "—"),
      el("td", { "data-f": "app_version" }, r.image.app_version || "—", r.image.project_name ? el("div", { class: "muted" }, r.image.project_name) : ""),
      el("td", { "data-f": "idf_version" }, r.image.idf_version || "—"),
      el("td", {}, `${(r.size / 1024).toFixed(1)} KiB`),
      el("td", {}, el("code", {}, r.sha256.slice(0, 16) + "…")),
      el("td", {}, fmtTime(r.created_at)),
      write ? el("td", {}, el("button", {
        type: "button", class: "danger", "aria-label": `Delete release ${r.version}`,
        onclick: async () => {
          if (!confirm(`Delete release ${r.version}?`)) return;
          try {
            await api("DELETE", tenantAPI(`${base}/releases/${encodeURIComponent(r.id)}`));
            loadReleases();
          } catch (err) {
            errBox.textContent = `${r.version}: ${err.message}`;
          }
        },
      }, "Delete")) : "")) : [el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No releases yet."))]));
    const sel = document.getElementById("ro-release");
    if (sel) sel.replaceChildren(...releases.map((r) => el("option", { value: r.id }, r.version)));
  } catch (err) {
    errBox.textContent = `Releases could not be loaded: ${err.message}`;
  }
}

// fmtSeconds says a duration in the largest whole unit: 600 → "10 min".
function fmtSeconds(s) {
  if (s % 86400 === 0) return `${s / 86400} d`;
  if (s % 3600 === 0) return `${s / 3600} h`;
  if (s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

// rolloutPolicy is the rules a rollout runs by: when it pauses itself and how stages wait.
function rolloutPolicy(r) {
  const parts = [`pauses above ${Math.round(r.failure_threshold * 100)}% failed`];
  if (r.stage_soak_seconds) parts.push(`each stage soaks ${fmtSeconds(r.stage_soak_seconds)}`);
  if (r.require_approval) parts.push("approval between stages");
  return parts.join(" · ");
}

function rolloutRow(r) {
  const t = r.totals || {};
  const total = Object.values(t).reduce((a, b) => a + b, 0);
  const done = (t.succeeded || 0) + (t.failed || 0) + (t.skipped || 0);
  const failed = t.failed || 0;
  // A finished rollout with failed devices must not read as a plain success.
  const outcome = r.state === "completed" && failed ? "failures" : "";
  const stateText = outcome ? `completed, ${failed} failed` : r.state;
  const actions = [];
  const act = (name, label) => el("button", {
    type: "button", "aria-label": `${label} rollout of ${r.version}`,
    onclick: async () => {
      try {
        await api("POST", tenantAPI(`rollouts/${encodeURIComponent(r.id)}/${name}`));
        loadRollouts();
      } catch (err) {
        errBox.textContent = `${r.version}: ${err.message}`;
      }
    },
  }, label);
  if (write && r.state === "active") actions.push(act("pause", "Pause"), act("abort", "Abort"));
  const awaiting = r.state === "paused" && r.pause_reason === "awaiting approval";
  if (write && r.state === "paused") actions.push(act("resume", awaiting ? "Approve next stage" : "Resume"), act("abort", "Abort"));
  const soaking = r.state === "active" && r.next_stage_at ? el("div", { class: "muted", "data-f": "soak" }, `stage done; next stage at ${fmtTime(r.next_stage_at)}`) : "";
  return el("tr", { "data-rollout": r.id },
    el("td", {}, r.version),
    el("td", {}, el("span", { class: `badge state-${outcome ? "completed-failures" : r.state}`, "data-state": r.state, "data-outcome": outcome || null }, stateText),
      r.pause_reason ? el("div", { class: "muted", "data-f": "pause-reason" }, r.pause_reason) : "", soaking),
    el("td", {}, `${r.current_stage + 1} of ${r.stages.length} (${r.stages[r.current_stage]}%)`,
      el("div", { class: "muted", "data-f": "policy" }, rolloutPolicy(r))),
    el("td", {}, el("progress", { class: failed ? "has-failures" : "", max: total || 1, value: done, "aria-label": `${done} of ${total} devices done` }),
      ` ${t.succeeded || 0} ok, ${failed} failed${t.skipped ? `, ${t.skipped} skipped` : ""}, ${total} devices`),
    el("td", {}, fmtTime(r.created_at)),
    write ? el("td", {}, actions) : "");
}

// fetchPages reads up to want items of a list, page after page (the API gives at most 500
// at once), and says whether more are left.
async function fetchPages(path, want) {
  const items = [];
  let cursor = "";
  do {
    const q = new URLSearchParams({ limit: String(Math.min(500, want - items.length)) });
    if (cursor) q.set("cursor", cursor);
    const page = await api("GET", tenantAPI(`${path}${path.includes("?") ? "&" : "?"}${q}`));
    items.push(...(page.items || []));
    cursor = page.next_cursor;
  } while (cursor && items.length < want);
  return { items, more: Boolean(cursor) };
}

// The rollouts come newest first; the first is the latest, whose devices are shown below.
async function loadRollouts() {
  const rows = document.getElementById("rollout-rows");
  try {
    const { items, more } = await fetchPages(`rollouts?project=${encodeURIComponent(id)}`, rolloutsShown);
    rows.replaceChildren(...(items.length ? items.map(rolloutRow) : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No rollouts yet."))]));
    document.getElementById("rollouts-more").hidden = !more;
    document.getElementById("rollouts-count").textContent = items.length
      ? `Showing the ${items.length} newest rollouts${more ? "; older ones follow with “Load older rollouts”" : ""}.` : "";
    const latest = items[0] || null;
    if (!latestRollout || !latest || latest.id !== latestRollout.id) rolloutDevicesShown = DEVICE_PAGE;
    latestRollout = latest;
    await loadRolloutDevices();
  } catch (err) {
    errBox.textContent = `Rollouts could not be loaded: ${err.message}`;
  }
}

async function loadRolloutDevices() {
  const rows = document.getElementById("rollout-device-rows");
  const title = document.getElementById("rollout-devices-title");
  const count = document.getElementById("rollout-devices-count");
  const more = document.getElementById("rollout-devices-more");
  if (!latestRollout) {
    more.hidden = true;
    return;
  }
  title.textContent = `Devices of the latest rollout (${latestRollout.version}, started ${fmtTime(latestRollout.created_at)})`;
  const { items, more: left } = await fetchPages(`rollouts/${encodeURIComponent(latestRollout.id)}/devices`, rolloutDevicesShown);
  const total = Object.values(latestRollout.totals || {}).reduce((a, b) => a + b, 0);
  const name = (did) => (projectDevices.get(did) || {}).name || did;
  rows.replaceChildren(...(items.length ? items.map((u) => el("tr", { "data-rollout-device": u.device_id },
    el("td", {}, el("a", { href: `/t/${tenant}/devices/${encodeURIComponent(u.device_id)}` }, name(u.device_id))),
    el("td", {}, el("span", { class: `badge state-${u.state}`, "data-state": u.state }, u.state)),
    // A skipped device downloaded nothing; a pending one has not started.
    el("td", { "data-f": "progress" }, u.state === "skipped" ? el("span", { class: "muted" }, "— (already on the version)")
      : [el("progress", { max: 100, value: u.progress || 0, "aria-label": `${name(u.device_id)}: ${u.progress || 0}% downloaded` }), ` ${u.progress || 0}%`]),
    el("td", {}, u.reason || ""),
    el("td", {}, fmtTime(u.updated_at)))) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No devices in this rollout."))]));
  more.hidden = !left;
  count.textContent = items.length ? `Showing ${items.length} of ${Math.max(total, items.length)} devices.` : "";
}

document.getElementById("rollouts-more").addEventListener("click", () => {
  rolloutsShown += ROLLOUT_PAGE;
  loadRollouts();
});
document.getElementById("rollout-devices-more").addEventListener("click", () => {
  rolloutDevicesShown += DEVICE_PAGE;
  loadRolloutDevices().catch((err) => { errBox.textContent = `Rollout devices could not be loaded: ${err.message}`; });
});

function projectDeviceRow(d) {
  const fw = (d.metadata && d.metadata.firmware_version) || "—";
  return el("tr", { "data-device": d.id },
    el("td", {}, el("span", { class: `badge ${d.online ? "online" : "offline"}`, "data-status": d.online ? "online" : "offline" }, d.online ? "online" : "offline")),
    el("td", {}, el("a", { href: `/t/${tenant}/devices/${encodeURIComponent(d.id)}` }, d.name)),
    el("td", { class: "fw", "data-firmware": fw }, fw),
    el("td", {}, d.tags.map((t) => el("span", { class: "tag" }, t))));
}

function renderProjectDevices() {
  const rows = document.getElementById("project-device-rows");
  const list = [...projectDevices.values()].sort((a, b) => a.name.localeCompare(b.name));
  rows.replaceChildren(...(list.length ? list.map(projectDeviceRow) : [el("tr", {}, el("td", { colspan: 4, class: "muted" }, "No device is linked to this project yet."))]));
}

async function loadProjectDevices() {
  try {
    const page = await api("GET", tenantAPI(`devices?project=${encodeURIComponent(id)}&limit=200`));
    projectDevices.clear();
    for (const d of page.items || []) projectDevices.set(d.id, d);
    renderProjectDevices();
  } catch (err) {
    errBox.textContent = `Devices could not be loaded: ${err.message}`;
  }
}

// The upload streams the file as the request body; XMLHttpRequest reports its progress.
const upload = document.getElementById("upload-form");
if (upload) {
  upload.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(upload);
    const done = upload.querySelector("[data-form-done]");
    done.textContent = "";
    const file = upload.elements.file.files[0];
    if (!file) return showError(upload, new ApiError(422, { error: { message: "invalid input", fields: { file: "choose a firmware image" } } }));
    const q = new URLSearchParams({ version: upload.elements.version.value.trim() });
    if (upload.elements.notes.value.trim()) q.set("notes", upload.elements.notes.value.trim());
    const bar = document.getElementById("upload-progress");
    const btn = upload.querySelector('button[type="submit"]');
    btn.disabled = true;
    bar.value = 0;
    const xhr = new XMLHttpRequest();
    xhr.open("POST", tenantAPI(`${base}/releases?${q}`));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    });
    xhr.addEventListener("loadend", () => {
      btn.disabled = false;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        bar.value = 100;
        const warnings = (body && body.warnings) || [];
        done.textContent = `Release ${body.version} uploaded.${warnings.length ? " Warnings: " + warnings.join("; ") : ""}`;
        toast(`Release ${body.version} uploaded`);
        const elf = upload.elements.elf && upload.elements.elf.files[0];
        if (elf) uploadELF(body, elf, done);
        upload.reset();
        loadReleases();
      } else {
        showError(upload, new ApiError(xhr.status, body || { error: { message: xhr.status ? `upload failed (HTTP ${xhr.status})` : "the upload was interrupted" } }));
      }
    });
    xhr.send(file);
  });
}

// The ELF file goes beside the stored release; the server refuses one from another build
// (its SHA-256 is not the image's), and the release stays either way.
async function uploadELF(release, file, done) {
  let res = null, body = null;
  try {
    res = await fetch(tenantAPI(`${base}/releases/${encodeURIComponent(release.id)}/elf`), {
      method: "PUT", body: file, credentials: "same-origin",
      headers: { "Content-Type": "application/octet-stream", Accept: "application/json", "X-CSRF-Token": csrfToken() },
    });
    body = await res.json().catch(() => null);
  } catch { /* reported below */ }
  if (res && res.ok) {
    done.textContent += " ELF file stored: crash reports of this release are symbolicated.";
  } else {
    showError(upload, new ApiError(res ? res.status : 0, body || { error: { message: "the ELF upload was interrupted" } }));
    done.textContent += " The ELF file was not stored.";
  }
}

const rolloutForm = document.getElementById("rollout-form");
if (rolloutForm) {
  rolloutForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(rolloutForm);
    const f = rolloutForm.elements;
    const target = { kind: f.kind.value };
    if (target.kind === "tag") target.tag = f.arg.value.trim();
    if (target.kind === "percent") target.percent = Number(f.arg.value);
    const body = { release_id: f.release_id.value, target };
    if (f.stages.value.trim()) body.stages = f.stages.value.split(",").map((s) => Number(s.trim()));
    if (f.failure_threshold.value.trim()) body.failure_threshold = Number(f.failure_threshold.value) / 100;
    if (f.soak.value.trim()) body.stage_soak_seconds = Math.round(Number(f.soak.value) * 60);
    if (f.approval.checked) body.require_approval = true;
    try {
      // Say what is about to happen, with the real count, before anything is sent.
      const pv = await api("POST", tenantAPI("rollouts/preview"), body);
      const who = { all: "every device of the project", tag: `the devices tagged “${target.tag}”`, percent: `${target.percent}% of the project's devices` }[target.kind];
      const stageNote = body.stages && body.stages.length > 1 ? ` The first stage updates ${pv.first_stage}.` : "";
      const skipNote = pv.already_running ? ` ${pv.already_running} already run it and are skipped.` : "";
      if (!confirm(`Start a rollout of ${pv.version} to ${who}: ${pv.devices} device${pv.devices === 1 ? "" : "s"}?${stageNote}${skipNote}`)) return;
      await api("POST", tenantAPI("rollouts"), body);
      toast("Rollout started");
      loadRollouts();
    } catch (err) {
      showError(rolloutForm, err);
    }
  });
}

await Promise.all([loadProject(), loadReleases(), loadProjectDevices()]);
await loadRollouts();
const variables = projectVariables(id);
let pending = null;
const later = () => {
  clearTimeout(pending);
  pending = setTimeout(loadRollouts, 300);
};
let pendingDevices = null;
const laterDevices = () => {
  clearTimeout(pendingDevices);
  pendingDevices = setTimeout(loadProjectDevices, 300);
};
liveEvents({
  rollout: later,
  device_update: later,
  presence(ev) {
    const d = projectDevices.get(ev.device_id);
    if (!d) return;
    d.online = ev.data.online;
    renderProjectDevices();
  },
  metadata(ev) {
    const d = projectDevices.get(ev.device_id);
    if (!d) return;
    d.metadata = Object.assign(d.metadata || {}, ev.data);
    renderProjectDevices();
  },
  device: laterDevices,
  config(ev) {
    if (!ev.device_id) variables.reload();
  },
  dropped() {
    later();
    laterDevices();
    variables.reload();
  },
});
