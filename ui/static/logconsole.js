// The live log console of a device: a WebSocket of log lines with pause, level and text
// filters, clear, download, auto-scroll and a marker where lines were lost.
import { api, el, tenantAPI } from "./api.js";

const MAX_LINES = 5000;

export function logConsole(deviceID) {
  const box = document.getElementById("log-lines");
  const state = document.getElementById("log-state");
  const level = document.getElementById("log-level");
  const filter = document.getElementById("log-filter");
  const auto = document.getElementById("log-autoscroll");
  const connectBtn = document.getElementById("log-connect");
  const pauseBtn = document.getElementById("log-pause");
  const all = []; // every received entry: {text, level, marker}
  let held = []; // lines received while paused
  let ws = null;
  let paused = false;
  let wanted = false;

  const matches = (e) => e.marker || !filter.value || e.text.toLowerCase().includes(filter.value.toLowerCase());
  const node = (e) => el("div", { class: `log-line ${e.marker ? "marker" : "level-" + e.level}` }, e.text);

  // A filter that hides every line says so, rather than leaving a blank box.
  const noMatch = el("div", { class: "log-empty muted", "data-empty": "filter" }, "No lines match the filter.");
  function showNoMatch() {
    const hidden = filter.value && all.some((e) => !e.marker) && !all.some((e) => !e.marker && matches(e));
    if (hidden && !noMatch.isConnected) box.append(noMatch);
    if (!hidden && noMatch.isConnected) noMatch.remove();
  }

  function add(entries) {
    for (const e of entries) {
      all.push(e);
      if (matches(e)) box.append(node(e));
    }
    while (all.length > MAX_LINES) all.shift();
    while (box.childElementCount > MAX_LINES) box.firstElementChild.remove();
    showNoMatch();
    if (auto.checked) box.scrollTop = box.scrollHeight;
  }

  function redraw() {
    box.replaceChildren(...all.filter(matches).map(node));
    showNoMatch();
    if (auto.checked) box.scrollTop = box.scrollHeight;
  }

  // An offline device sends nothing until it connects: say so while streaming.
  let online = null;
  const streamingText = () => `Streaming (${level.value} and above). ` +
    (online === false ? "The device is offline; lines appear when it connects." : "Lines appear as the device sends them.");
  function setOnline(v) {
    online = v;
    box.dataset.deviceOnline = String(v);
    if (ws && ws.readyState === WebSocket.OPEN && !paused) state.textContent = streamingText();
  }

  function receive(frame) {
    let entries = [];
    switch (frame.type) {
      case "lines":
        if (online === false) setOnline(true); // lines come from the device: it is connected
        entries = (frame.lines || []).map((l) => ({
          level: l.level,
          text: `${(l.ts / 1000).toFixed(3).padStart(10)} ${l.level.toUpperCase().padEnd(7)} ${l.tag ? l.tag + ": " : ""}${l.msg}`,
        }));
        break;
      case "dropped":
        entries = [{ marker: true, text: `— ${frame.count} line(s) dropped: the browser fell behind —` }];
        break;
      case "gap":
        entries = [{ marker: true, text: `— ${frame.count} line(s) lost ${frame.reason === "device" ? "by the device" : "in transit"} —` }];
        break;
      case "debug":
        state.textContent = frame.enabled ? `Streaming (${frame.level || level.value} and above).` : "The device's debug logs were switched off.";
        return;
      default:
        return;
    }
    if (paused) {
      held.push(...entries);
      state.textContent = `Paused: ${held.length} new line(s) held.`;
      return;
    }
    add(entries);
  }

  function connect() {
    wanted = true;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const path = tenantAPI(`devices/${encodeURIComponent(deviceID)}/logs/stream?level=${encodeURIComponent(level.value)}`);
    ws = new WebSocket(`${proto}//${location.host}${path}`);
    state.textContent = "Connecting…";
    ws.addEventListener("open", () => {
      state.textContent = streamingText();
      box.dataset.streaming = "true";
      api("GET", tenantAPI(`devices/${encodeURIComponent(deviceID)}`)).then((d) => setOnline(Boolean(d.online)), () => {});
    });
    ws.addEventListener("message", (ev) => {
      try { receive(JSON.parse(ev.data)); } catch { /* not a frame */ }
    });
    ws.addEventListener("close", (ev) => {
      box.dataset.streaming = "false";
      if (ws && ws !== ev.target) return;
      ws = null;
      if (wanted) {
        state.textContent = `The stream closed${ev.reason ? ": " + ev.reason : ""}; reconnecting…`;
        setTimeout(() => wanted && !ws && connect(), 3000);
      }
    });
    connectBtn.textContent = "Stop streaming";
    pauseBtn.disabled = false;
  }

  function disconnect() {
    wanted = false;
    const w = ws;
    ws = null;
    if (w) w.close();
    state.textContent = "Not streaming.";
    connectBtn.textContent = "Start streaming";
    pauseBtn.disabled = true;
  }

  connectBtn.addEventListener("click", () => (ws || wanted ? disconnect() : connect()));
  pauseBtn.addEventListener("click", () => {
    paused = !paused;
    pauseBtn.textContent = paused ? "Resume" : "Pause";
    pauseBtn.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      add(held);
      held = [];
      state.textContent = "Streaming.";
    }
  });
  document.getElementById("log-clear").addEventListener("click", () => {
    all.length = 0;
    held = [];
    box.replaceChildren();
  });
  document.getElementById("log-download").addEventListener("click", () => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(new Blob([all.map((e) => e.text).join("\n") + "\n"], { type: "text/plain" }));
    a.download = `espadmin-${deviceID}-logs.txt`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  });
  filter.addEventListener("input", redraw);
  level.addEventListener("change", () => {
    if (ws) {
      disconnect();
      connect();
    }
  });
  document.getElementById("log-controls").addEventListener("submit", (ev) => ev.preventDefault());
  addEventListener("pagehide", disconnect);
  // The device page passes presence changes on (its live "presence" events).
  return { setOnline };
}
