// API tokens: list, create (the secret is shown once), revoke.
import { api, el, fmtTime, tenantAPI } from "../api.js";

const errBox = document.getElementById("tokens-error");

function tokenRow(t) {
  return el("tr", {},
    el("td", {}, t.name), el("td", {}, t.kind), el("td", {}, el("code", {}, t.prefix)),
    el("td", {}, t.scopes.join(", ")), el("td", {}, t.expires_at ? fmtTime(t.expires_at) : "never"),
    el("td", {}, t.last_used_at ? fmtTime(t.last_used_at) : "never"),
    el("td", {}, el("button", {
      type: "button", class: "danger",
      onclick: async () => {
        if (!confirm(`Revoke the token "${t.name}"? Scripts using it stop working.`)) return;
        try {
          await api("DELETE", tenantAPI(`tokens/${encodeURIComponent(t.id)}`));
          load();
        } catch (err) {
          errBox.textContent = `${t.name}: ${err.message}`;
        }
      },
    }, "Revoke")));
}

async function load() {
  const rows = document.getElementById("token-rows");
  try {
    const items = [];
    let cursor = "";
    do {
      const q = new URLSearchParams({ limit: "500" });
      if (cursor) q.set("cursor", cursor);
      const page = await api("GET", tenantAPI(`tokens?${q}`));
      items.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    rows.replaceChildren(...(items.length ? items.map(tokenRow) : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No tokens."))]));
  } catch (err) {
    errBox.textContent = `Tokens could not be loaded: ${err.message}`;
  }
}

const form = document.getElementById("token-form");
form.addEventListener("api-success", (ev) => {
  document.getElementById("token-secret").value = ev.detail.token;
  const box = document.getElementById("token-result");
  box.hidden = false;
  box.focus();
  form.reset();
  load();
});

await load();
