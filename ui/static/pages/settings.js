// Tenant settings: the name, the Bugsnag key (write-only: only whether it is set is shown) and
// the MQTT broker (built-in or the tenant's own, with a connection test and the live state).
import { api, clearErrors, fmtTime, formData, showError, tenantAPI, toast } from "../api.js";

const tenantForm = document.getElementById("tenant-form");
if (tenantForm) {
  tenantForm.addEventListener("api-success", (ev) => {
    const t = ev.detail;
    toast("Tenant renamed");
    const sw = document.querySelector(".tenant-switch");
    if (sw && sw.firstChild) sw.firstChild.textContent = `${t.name} `;
  });
}

const form = document.getElementById("bugsnag-form");
const state = document.getElementById("bugsnag-state");

function show(s) {
  state.textContent = s.api_key_set
    ? `Forwarding is on (a key is set${s.release_stage ? `, release stage ${s.release_stage}` : ""}).`
    : "Forwarding is off: no key is set.";
  state.dataset.set = String(Boolean(s.api_key_set));
  if (form) {
    form.elements.release_stage.value = s.release_stage || "";
    form.elements.notify_url.value = s.notify_url || "";
  }
}

async function load() {
  try {
    show(await api("GET", tenantAPI("settings/bugsnag")));
  } catch (err) {
    state.textContent = `The Bugsnag settings could not be loaded: ${err.message}`;
  }
}

async function save(body) {
  clearErrors(form);
  const done = form.querySelector("[data-form-done]");
  done.textContent = "";
  try {
    show(await api("PUT", tenantAPI("settings/bugsnag"), body));
    form.elements.api_key.value = "";
    done.textContent = "Saved.";
  } catch (err) {
    showError(form, err);
  }
}

if (form) {
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = formData(form);
    // Empty fields are left as they are; the key is sent only when typed.
    const body = { release_stage: f.release_stage || "", notify_url: f.notify_url || "" };
    if (f.api_key) body.api_key = f.api_key;
    save(body);
  });
  document.getElementById("bugsnag-remove").addEventListener("click", () => {
    if (confirm("Stop forwarding device errors to Bugsnag? The key is removed.")) save({ api_key: "" });
  });
  load();
}

// --- Broker: built-in or the tenant's own, with a connection test and the live state. ---

const brokerForm = document.getElementById("broker-form");
// How often the live connection state is read while the page is visible (there is no
// broker event on the tenant's event stream).
const STATE_POLL_MS = 3000;

// What to fix for each class of failed connection (error_kind of the test and state routes).
const failureText = {
  unreachable: "Unreachable: nothing answered at this address. Check the host and port, and that the network lets this server through.",
  not_authorized: "Not authorised: the broker refused the username or password.",
  tls: "TLS failed: the broker's certificate is not trusted or does not match the host. Check the CA certificate and the URL's host name.",
  refused: "Refused: the broker refused the connection (check the client ID and that the broker speaks MQTT 3.1.1).",
  dropped: "Dropped: the broker closed the connection, perhaps because this user may not use the topic root.",
  timeout: "Timed out: the broker did not answer in time.",
  invalid_config: "Invalid settings: a field needs fixing.",
  other: "The connection failed.",
};

const statusText = {
  connected: "connected",
  connecting: "connecting",
  disconnected: "disconnected, retrying",
  failed: "failed, a setting needs fixing",
};

if (brokerForm) {
  const f = brokerForm.elements;
  const external = document.getElementById("broker-external");
  const pwState = document.getElementById("br-password-state");
  const pwClearField = document.getElementById("br-password-clear-field");
  const testBtn = document.getElementById("broker-test");
  const testResult = document.getElementById("broker-test-result");
  const reloadBtn = document.getElementById("broker-reload");
  const done = brokerForm.querySelector("[data-form-done]");
  const formError = brokerForm.querySelector("[data-form-error]");
  let saved = null; // the settings as last read from the server, with their version

  const mode = () => (f.mode.value === "external" ? "external" : "builtin");
  const showMode = () => { external.hidden = mode() !== "external"; };

  function fill(s) {
    saved = s;
    f.mode.value = s.mode === "external" ? "external" : "builtin";
    f.url.value = s.url || "";
    f.username.value = s.username || "";
    f.password.value = "";
    f.password_clear.checked = false;
    f.ca_cert_pem.value = s.ca_cert_pem || "";
    f.topic_root.value = s.topic_root || "";
    f.client_id.value = s.client_id || "";
    pwState.dataset.set = String(Boolean(s.password_set));
    pwState.textContent = s.password_set
      ? "A password is set; leave the field empty to keep it."
      : "No password is set.";
    pwClearField.hidden = !s.password_set;
    showMode();
  }

  // The connection settings typed into the form; the password only when typed (absent keeps
  // the saved one) or when its removal is asked for.
  function connection() {
    const out = {
      url: f.url.value.trim(), username: f.username.value.trim(), ca_cert_pem: f.ca_cert_pem.value.trim(),
      topic_root: f.topic_root.value.trim(), client_id: f.client_id.value.trim(),
    };
    if (f.password.value !== "") out.password = f.password.value;
    else if (f.password_clear.checked) out.password = "";
    return out;
  }

  async function loadBroker() {
    clearErrors(brokerForm);
    reloadBtn.hidden = true;
    try {
      fill(await api("GET", tenantAPI("settings/broker")));
    } catch (err) {
      showError(brokerForm, err);
    }
  }

  brokerForm.addEventListener("change", (ev) => {
    if (ev.target.name === "mode") {
      showMode();
      testResult.textContent = "";
      testResult.dataset.result = "";
    }
  });

  testBtn.addEventListener("click", async () => {
    clearErrors(brokerForm);
    done.textContent = "";
    testBtn.disabled = true;
    testResult.dataset.result = "testing";
    testResult.textContent = "Testing the connection…";
    try {
      const r = await api("POST", tenantAPI("settings/broker/test"), connection());
      testResult.dataset.result = r.ok ? "ok" : (r.error_kind || "other");
      testResult.textContent = r.ok
        ? "Connected: the broker accepted the login, and a probe message went out and came back."
        : `${failureText[r.error_kind] || failureText.other}${r.message ? ` (${r.message})` : ""}`;
    } catch (err) {
      testResult.dataset.result = "";
      testResult.textContent = "";
      showError(brokerForm, err);
    } finally {
      testBtn.disabled = false;
    }
  });

  brokerForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(brokerForm);
    done.textContent = "";
    reloadBtn.hidden = true;
    if (!saved) {
      formError.textContent = "The broker settings are not loaded yet.";
      return;
    }
    let body;
    if (mode() === "external") {
      body = { mode: "external", ...connection() };
    } else {
      // Built-in: the saved external settings are kept for later; unsaved edits are dropped.
      body = {
        mode: "builtin", url: saved.url || "", username: saved.username || "", ca_cert_pem: saved.ca_cert_pem || "",
        topic_root: saved.topic_root || "", client_id: saved.client_id || "",
      };
    }
    body.version = saved.version;
    try {
      fill(await api("PUT", tenantAPI("settings/broker"), body));
      done.textContent = body.mode === "external" ? "Saved: the server now connects to the tenant's broker." : "Saved: devices use the built-in broker.";
      refreshState();
    } catch (err) {
      showError(brokerForm, err);
      if (err.status === 409) {
        formError.textContent = "The broker settings were changed by someone else since this page read them. Reload them, then make your change again (your edits here were not saved).";
        reloadBtn.hidden = false;
        reloadBtn.focus();
      }
    }
  });
  reloadBtn.addEventListener("click", loadBroker);

  // The live state, read every few seconds while the page is visible.
  const badge = document.getElementById("broker-status");
  const since = document.getElementById("broker-since");
  const lastError = document.getElementById("broker-last-error");
  let timer = 0;
  let seq = 0; // the latest read; an older answer arriving late is dropped

  // setText changes a text only when it differs, so the live region announces changes only.
  const setText = (e, t) => { if (e.textContent !== t) e.textContent = t; };

  function showState(s) {
    if (s.mode !== "external") {
      badge.dataset.state = "builtin";
      setText(badge, "built-in broker");
      setText(since, "devices connect to this server");
      setText(lastError, "");
      return;
    }
    const status = s.status || "connecting";
    badge.dataset.state = status;
    setText(badge, statusText[status] || status);
    setText(since, s.since ? `since ${fmtTime(s.since)}` : "");
    setText(lastError, s.last_error
      ? `Last error: ${failureText[s.error_kind] || failureText.other} (${s.last_error})`
      : "");
  }

  async function refreshState() {
    clearTimeout(timer);
    const my = ++seq;
    let s = null;
    let failure = null;
    try {
      s = await api("GET", tenantAPI("settings/broker/state"));
    } catch (err) {
      failure = err;
    }
    if (my !== seq) return;
    if (s) showState(s);
    else {
      badge.dataset.state = "unknown";
      setText(badge, "unknown");
      setText(since, "");
      setText(lastError, `The connection state could not be read: ${failure.message}`);
    }
    if (document.visibilityState === "visible") timer = setTimeout(refreshState, STATE_POLL_MS);
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refreshState();
    else clearTimeout(timer);
  });

  loadBroker();
  refreshState();
}
