// The audit log, newest first, with filters and paging.
import { api, el, fmtTime, pagedTable, tenantAPI } from "../api.js";
import { projectNames } from "../projects.js";

const rows = document.getElementById("audit-rows");
const more = document.getElementById("more");
const filter = document.getElementById("audit-filter");
const errBox = document.getElementById("audit-error");

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

const load = pagedTable({
  rows, more, filter, errBox, route: "audit", row, empty: "Nothing recorded.", colspan: 6,
  query() {
    const q = new URLSearchParams();
    for (const input of filter.elements) if (input.name && input.value.trim()) q.set(input.name, input.value.trim());
    return q;
  },
});

filter.addEventListener("submit", (ev) => {
  ev.preventDefault();
  load(false);
});
await load(false);
