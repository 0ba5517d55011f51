// The tenant's projects by ID, so pages show and pick projects by name, never by raw ID.
import { api, el, tenantAPI } from "./api.js";

let cached = null;

// projectNames resolves to a Map from project ID to name (every page of the project list).
export function projectNames() {
  if (!cached) {
    cached = (async () => {
      const names = new Map();
      let cursor = "";
      do {
        const page = await api("GET", tenantAPI(`projects?limit=500${cursor ? "&cursor=" + cursor : ""}`));
        for (const p of page.items) names.set(p.id, p.name);
        cursor = page.next_cursor;
      } while (cursor);
      return names;
    })().catch(() => new Map()); // a caller without projects:read still gets IDs
  }
  return cached;
}

// projectLabel is a project's name, or its ID when it is unknown (deleted, not readable).
export function projectLabel(names, id) {
  return id ? names.get(id) || id : "—";
}

// fillProjectSelect fills a <select> with the projects by name after its first option (the
// "none" or "any" choice written in the page), and selects value.
export async function fillProjectSelect(select, value = "") {
  const names = await projectNames();
  const sorted = [...names].sort((a, b) => a[1].localeCompare(b[1]));
  select.replaceChildren(select.options[0], ...sorted.map(([id, name]) => el("option", { value: id }, name)));
  if (value && !names.has(value)) select.append(el("option", { value }, value));
  select.value = value;
}
