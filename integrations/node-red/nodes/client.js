// The HTTP client the nodes share: the API's base URL, the token, the tenant (named by the
// config node, or the one tenant an API token belongs to) and the API's error shape.
"use strict";

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(`${e.message || "unexpected answer"} (HTTP ${status})`);
    this.status = status;
    this.code = e.code;
    this.fields = e.fields;
  }
}

function client(config) {
  const base = String(config.url || "").replace(/\/+$/, "");
  const token = (config.credentials && config.credentials.token) || "";
  let tenant = config.tenant || "";

  async function call(method, path, body, extraHeaders) {
    const headers = { Accept: "application/json", Authorization: `Bearer ${token}`, ...(extraHeaders || {}) };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(base + path, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
  }

  async function tenantSlug() {
    if (tenant) return tenant;
    const page = await call("GET", "/api/v1/tenants");
    if (!page || page.items.length !== 1) throw new Error("the token reaches several tenants: set the tenant in the server node");
    tenant = page.items[0].slug;
    return tenant;
  }

  async function tenantPath(rest) {
    return `/api/v1/tenants/${encodeURIComponent(await tenantSlug())}/${rest}`;
  }

  return { base, token, call, tenantPath, tenantSlug };
}

module.exports = { client, ApiError };
