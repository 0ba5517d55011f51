// The audit log, newest first, with filters and paging.
import { api, el, fmtTime, showError, tenantAPI } from "../api.js";
import { projectNames } from "../projects.js";

const rows = document.getElementById("audit-rows");
const more = document.getElementById("more");
const filter = document.getElementById("audit-filter");
const errBox = document.getElementById("audit-error");
let cursor = "";

// Members and projects by ID, so rows name them; an unknown ID (a former member, a deleted
// project) is shown as it is.
const users = new Map();
try {
  let c = "";
  do {
    const page = await api("GET", tenantAPI(`members?limit=500${c ? "&cursor=" + c : ""}`));
    for (const m of page.items) users.set(m.user_id, m.name || m.email);
    c = page.next_cursor;
  } while (c);
} catch { /* IDs only */ }
const projects = await projectNames();

function actor(a) {
  if (!a.actor_user_id) return "tenant token";
  const name = users.get(a.actor_user_id);
  return name ? el("span", { title: a.actor_user_id }, name) : el("code", {}, a.actor_user_id);
}

function resource(a) {
  if (!a.resource_id) return a.resource_type;
  const name = a.resource_type === "project" ? projects.get(a.resource_id)
    : a.resource_type === "user" || a.resource_type === "member" ? users.get(a.resource_id) : (a.details && a.details.name);
  return [a.resource_type, " ", name ? el("span", { title: a.resource_id }, name) : el("code", {}, a.resource_id)];
}

function row(a) {
  return el("tr", {},
    el("td", {}, fmtTime(a.created_at)),
    el("td", {}, actor(a), a.actor_token_id ? el("span", { class: "muted" }, " via token") : ""),
    el("td", {}, el("code", {}, a.action)),
    el("td", {}, resource(a)),
    el("td", {}, a.remote_addr),
    el("td", { class: "details" }, a.details && Object.keys(a.details).length ? JSON.stringify(a.details) : ""));
}

async function load(append) {
  const q = new URLSearchParams({ limit: "50" });
  for (const input of filter.elements) if (input.name && input.value.trim()) q.set(input.name, input.value.trim());
  if (append && cursor) q.set("cursor", cursor);
  try {
    const page = await api("GET", tenantAPI(`audit?${q}`));
    errBox.textContent = "";
    if (!append) rows.replaceChildren();
    rows.append(...page.items.map(row));
    if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "Nothing recorded.")));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  } catch (err) {
    showError(filter, err, errBox);
  }
}

filter.addEventListener("submit", (ev) => {
  ev.preventDefault();
  load(false);
});
more.addEventListener("click", () => load(true));
await load(false);
