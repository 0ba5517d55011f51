// Code every page runs: the theme toggle, sign-out, copy buttons, forms posting to the API,
// then the page's own module.
import { api, clearErrors, formData, showError, toast } from "./api.js";

const pages = ["login", "dashboard", "devices", "device", "projects", "project", "members", "tokens", "audit", "errors", "errorgroup", "settings", "alerts"];

function setupTheme() {
  const btn = document.getElementById("theme-toggle");
  if (!btn) return;
  const dark = () => {
    const t = document.documentElement.dataset.theme;
    return t ? t === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  };
  const label = () => {
    btn.setAttribute("aria-pressed", String(dark()));
    btn.textContent = dark() ? "Light theme" : "Dark theme";
  };
  btn.addEventListener("click", () => {
    const next = dark() ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("espadmin-theme", next); } catch { /* ignore */ }
    label();
  });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", label);
  label();
}

function setupLogout() {
  const btn = document.getElementById("logout");
  if (!btn) return;
  btn.addEventListener("click", async () => {
    try {
      await api("POST", "/api/v1/auth/logout");
    } catch (err) {
      toast(err.message);
      return;
    }
    location.assign("/login");
  });
}

function setupCopy() {
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-copy]");
    if (!btn) return;
    const src = document.getElementById(btn.dataset.copy);
    const text = src.value !== undefined ? src.value : src.textContent;
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied");
    } catch {
      if (src.select) src.select();
      toast("Press Ctrl+C to copy");
    }
  });
}

// safeNext keeps redirects on this site.
function safeNext(n) {
  return n && n.startsWith("/") && !n.startsWith("//") ? n : "/";
}

// Forms with data-api post their fields as JSON. data-redirect goes to a page afterwards
// ("tenant" means the tenant in the answer); data-done shows a message; data-custom leaves
// the answer to the page's module through the "api-success" event.
function setupForms() {
  for (const form of document.querySelectorAll("form[data-api]")) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const btn = form.querySelector('button[type="submit"]');
      clearErrors(form);
      const done = form.querySelector("[data-form-done]");
      if (done) done.textContent = "";
      const body = formData(form);
      if (form.dataset.transform) form.dispatchEvent(new CustomEvent("api-transform", { detail: body }));
      if (btn) btn.disabled = true;
      form.setAttribute("aria-busy", "true");
      try {
        const res = await api(form.dataset.method || "POST", form.dataset.api, body);
        if ("custom" in form.dataset) {
          form.dispatchEvent(new CustomEvent("api-success", { detail: res }));
        } else if (form.dataset.redirect === "tenant") {
          const slug = (res && (res.slug || (res.tenant && res.tenant.slug))) || "";
          location.assign(slug ? `/t/${encodeURIComponent(slug)}/` : "/");
          return;
        } else if (form.dataset.redirect !== undefined) {
          location.assign(safeNext(form.dataset.redirect));
          return;
        }
        if (done && form.dataset.done) done.textContent = form.dataset.done;
      } catch (err) {
        showError(form, err);
      } finally {
        if (btn) btn.disabled = false;
        form.removeAttribute("aria-busy");
      }
    });
  }
}

// setupDeviceTotals fills [data-device-total="<device list query>"] with how many devices
// match, so a page that shows a short list says how many there are in all.
function setupDeviceTotals() {
  for (const box of document.querySelectorAll("[data-device-total]")) {
    api("GET", `/api/v1/tenants/${encodeURIComponent(document.body.dataset.tenant)}/devices?limit=1&${box.dataset.deviceTotal}`)
      .then((page) => { box.querySelector("[data-total]").textContent = String(page.total); box.hidden = false; })
      .catch(() => {});
  }
}

setupTheme();
setupLogout();
setupDeviceTotals();
setupCopy();
setupForms();

// The page's own script is a module loaded after the document; body[data-ready] says it has
// set the page up (its handlers are attached and its first data is drawn), for assistive
// tools and browser tests alike.
const page = document.body.className.replace(/^page-/, "");
if (pages.includes(page)) {
  import(`./pages/${page}.js`).then(() => {
    document.body.dataset.ready = "true";
  }, (err) => {
    console.error(err);
    toast("This page failed to load its script; reload to try again.");
  });
} else {
  document.body.dataset.ready = "true";
}
