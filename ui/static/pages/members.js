// Members and their roles; invitations with the copyable link.
import { api, can, el, fmtTime, tenantAPI, toast } from "../api.js";

const manage = can("members:manage");
const errBox = document.getElementById("members-error");
const myRole = document.querySelector(".tenant-switch .role")?.textContent.replace(/[()]/g, "") || "";
const roles = ["viewer", "developer", "admin", "owner"];

async function all(path) {
  const items = [];
  let cursor = "";
  do {
    const q = new URLSearchParams({ limit: "500" });
    if (cursor) q.set("cursor", cursor);
    const page = await api("GET", tenantAPI(`${path}?${q}`));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

function memberRow(m) {
  const tr = el("tr", { "data-member": m.email });
  tr.append(el("td", {}, m.name || "—"), el("td", {}, m.email));
  if (manage && (myRole === "owner" || m.role !== "owner")) {
    const id = `role-${m.user_id}`;
    const sel = el("select", { id, "aria-label": `Role of ${m.email}` },
      roles.filter((r) => r !== "owner" || myRole === "owner").map((r) => el("option", { value: r, selected: r === m.role }, r)));
    sel.addEventListener("change", async () => {
      errBox.textContent = "";
      try {
        await api("PATCH", tenantAPI(`members/${encodeURIComponent(m.user_id)}`), { role: sel.value });
        toast(`${m.email} is now ${sel.value}`);
        m.role = sel.value;
      } catch (err) {
        errBox.textContent = `${m.email}: ${err.message}`;
        sel.value = m.role;
      }
    });
    tr.append(el("td", {}, sel));
  } else {
    tr.append(el("td", {}, m.role));
  }
  tr.append(el("td", {}, fmtTime(m.joined_at)));
  if (manage) {
    const canRemove = myRole === "owner" || m.role !== "owner";
    tr.append(el("td", {}, canRemove ? el("button", {
      type: "button", class: "danger",
      onclick: async () => {
        if (!confirm(`Remove ${m.email} from this tenant?`)) return;
        try {
          await api("DELETE", tenantAPI(`members/${encodeURIComponent(m.user_id)}`));
          tr.remove();
        } catch (err) {
          errBox.textContent = `${m.email}: ${err.message}`;
        }
      },
    }, "Remove") : ""));
  }
  return tr;
}

async function loadMembers() {
  try {
    const items = await all("members");
    document.getElementById("member-rows").replaceChildren(...items.map(memberRow));
  } catch (err) {
    errBox.textContent = `Members could not be loaded: ${err.message}`;
  }
}

function invitationRow(inv) {
  return el("tr", {},
    el("td", {}, inv.email), el("td", {}, inv.role), el("td", {}, inv.status), el("td", {}, fmtTime(inv.expires_at)),
    el("td", {}, inv.status === "pending" ? el("button", {
      type: "button", class: "danger",
      onclick: async () => {
        try {
          await api("DELETE", tenantAPI(`invitations/${encodeURIComponent(inv.id)}`));
          loadInvitations();
        } catch (err) {
          errBox.textContent = `${inv.email}: ${err.message}`;
        }
      },
    }, "Revoke") : ""));
}

async function loadInvitations() {
  const rows = document.getElementById("invitation-rows");
  if (!rows) return;
  try {
    const items = await all("invitations");
    rows.replaceChildren(...(items.length ? items.map(invitationRow) : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No invitations."))]));
  } catch (err) {
    errBox.textContent = `Invitations could not be loaded: ${err.message}`;
  }
}

const form = document.getElementById("invite-form");
if (form) {
  form.addEventListener("api-success", (ev) => {
    const res = ev.detail;
    document.getElementById("invite-link").value = res.link;
    document.getElementById("invite-mailed").textContent = res.email_sent ? `The link was mailed to ${res.email}.` : "Mail is not configured, so nothing was sent.";
    const box = document.getElementById("invite-result");
    box.hidden = false;
    box.focus();
    form.reset();
    loadInvitations();
  });
}

await Promise.all([loadMembers(), loadInvitations()]);
