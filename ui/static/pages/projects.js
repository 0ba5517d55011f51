// The project list and creating a project.
import { api, el, fmtTime, tenantAPI } from "../api.js";

const tenant = document.body.dataset.tenant;
const errBox = document.getElementById("projects-error");

async function load() {
  const rows = document.getElementById("project-rows");
  try {
    const items = [];
    let cursor = "";
    do {
      const q = new URLSearchParams({ limit: "500" });
      if (cursor) q.set("cursor", cursor);
      const page = await api("GET", tenantAPI(`projects?${q}`));
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    rows.replaceChildren(...(items.length ? items.map((p) => el("tr", { "data-project": p.id },
      el("td", {}, el("a", { href: `/t/${tenant}/projects/${encodeURIComponent(p.id)}` }, p.name)),
      el("td", {}, el("code", {}, p.id)), el("td", {}, p.description || ""),
      el("td", {}, p.signing && p.signing.enabled ? "signed (Ed25519)" : "unsigned"),
      el("td", {}, fmtTime(p.created_at)))) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No projects yet."))]));
  } catch (err) {
    errBox.textContent = `Projects could not be loaded: ${err.message}`;
  }
}

const form = document.getElementById("project-form");
if (form) {
  form.addEventListener("api-success", (ev) => {
    location.assign(`/t/${tenant}/projects/${encodeURIComponent(ev.detail.id)}`);
  });
}
await load();
