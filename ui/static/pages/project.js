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
      el("td", {}, el("strong", {}, r.version), r.notes ? el("div", { class: "muted" }, r.notes) : ""),
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

function rolloutRow(r) {
  const t = r.totals || {};
  const total = Object.values(t).reduce((a, b) => a + b, 0);
  const done = (t.succeeded || 0) + (t.failed || 0) + (t.rolled_back || 0);
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
  if (write && r.state === "paused") actions.push(act("resume", "Resume"), act("abort", "Abort"));
  return el("tr", { "data-rollout": r.id },
    el("td", {}, r.version),
    el("td", {}, el("span", { class: `badge state-${r.state}`, "data-state": r.state }, r.state), r.pause_reason ? el("div", { class: "muted" }, r.pause_reason) : ""),
    el("td", {}, `${r.current_stage + 1} of ${r.stages.length} (${r.stages[r.current_stage]}%)`),
    el("td", {}, el("progress", { max: total || 1, value: done, "aria-label": `${done} of ${total} devices done` }),
      ` ${t.succeeded || 0} ok, ${t.failed || 0} failed, ${total} devices`),
    el("td", {}, fmtTime(r.created_at)),
    write ? el("td", {}, actions) : "");
}

async function loadRollouts() {
  const rows = document.getElementById("rollout-rows");
  try {
    const page = await api("GET", tenantAPI(`rollouts?project=${encodeURIComponent(id)}&limit=50`));
    const items = (page.items || []).filter((r) => r.project_id === id);
    rows.replaceChildren(...(items.length ? items.map(rolloutRow) : [el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No rollouts yet."))]));
    latestRollout = items.length ? items.reduce((a, b) => (a.created_at > b.created_at ? a : b)) : null;
    await loadRolloutDevices();
  } catch (err) {
    errBox.textContent = `Rollouts could not be loaded: ${err.message}`;
  }
}

async function loadRolloutDevices() {
  const rows = document.getElementById("rollout-device-rows");
  if (!latestRollout) return;
  const page = await api("GET", tenantAPI(`rollouts/${encodeURIComponent(latestRollout.id)}/devices?limit=100`));
  const items = page.items || [];
  const name = (did) => (projectDevices.get(did) || {}).name || did;
  rows.replaceChildren(...(items.length ? items.map((u) => el("tr", { "data-rollout-device": u.device_id },
    el("td", {}, el("a", { href: `/t/${tenant}/devices/${encodeURIComponent(u.device_id)}` }, name(u.device_id))),
    el("td", {}, el("span", { class: `badge state-${u.state}`, "data-state": u.state }, u.state)),
    el("td", {}, el("progress", { max: 100, value: u.progress || 0, "aria-label": `${name(u.device_id)}: ${u.progress || 0}% downloaded` }), ` ${u.progress || 0}%`),
    el("td", {}, u.reason || ""),
    el("td", {}, fmtTime(u.updated_at)))) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No devices in this rollout."))]));
}

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
    try {
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
