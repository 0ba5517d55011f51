// The "espadmin events" input node: the tenant's event stream (Server-Sent Events from
// GET /api/v1/tenants/SLUG/events), one message per event. It reconnects with backoff and
// shows the connection in its status. A reconnect sends Last-Event-ID, so the server replays
// what the node missed while it still holds it, or sends a "dropped" event when it does not.
"use strict";

const { client } = require("./client");

module.exports = function (RED) {
  function EspadminEventsNode(n) {
    RED.nodes.createNode(this, n);
    const node = this;
    const server = RED.nodes.getNode(n.server);
    const types = String(n.types || "").split(",").map((s) => s.trim()).filter(Boolean);
    const device = n.device || "";
    let abort = null;
    let closed = false;
    let retry = null;
    let backoff = 1000;
    let lastId = "";

    if (!server) {
      node.status({ fill: "red", shape: "ring", text: "no server" });
      return;
    }
    const api = client(server);

    function deliver(type, data) {
      if (types.length && !types.includes(type)) return;
      let event;
      try { event = JSON.parse(data); } catch { return; }
      if (device && event.device_id !== device) return;
      node.send({ topic: type, payload: event, device_id: event.device_id });
    }

    async function connect() {
      abort = new AbortController();
      node.status({ fill: "yellow", shape: "ring", text: "connecting" });
      try {
        const headers = { Accept: "text/event-stream", Authorization: `Bearer ${api.token}` };
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(api.base + (await api.tenantPath("events")), { headers, signal: abort.signal });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        node.status({ fill: "green", shape: "dot", text: "connected" });
        backoff = 1000;
        const decoder = new TextDecoder();
        let buf = "";
        let type = "message";
        let data = [];
        let id = null;
        for await (const chunk of res.body) {
          buf += decoder.decode(chunk, { stream: true });
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).replace(/\r$/, "");
            buf = buf.slice(nl + 1);
            if (line === "") {
              if (id !== null) lastId = id;
              if (data.length) deliver(type, data.join("\n"));
              type = "message";
              data = [];
              id = null;
            } else if (line.startsWith("id:")) {
              id = line.slice(3).trim();
            } else if (line.startsWith("event:")) {
              type = line.slice(6).trim();
            } else if (line.startsWith("data:")) {
              data.push(line.slice(5).replace(/^ /, ""));
            }
          }
        }
        throw new Error("stream ended");
      } catch (err) {
        if (closed) return;
        node.status({ fill: "red", shape: "ring", text: `disconnected: ${err.message}` });
        retry = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, 30000);
      }
    }

    connect();
    node.on("close", (done) => {
      closed = true;
      clearTimeout(retry);
      if (abort) abort.abort();
      node.status({});
      done();
    });
  }
  RED.nodes.registerType("espadmin events", EspadminEventsNode);
};
