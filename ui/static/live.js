// The tenant's live event stream (Server-Sent Events): presence, metadata, command states
// and device changes arrive here without reloading the page.
import { tenantAPI } from "./api.js";

export function liveEvents(handlers) {
  const state = document.querySelector("[data-live-state]");
  const set = (text, ok) => {
    if (!state) return;
    state.textContent = text;
    state.dataset.connected = ok ? "true" : "false";
  };
  const src = new EventSource(tenantAPI("events"), { withCredentials: true });
  src.addEventListener("open", () => set("Live: changes appear as they happen.", true));
  src.addEventListener("error", () => set("Live updates interrupted; reconnecting…", false));
  for (const type of ["presence", "metadata", "command", "commands_expired", "device", "config", "rollout", "device_update", "dropped"]) {
    src.addEventListener(type, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      const h = handlers[type] || handlers.any;
      if (h) h(data);
    });
  }
  addEventListener("pagehide", () => src.close());
  return src;
}
