// Alerts: the history with acknowledgement, this browser's push subscription, and for
// administrators the rules and channels (create, edit, delete, test) and the delivery log
// with resend.
import { api, can, clearErrors, el, fmtTime, pagedTable, showError, tenantAPI, toast } from "../api.js";

const rows = document.getElementById("alert-rows");
const more = document.getElementById("more");
const filter = document.getElementById("alert-filter");
const errBox = document.getElementById("alerts-error");

function alertRow(a) {
  const ack = el("td", {});
  if (!a.acknowledged_at) {
    const b = el("button", { type: "button", class: "small", "data-ack": a.id }, "Acknowledge");
    b.addEventListener("click", async () => {
      try {
        await api("POST", tenantAPI(`alerts/${encodeURIComponent(a.id)}/acknowledge`));
        toast("Alert acknowledged.");
        load(false);
      } catch (err) {
        showError(filter, err, errBox);
      }
    });
    ack.append(b);
  }
  const subjects = a.subjects.slice(0, 5).join(", ") + (a.subjects.length > 5 ? ` and ${a.subjects.length - 5} more` : "");
  return el("tr", { "data-alert": a.id },
    el("td", {}, fmtTime(a.fired_at)),
    el("td", {}, a.summary),
    el("td", {}, subjects),
    el("td", {}, el("span", { class: `badge state-${a.state}` }, a.state)),
    el("td", {}, a.acknowledged_at ? `${fmtTime(a.acknowledged_at)} by ${a.acknowledged_by}` : "—"),
    ack);
}

const load = pagedTable({
  rows, more, filter, errBox, route: "alerts", row: alertRow, empty: "No alerts.", colspan: 6,
  query() {
    const q = new URLSearchParams();
    if (filter.elements.state.value) q.set("state", filter.elements.state.value);
    return q;
  },
});

filter.addEventListener("submit", (ev) => {
  ev.preventDefault();
  load(false);
});

// --- This browser's push subscription ---
const pushState = document.getElementById("push-state");
const pushOn = document.getElementById("push-enable");
const pushOff = document.getElementById("push-disable");

function b64urlToBytes(s) {
  const pad = "=".repeat((4 - (s.length % 4)) % 4);
  const bin = atob((s + pad).replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function pushRegistration() {
  return navigator.serviceWorker.register("/sw.js", { scope: "/" });
}

async function showPush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window) || !("Notification" in window)) {
    pushState.textContent = "This browser cannot receive push notifications.";
    return;
  }
  if (Notification.permission === "denied") {
    pushState.textContent = "Notifications are blocked for this site; allow them in the browser's site settings.";
    return;
  }
  const reg = await pushRegistration();
  const sub = await reg.pushManager.getSubscription();
  pushState.textContent = sub ? "This browser receives the alerts of push channels." : "This browser does not receive alert notifications.";
  pushOn.hidden = !!sub;
  pushOff.hidden = !sub;
}

pushOn.addEventListener("click", async () => {
  try {
    const perm = await Notification.requestPermission();
    if (perm !== "granted") {
      pushState.textContent = perm === "denied" ? "Notifications were blocked." : "Notifications were not allowed.";
      return;
    }
    const { public_key: key } = await api("GET", tenantAPI("alerts/push/key"));
    const reg = await pushRegistration();
    pushState.textContent = "Asking the browser's push service…";
    // A browser without a reachable push service may never answer; give up after a while.
    const sub = await Promise.race([
      reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64urlToBytes(key) }),
      new Promise((_, reject) => setTimeout(() => reject(new Error("the browser's push service did not answer")), 15000)),
    ]);
    await api("POST", tenantAPI("alerts/push/subscriptions"), sub.toJSON());
    toast("This browser will be notified.");
  } catch (err) {
    pushState.textContent = `Subscribing failed: ${err.message}`;
    return;
  }
  showPush();
});

pushOff.addEventListener("click", async () => {
  try {
    const reg = await pushRegistration();
    const sub = await reg.pushManager.getSubscription();
    if (sub) {
      await api("DELETE", tenantAPI("alerts/push/subscriptions"), { endpoint: sub.endpoint }).catch(() => {});
      await sub.unsubscribe();
    }
  } catch (err) {
    pushState.textContent = `Unsubscribing failed: ${err.message}`;
    return;
  }
  showPush();
});

// --- Administration ---
async function loadRules() {
  const body = document.getElementById("rule-rows");
  const page = await api("GET", tenantAPI("alerts/rules?limit=500"));
  body.replaceChildren(...page.items.map((r) => {
    const del = el("button", { type: "button", class: "small danger" }, "Delete");
    del.addEventListener("click", async () => {
      await api("DELETE", tenantAPI(`alerts/rules/${encodeURIComponent(r.id)}`));
      loadRules();
    });
    const edit = el("button", { type: "button", class: "small", "data-edit": r.id }, "Edit");
    edit.addEventListener("click", () => ruleEditor.edit(r));
    const p = r.params || {};
    const params = [p.count ? `${p.count}×` : "", p.minutes ? `${p.minutes} min` : "", (p.states || []).join("/")].filter(Boolean).join(" ");
    return el("tr", {}, el("td", {}, r.name), el("td", {}, `${r.kind} ${params}`),
      el("td", {}, [r.project_id && `project ${r.project_id}`, r.tag && `tag ${r.tag}`, r.device_id && `device ${r.device_id}`].filter(Boolean).join(", ") || "all devices"),
      el("td", {}, r.channel_ids.join(", ")), el("td", {}, `${r.cooldown_seconds} s` + (r.enabled ? "" : " (disabled)")), el("td", {}, edit, " ", del));
  }));
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 6, class: "muted" }, "No rules yet.")));
}

async function loadChannels() {
  const body = document.getElementById("channel-rows");
  const page = await api("GET", tenantAPI("alerts/channels?limit=500"));
  body.replaceChildren(...page.items.map((c) => {
    const test = el("button", { type: "button", class: "small" }, "Send test");
    test.addEventListener("click", async () => {
      await api("POST", tenantAPI(`alerts/channels/${encodeURIComponent(c.id)}/test`));
      toast("Test queued; see the delivery log.");
      loadDeliveries();
    });
    const edit = el("button", { type: "button", class: "small", "data-edit": c.id }, "Edit");
    edit.addEventListener("click", () => channelEditor.edit(c));
    const del = el("button", { type: "button", class: "small danger" }, "Delete");
    del.addEventListener("click", async () => {
      await api("DELETE", tenantAPI(`alerts/channels/${encodeURIComponent(c.id)}`));
      loadChannels();
    });
    return el("tr", {}, el("td", {}, el("code", {}, c.id)), el("td", {}, c.name),
      el("td", {}, c.kind + (c.preset && c.preset !== "standard" ? ` (${c.preset})` : "") + (c.enabled ? "" : " (disabled)")),
      el("td", {}, c.target || "members' browsers"), el("td", {}, test, " ", edit, " ", del));
  }));
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No channels yet.")));
}

async function loadDeliveries() {
  const body = document.getElementById("delivery-rows");
  const page = await api("GET", tenantAPI("alerts/deliveries?limit=50"));
  body.replaceChildren(...page.items.map((d) => {
    const resend = el("button", { type: "button", class: "small" }, "Resend");
    resend.addEventListener("click", async () => {
      await api("POST", tenantAPI(`alerts/deliveries/${encodeURIComponent(d.id)}/resend`));
      toast("Queued again.");
      loadDeliveries();
    });
    const answer = [d.last_status ? `HTTP ${d.last_status}` : "", d.last_latency_ms ? `${d.last_latency_ms} ms` : "", d.last_error || "", d.response_excerpt || ""].filter(Boolean).join(" · ");
    return el("tr", {}, el("td", {}, fmtTime(d.created_at)), el("td", {}, el("code", {}, d.channel_id)), el("td", {}, d.type),
      el("td", {}, el("span", { class: `badge state-${d.state}` }, d.state), d.next_attempt_at ? ` next ${fmtTime(d.next_attempt_at)}` : ""),
      el("td", {}, String(d.attempts)), el("td", { class: "details" }, answer), el("td", {}, resend));
  }));
  if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 7, class: "muted" }, "Nothing sent yet.")));
}

// editor switches a "new" form to editing one item (PUT to the item's URL, the API replaces
// it: the last save wins) and back. fill puts the item into the form's fields.
function editor(form, noun, fill) {
  const createURL = form.dataset.api;
  const heading = form.querySelector("h3");
  const submit = form.querySelector('button[type="submit"]');
  const cancel = form.querySelector("[data-cancel-edit]");
  const ed = {
    item: null,
    reset() {
      form.reset();
      clearErrors(form);
      ed.item = null;
      delete form.dataset.method;
      form.dataset.api = createURL;
      heading.textContent = `New ${noun}`;
      submit.textContent = `Create ${noun}`;
      cancel.hidden = true;
      fill(null);
    },
    edit(item) {
      ed.reset();
      ed.item = item;
      form.dataset.method = "PUT";
      form.dataset.api = `${createURL}/${encodeURIComponent(item.id)}`;
      heading.textContent = `Edit ${noun} “${item.name}”`;
      submit.textContent = `Save ${noun}`;
      cancel.hidden = false;
      fill(item);
      form.scrollIntoView({ block: "nearest" });
      form.elements.name.focus();
    },
  };
  cancel.addEventListener("click", () => ed.reset());
  return ed;
}

let ruleEditor, channelEditor;

if (can("settings:manage")) {
  const ruleForm = document.getElementById("rule-form");
  ruleEditor = editor(ruleForm, "rule", (r) => {
    if (!r) return;
    const f = ruleForm.elements, p = r.params || {};
    f.name.value = r.name;
    f.kind.value = r.kind;
    f.minutes.value = p.minutes ?? "";
    f.count.value = p.count ?? "";
    f.project_id.value = r.project_id || "";
    f.tag.value = r.tag || "";
    f.device_id.value = r.device_id || "";
    f.channel_ids.value = (r.channel_ids || []).join(", ");
    f.cooldown_seconds.value = String(r.cooldown_seconds);
    f.enabled.checked = r.enabled;
  });
  ruleForm.addEventListener("api-transform", (ev) => {
    const b = ev.detail;
    b.params = {};
    for (const k of ["minutes", "count"]) {
      if (b[k] !== undefined) b.params[k] = Number(b[k]);
      delete b[k];
    }
    // The form has no field for the rollout states: an edited rollout rule keeps its own.
    const orig = ruleEditor.item;
    if (orig && b.kind === "rollout" && orig.kind === "rollout" && orig.params?.states) b.params.states = orig.params.states;
    if (b.cooldown_seconds !== undefined) b.cooldown_seconds = Number(b.cooldown_seconds);
    b.enabled = Array.isArray(b.enabled) && b.enabled.length > 0;
  });
  ruleForm.addEventListener("api-success", () => {
    toast(ruleEditor.item ? "Rule saved." : "Rule created.");
    ruleEditor.reset();
    loadRules();
  });

  const channelForm = document.getElementById("channel-form");
  const secretHelp = document.getElementById("c-secret-help");
  const removeSecret = document.getElementById("c-remove-secret-field");
  channelEditor = editor(channelForm, "channel", (c) => {
    const f = channelForm.elements;
    // The kind of a channel cannot change; a stored token is never shown, only kept,
    // replaced or removed.
    f.kind.disabled = !!c;
    secretHelp.hidden = !(c && c.has_secret && c.kind === "ntfy");
    removeSecret.hidden = secretHelp.hidden;
    if (!c) return;
    f.name.value = c.name;
    f.kind.value = c.kind;
    f.target.value = c.target || "";
    f.preset.value = c.preset && c.preset !== "standard" ? c.preset : "";
    f.enabled.checked = c.enabled;
  });
  channelForm.addEventListener("api-transform", (ev) => {
    const b = ev.detail;
    if (Array.isArray(b.remove_secret) && b.remove_secret.length && b.secret === undefined) b.secret = "";
    delete b.remove_secret;
    b.enabled = Array.isArray(b.enabled) && b.enabled.length > 0;
  });
  channelForm.addEventListener("api-success", (ev) => {
    const created = !channelEditor.item;
    channelEditor.reset();
    const box = document.getElementById("secret-once");
    box.hidden = !ev.detail.secret;
    document.getElementById("secret-value").textContent = ev.detail.secret || "";
    toast(created ? "Channel created." : "Channel saved.");
    loadChannels();
  });
  await Promise.all([loadRules(), loadChannels(), loadDeliveries()]).catch((err) => toast(err.message));
}

await load(false);
await showPush().catch((err) => (pushState.textContent = `Push is not available: ${err.message}`));
