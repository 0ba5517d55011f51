// The audit log, newest first, with filters and paging.
import { api, el, fmtTime, showError, tenantAPI } from "../api.js";

const rows = document.getElementById("audit-rows");
const more = document.getElementById("more");
const filter = document.getElementById("audit-filter");
const errBox = document.getElementById("audit-error");
let cursor = "";

function row(a) {
  return el("tr", {},
    el("td", {}, fmtTime(a.created_at)),
    el("td", {}, a.actor_user_id ? el("code", {}, a.actor_user_id) : "tenant token", a.actor_token_id ? el("span", { class: "muted" }, " via token") : ""),
    el("td", {}, el("code", {}, a.action)),
    el("td", {}, a.resource_type, a.resource_id ? " " : "", a.resource_id ? el("code", {}, a.resource_id) : ""),
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
