// Small client of the JSON API: the session cookie goes along, and every state-changing
// request carries the CSRF token the page was rendered with.

export class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    let msg = e.message || `request failed (HTTP ${status})`;
    if (status >= 500 && e.request_id) msg += ` (request ID ${e.request_id})`;
    super(msg);
    this.status = status;
    this.code = e.code || "";
    this.fields = e.fields || {};
    this.requestId = e.request_id || "";
  }
}

export function csrfToken() {
  const m = document.querySelector('meta[name="csrf-token"]');
  return m ? m.content : "";
}

export function setCsrfToken(t) {
  let m = document.querySelector('meta[name="csrf-token"]');
  if (!m) {
    m = document.createElement("meta");
    m.name = "csrf-token";
    document.head.append(m);
  }
  m.content = t;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    throw new ApiError(0, { error: { message: "the server cannot be reached; check your connection" } });
  }
  if (res.status === 204) return null;
  let data = null;
  const text = await res.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    if (res.status === 401 && !path.startsWith("/api/v1/auth/")) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    }
    throw new ApiError(res.status, data);
  }
  if (data && data.csrf_token) setCsrfToken(data.csrf_token);
  return data;
}

// tenantAPI is the API path of the current tenant's resource, e.g. tenantAPI("devices").
export function tenantAPI(rest) {
  return `/api/v1/tenants/${encodeURIComponent(document.body.dataset.tenant)}/${rest}`;
}

// can reports whether the caller's role holds a permission (rendered by the server).
export function can(perm) {
  return (document.body.dataset.perms || "").split(" ").includes(perm);
}

// el builds an element: el("td", {class: "x"}, "text", child…). Text is never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function fmtTime(s) {
  if (!s) return "—";
  const d = new Date(s);
  if (isNaN(d)) return "—";
  return d.toLocaleString();
}

export function ago(s) {
  if (!s) return "never";
  const sec = Math.round((Date.now() - new Date(s).getTime()) / 1000);
  if (sec < 60) return "just now";
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`;
  return `${Math.floor(sec / 86400)} d ago`;
}

// toast announces a short message to everyone, screen readers included.
export function toast(msg) {
  const t = document.getElementById("toast");
  if (!t) return;
  t.textContent = msg;
  t.classList.add("show");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.remove("show"), 4000);
}

// showError puts an error where it belongs: field messages next to their fields (elements
// with data-error-for="field" inside scope), the message in scope's [data-form-error] or in
// fallback.
export function showError(scope, err, fallback) {
  clearErrors(scope);
  let placed = false;
  const fields = (err && err.fields) || {};
  for (const [name, msg] of Object.entries(fields)) {
    const base = name.replace(/\[\d+\]$/, "");
    const target = scope.querySelector(`[data-error-for="${CSS.escape(name)}"]`) ||
      scope.querySelector(`[data-error-for="${CSS.escape(base)}"]`);
    if (target) {
      target.textContent = `${labelFor(scope, base)} ${msg}`;
      const input = scope.querySelector(`[name="${CSS.escape(base)}"]`);
      if (input) input.setAttribute("aria-invalid", "true");
      placed = true;
    }
  }
  const general = scope.querySelector("[data-form-error]") || fallback;
  if (general && (!placed || !Object.keys(fields).length)) {
    general.textContent = err ? err.message : "something went wrong";
  } else if (general && placed) {
    general.textContent = "Please correct the highlighted fields.";
  }
  const first = scope.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

function labelFor(scope, name) {
  const input = scope.querySelector(`[name="${CSS.escape(name)}"]`);
  const label = input && input.id && scope.querySelector(`label[for="${CSS.escape(input.id)}"]`);
  return label ? label.textContent.replace(/\s*\(.*\)\s*$/, "").trim() + ":" : "";
}

export function clearErrors(scope) {
  scope.querySelectorAll("[data-error-for],[data-form-error]").forEach((e) => (e.textContent = ""));
  scope.querySelectorAll('[aria-invalid="true"]').forEach((e) => e.removeAttribute("aria-invalid"));
}

// formData turns a form into the JSON body: checkbox groups and data-list inputs become
// arrays, empty optional fields are left out (unless marked data-keep-empty: "" unlinks).
export function formData(form) {
  const out = {};
  for (const input of form.elements) {
    if (!input.name || input.disabled || input.type === "submit" || input.type === "button") continue;
    if (input.type === "checkbox") {
      if (!Array.isArray(out[input.name])) out[input.name] = [];
      if (input.checked) out[input.name].push(input.value);
      continue;
    }
    const v = input.value.trim();
    if ("list" in input.dataset) {
      out[input.name] = v ? v.split(",").map((s) => s.trim()).filter(Boolean) : [];
      continue;
    }
    if (v === "" && !input.required && input.type !== "hidden" && !("keepEmpty" in input.dataset)) continue;
    out[input.name] = input.type === "password" ? input.value : v;
  }
  return out;
}

// download saves data as a file in the browser.
export function downloadLink(a, filename, text, type = "application/json") {
  if (a.href && a.href.startsWith("blob:")) URL.revokeObjectURL(a.href);
  a.href = URL.createObjectURL(new Blob([text], { type }));
  a.download = filename;
}

// pagedTable fills a table body from a cursor-paged list route, 50 rows a page, and returns
// load: load(false) replaces the rows with the first page, load(true) appends the next. The
// "more" button shows while a next page exists; an empty list is one row saying `empty`. A
// failure is shown on the filter form (field errors) or in errBox.
export function pagedTable({ rows, more, filter, errBox, route, query, row, empty, colspan }) {
  let cursor = "";
  async function load(append) {
    const q = query();
    q.set("limit", "50");
    if (append && cursor) q.set("cursor", cursor);
    try {
      const page = await api("GET", tenantAPI(`${route}?${q}`));
      errBox.textContent = "";
      if (!append) rows.replaceChildren();
      rows.append(...(page.items || []).map(row));
      if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan, class: "muted" }, empty)));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (err) {
      showError(filter, err, errBox);
      return err;
    }
    return null;
  }
  more.addEventListener("click", () => load(true));
  return load;
}
