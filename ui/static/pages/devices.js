// The device list: filters, sorting, the total, live status, bulk commands (to the selected
// devices or to every device matching the filter), CSV export and adding a device.
import { ApiError, api, ago, can, clearErrors, csrfToken, el, showError, tenantAPI, toast } from "../api.js";
import { liveEvents } from "../live.js";
import { provisioningDownloads } from "../bundle.js";
import { fillProjectSelect, projectLabel, projectNames } from "../projects.js";

const tenant = document.body.dataset.tenant;
const rows = document.getElementById("device-rows");
const more = document.getElementById("more");
const listError = document.getElementById("list-error");
const filter = document.getElementById("device-filter");
const selectable = can("commands:write") || can("devices:write") || can("config:write");
const selected = new Set();
const shown = new Map();
let cursor = "";
let total = 0;
// allMatching: the selection is every device matching the filter, not only the rows shown.
let allMatching = false;
const totalBox = document.getElementById("device-total");
const exportLink = document.getElementById("export-csv");
const names = await projectNames();

// The filter form starts from the URL, so a filtered, sorted list can be bookmarked. The old
// online=true/false form still works.
const params = new URLSearchParams(location.search);
if (params.has("online") && !params.has("status")) params.set("status", params.get("online") === "true" ? "online" : "offline");
await fillProjectSelect(filter.elements.project, params.get("project") || "");
for (const input of filter.elements) if (input.name && params.has(input.name)) input.value = params.get(input.name);

function query() {
  const q = new URLSearchParams();
  for (const input of filter.elements) if (input.name && input.value.trim()) q.set(input.name, input.value.trim());
  return q;
}

// filterTarget is the current filter as a command target's filter (no order).
function filterTarget() {
  const f = Object.fromEntries(query());
  delete f.sort;
  return f;
}

// Sorting: a header click sorts by its column, a second click reverses.
function showSort() {
  const sort = filter.elements.sort.value;
  for (const th of document.querySelectorAll("th[data-sort]")) {
    const col = th.dataset.sort;
    th.setAttribute("aria-sort", sort === col ? "ascending" : sort === "-" + col ? "descending" : "none");
  }
}
for (const th of document.querySelectorAll("th[data-sort]")) {
  th.querySelector("button").addEventListener("click", () => {
    const col = th.dataset.sort;
    filter.elements.sort.value = filter.elements.sort.value === col ? "-" + col : col;
    history.replaceState(null, "", "?" + query());
    load(false);
  });
}

function statusBadge(d) {
  return el("span", { class: `badge ${d.online ? "online" : "offline"}`, "data-status": d.online ? "online" : "offline" },
    d.disabled ? "disabled" : d.online ? "online" : "offline");
}

function row(d) {
  const tr = el("tr", { "data-device": d.id });
  if (selectable) {
    tr.append(el("td", {}, el("input", {
      type: "checkbox", "aria-label": `Select ${d.name}`, checked: selected.has(d.id),
      onchange: (ev) => {
        ev.target.checked ? selected.add(d.id) : selected.delete(d.id);
        allMatching = false;
        updateBulk();
      },
    })));
  }
  tr.append(
    el("td", { class: "status" }, statusBadge(d)),
    el("td", {}, el("a", { href: `/t/${tenant}/devices/${encodeURIComponent(d.id)}` }, d.name)),
    el("td", {}, el("code", {}, d.id)),
    el("td", { class: "project" }, d.project_id
      ? el("a", { href: `/t/${tenant}/projects/${encodeURIComponent(d.project_id)}` }, projectLabel(names, d.project_id)) : "—"),
    el("td", { class: "fw" }, (d.metadata && d.metadata.firmware_version) || "—"),
    el("td", { class: "tags" }, d.tags.map((t) => el("span", { class: "tag" }, t))),
    el("td", { class: "seen" }, d.online ? "now" : ago(d.last_seen_at)),
  );
  return tr;
}

async function load(append) {
  const q = query();
  q.set("limit", "50");
  if (append && cursor) q.set("cursor", cursor);
  try {
    const page = await api("GET", tenantAPI("devices?" + q));
    listError.textContent = "";
    filter.querySelectorAll("[data-error-for]").forEach((e) => (e.textContent = ""));
    if (!append) {
      rows.replaceChildren();
      shown.clear();
    }
    for (const d of page.items) {
      shown.set(d.id, d);
      rows.append(row(d));
    }
    if (!shown.size) rows.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No devices match.")));
    cursor = page.next_cursor;
    total = page.total;
    more.hidden = !cursor;
    more.textContent = `Show ${Math.min(50, total - shown.size)} more`;
    totalBox.textContent = `Showing ${shown.size} of ${total} device${total === 1 ? "" : "s"}.`;
    totalBox.dataset.total = total;
    const eq = query();
    eq.delete("cursor");
    exportLink.href = tenantAPI("devices/export.csv?" + eq);
    showSort();
    updateBulk();
  } catch (err) {
    showError(filter, err, listError);
    if (!Object.keys(err.fields).length) listError.textContent = `Devices could not be loaded: ${err.message}`;
  }
}

filter.addEventListener("submit", (ev) => {
  ev.preventDefault();
  // A new filter starts a new selection: "all matching" must mean what is shown.
  selected.clear();
  allMatching = false;
  const all = document.getElementById("select-all");
  if (all) all.checked = false;
  history.replaceState(null, "", "?" + query());
  load(false);
});
more.addEventListener("click", () => load(true));

// Bulk commands.
const bulk = document.getElementById("bulk");
const selectMatching = document.getElementById("select-matching");
const selectedCount = () => (allMatching ? total : selected.size);
function updateBulk() {
  if (!bulk) return;
  const n = selectedCount();
  document.getElementById("bulk-count").textContent = allMatching ? `All ${n} matching selected` : `${n} selected`;
  bulk.querySelectorAll("[data-bulk]").forEach((b) => (b.disabled = n === 0));
  // Tagging edits devices one by one: it works on the loaded rows, not on a whole filter.
  bulk.querySelectorAll('[data-bulk="tag"],[data-bulk="untag"]').forEach((b) => {
    if (allMatching) b.disabled = true;
    b.title = allMatching ? "Tagging works on the selected rows; clear “all matching” first" : "";
  });
  const everyShown = shown.size > 0 && [...shown.keys()].every((id) => selected.has(id));
  selectMatching.hidden = !(allMatching || (everyShown && total > shown.size));
  selectMatching.textContent = allMatching ? "Clear selection" : `Select all ${total} matching`;
}
if (bulk) {
  document.getElementById("select-all").addEventListener("change", (ev) => {
    for (const id of shown.keys()) ev.target.checked ? selected.add(id) : selected.delete(id);
    rows.querySelectorAll('input[type="checkbox"]').forEach((c) => (c.checked = ev.target.checked));
    allMatching = false;
    updateBulk();
  });
  selectMatching.addEventListener("click", () => {
    if (allMatching) {
      allMatching = false;
      selected.clear();
      document.getElementById("select-all").checked = false;
      rows.querySelectorAll('input[type="checkbox"]').forEach((c) => (c.checked = false));
    } else {
      allMatching = true;
    }
    updateBulk();
  });
  const errBox = document.getElementById("bulk-error");
  const doneBox = document.getElementById("bulk-done");
  bulk.addEventListener("click", async (ev) => {
    const b = ev.target.closest("[data-bulk]");
    if (!b || ["tag", "untag"].includes(b.dataset.bulk)) return;
    errBox.textContent = doneBox.textContent = "";
    const kind = b.dataset.bulk;
    const n = selectedCount();
    const target = allMatching ? { filter: filterTarget() } : { device_ids: [...selected] };
    const devices = `${n} device${n === 1 ? "" : "s"}`;
    if (kind === "restart" &&
      !confirm(`Restart ${devices}? Each one reboots at once and is offline until it has started again; offline devices restart when they reconnect.`)) return;
    b.disabled = true;
    try {
      if (kind === "config-push") {
        const res = await api("POST", tenantAPI("config/push"), { target });
        const failed = (res.devices || []).filter((d) => d.error);
        doneBox.textContent = `Configuration pushed to ${(res.devices || []).length - failed.length} device(s).`;
        if (failed.length) errBox.textContent = failed.map((d) => `${d.device_id}: ${d.error}`).join("; ");
        return;
      }
      const body = kind === "restart"
        ? { name: "restart", params: { reason: "bulk restart from the web UI" } }
        : { name: "debug", params: { enabled: kind === "debug-on" } };
      body.target = target;
      const res = await api("POST", tenantAPI("commands"), body);
      const sent = res.items || [];
      const queued = sent.filter((c) => c.state === "queued").length;
      doneBox.textContent = `${body.name} sent to ${sent.length} device(s)` +
        (queued ? `; ${queued} offline: queued until the device connects.` : ".");
    } catch (err) {
      errBox.textContent = err.fields && Object.keys(err.fields).length
        ? Object.entries(err.fields).map(([k, v]) => `${k} ${v}`).join("; ") : err.message;
    } finally {
      b.disabled = selectedCount() === 0;
    }
  });
  // Tagging changes each selected device's tags (PATCH per device), reporting every failure.
  const tagForm = document.getElementById("bulk-tag-form");
  const retag = async (remove) => {
    errBox.textContent = doneBox.textContent = "";
    clearErrors(tagForm);
    const tag = tagForm.elements.tag.value.trim();
    if (!tag) return showError(tagForm, { message: "invalid input", fields: { tags: "is required" } });
    const failures = [];
    let changed = 0;
    tagForm.setAttribute("aria-busy", "true");
    for (const id of selected) {
      const d = shown.get(id);
      if (!d) continue;
      const tags = remove ? d.tags.filter((t) => t !== tag) : [...new Set([...d.tags, tag])];
      if (tags.length === d.tags.length && tags.every((t, i) => t === d.tags[i])) continue;
      try {
        const nd = await api("PATCH", tenantAPI(`devices/${encodeURIComponent(id)}`), { tags });
        shown.set(id, Object.assign(d, { tags: nd.tags }));
        const tr = rows.querySelector(`tr[data-device="${CSS.escape(id)}"]`);
        if (tr) tr.querySelector(".tags").replaceChildren(...nd.tags.map((t) => el("span", { class: "tag" }, t)));
        changed++;
      } catch (err) {
        const f = err.fields && (err.fields.tags || Object.values(err.fields)[0]);
        failures.push(`${d.name}: ${f ? `tag ${f}` : err.message}`);
      }
    }
    tagForm.removeAttribute("aria-busy");
    doneBox.textContent = `${remove ? "Removed" : "Added"} tag ${tag} ${remove ? "from" : "to"} ${changed} device(s).`;
    if (failures.length) errBox.textContent = failures.join("; ");
  };
  tagForm?.addEventListener("submit", (ev) => {
    ev.preventDefault();
    retag(false);
  });
  tagForm?.querySelector('[data-bulk="untag"]').addEventListener("click", () => retag(true));
}

// Adding a device: the secret and the bundle are shown once.
const createForm = document.getElementById("create-device-form");
if (createForm) {
  await fillProjectSelect(createForm.elements.project_id);
  createForm.addEventListener("api-success", (ev) => {
    const d = ev.detail;
    const box = document.getElementById("created-device");
    box.querySelector('[data-f="name"]').textContent = d.name;
    box.querySelector('[data-f="id"]').textContent = d.id;
    box.querySelector('[data-f="secret"]').textContent = d.secret;
    const link = box.querySelector('[data-f="link"]');
    link.href = `/t/${tenant}/devices/${encodeURIComponent(d.id)}`;
    document.getElementById("bundle-downloads").replaceChildren(...provisioningDownloads(d));
    box.hidden = false;
    box.focus();
    createForm.reset();
    load(false);
  });
}

// Bulk provisioning: the CSV goes as is; the answer is a zip, or the lines to fix.
const bulkForm = document.getElementById("bulk-create-form");
if (bulkForm) {
  bulkForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(bulkForm);
    const list = document.getElementById("bulk-create-errors");
    const done = document.getElementById("bulk-created");
    list.replaceChildren();
    done.hidden = true;
    const file = bulkForm.elements.file.files[0];
    if (!file) return showError(bulkForm, new ApiError(422, { error: { message: "invalid input", fields: { file: "choose a CSV file" } } }));
    bulkForm.setAttribute("aria-busy", "true");
    try {
      const res = await fetch(tenantAPI("devices/bulk"), {
        method: "POST", credentials: "same-origin", body: file,
        headers: { "Content-Type": "text/csv", "X-CSRF-Token": csrfToken(), Accept: "application/zip, application/json" },
      });
      if (!res.ok) throw new ApiError(res.status, await res.json().catch(() => null));
      const blob = await res.blob();
      const n = Number((res.headers.get("Content-Disposition") || "").match(/devices-(\d+)\.zip/)?.[1] || 0);
      const a = document.getElementById("bulk-download");
      if (a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
      a.href = URL.createObjectURL(blob);
      a.download = `espadmin-devices-${n}.zip`;
      done.querySelector('[data-f="count"]').textContent = String(n);
      done.hidden = false;
      bulkForm.reset();
      load(false);
    } catch (err) {
      const lines = Object.entries(err.fields || {}).map(([field, msg]) => {
        const m = field.match(/^lines\[(\d+)\](?:\.(.+))?$/);
        return m ? [Number(m[1]), `Line ${m[1]}: ${m[2] ? m[2].replace(/\[\d+\]$/, "") + " " : ""}${msg}`] : [0, `${field === "csv" ? "The file" : field} ${msg}`];
      }).sort((a, b) => a[0] - b[0]);
      bulkForm.querySelector("[data-form-error]").textContent = lines.length ? "Nothing was created. Fix these lines and upload again:" : err.message;
      list.replaceChildren(...lines.map(([, text]) => el("li", {}, text)));
    } finally {
      bulkForm.removeAttribute("aria-busy");
    }
  });
}

await load(false);
let pending = null;
const reload = () => {
  clearTimeout(pending);
  pending = setTimeout(() => load(false), 300);
};
liveEvents({
  presence(ev) {
    const d = shown.get(ev.device_id);
    if (!d) return;
    d.online = ev.data.online;
    if (!d.online) d.last_seen_at = ev.at;
    const tr = rows.querySelector(`tr[data-device="${CSS.escape(d.id)}"]`);
    if (tr) {
      tr.querySelector(".status").replaceChildren(statusBadge(d));
      tr.querySelector(".seen").textContent = d.online ? "now" : ago(d.last_seen_at);
    }
    toast(`${d.name} is ${d.online ? "online" : "offline"}`);
  },
  metadata(ev) {
    const d = shown.get(ev.device_id);
    if (!d) return;
    const tr = rows.querySelector(`tr[data-device="${CSS.escape(d.id)}"]`);
    if (tr && ev.data.firmware_version) tr.querySelector(".fw").textContent = ev.data.firmware_version;
  },
  device: reload,
  dropped: reload,
});
