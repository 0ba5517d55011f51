// Tenant settings: the name, and the Bugsnag key (write-only: only whether it is set is shown).
import { api, clearErrors, formData, showError, tenantAPI, toast } from "../api.js";

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
