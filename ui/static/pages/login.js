// The login page: one button per enabled OAuth provider.
import { api, el } from "../api.js";

const box = document.getElementById("providers");
try {
  const res = await api("GET", "/api/v1/auth/providers");
  const next = new URLSearchParams(location.search).get("next");
  for (const p of res.providers || []) {
    let href = p.login_url;
    if (next && next.startsWith("/") && !next.startsWith("//")) {
      href += (href.includes("?") ? "&" : "?") + "next=" + encodeURIComponent(next);
    }
    box.append(el("a", { class: "button provider", href }, `Sign in with ${p.name}`));
  }
} catch (err) {
  box.append(el("p", { class: "form-error", role: "alert" }, `Sign-in providers could not be loaded: ${err.message}`));
}
