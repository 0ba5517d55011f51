// The tenant's error groups: filters, resolve and reopen.
import { api, can, el, fmtTime, pagedTable, tenantAPI } from "../api.js";
import { fillProjectSelect } from "../projects.js";

const tenant = document.body.dataset.tenant;
const rows = document.getElementById("error-group-rows");
const filter = document.getElementById("error-filter");
const errBox = document.getElementById("errors-error");
const more = document.getElementById("more");
const write = can("devices:write");

const params = new URLSearchParams(location.search);
await fillProjectSelect(filter.elements.project, params.get("project") || "");
for (const input of filter.elements) if (input.name && params.has(input.name)) input.value = params.get(input.name);

function query() {
  const q = new URLSearchParams();
  for (const input of filter.elements) if (input.name && input.value.trim()) q.set(input.name, input.value.trim());
  return q;
}

export function stateBadge(g) {
  const st = g.resolved ? "resolved" : "open";
  return el("span", { class: `badge state-${st}`, "data-state": st }, st);
}

function row(g) {
  const tr = el("tr", { "data-group": g.id });
  const act = (name, label) => el("button", {
    type: "button", "aria-label": `${label} ${g.type}: ${g.message}`,
    onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        const ng = await api("POST", tenantAPI(`errors/${encodeURIComponent(g.id)}/${name}`));
        tr.replaceWith(row(ng));
      } catch (err) {
        errBox.textContent = `${g.type}: ${err.message}`;
        ev.target.disabled = false;
      }
    },
  }, label);
  tr.append(
    el("td", {}, el("a", { href: `/t/${tenant}/errors/${encodeURIComponent(g.id)}` }, el("strong", {}, g.type)), " ", g.message),
    el("td", {}, g.firmware_version || "—"),
    el("td", {}, String(g.count)),
    el("td", {}, fmtTime(g.first_seen)),
    el("td", {}, fmtTime(g.last_seen)),
    el("td", {}, stateBadge(g)),
    write ? el("td", {}, g.resolved ? act("reopen", "Reopen") : act("resolve", "Resolve")) : "",
  );
  return tr;
}

const loadPage = pagedTable({ rows, more, filter, errBox, route: "errors", query, row, empty: "No errors match.", colspan: 7 });

async function load(append) {
  const err = await loadPage(append);
  if (err && !Object.keys(err.fields || {}).length) errBox.textContent = `Errors could not be loaded: ${err.message}`;
}

filter.addEventListener("submit", (ev) => {
  ev.preventDefault();
  history.replaceState(null, "", "?" + query());
  load(false);
});
load(false);
