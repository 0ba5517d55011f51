// The "espadmin config" node: sets configuration values of a device (its custom properties)
// or a project (variables its devices inherit). The server turns the change into a new
// config version and sends it to the affected devices.
"use strict";

const { client, ApiError } = require("./client");

function typeOf(v) {
  if (typeof v === "boolean") return "bool";
  if (typeof v === "number") return Number.isInteger(v) ? "int" : "float";
  if (typeof v === "string") return "string";
  return "json";
}

module.exports = function (RED) {
  function EspadminConfigNode(n) {
    RED.nodes.createNode(this, n);
    const node = this;
    const server = RED.nodes.getNode(n.server);
    if (!server) {
      node.status({ fill: "red", shape: "ring", text: "no server" });
      return;
    }
    const api = client(server);

    node.on("input", async (msg, send, done) => {
      const values = msg.payload;
      const device = msg.device_id || n.device;
      const project = msg.project_id || n.project;
      if (!values || typeof values !== "object" || Array.isArray(values) || !Object.keys(values).length) {
        done(new Error("msg.payload must be an object of keys and values, e.g. {\"interval\": 30}"));
        return;
      }
      if (!device && !project) {
        done(new Error("set a device ID or a project ID (or msg.device_id / msg.project_id)"));
        return;
      }
      const scope = device ? `devices/${encodeURIComponent(device)}/config` : `projects/${encodeURIComponent(project)}/config`;
      node.status({ fill: "blue", shape: "dot", text: "writing" });
      try {
        const path = await api.tenantPath(scope);
        const current = await api.call("GET", path);
        const versions = {};
        for (const e of (current && current.entries) || []) versions[e.key] = e.version;
        const entries = Object.entries(values).map(([key, value]) => ({ key, type: typeOf(value), value, version: versions[key] || 0 }));
        const out = await api.call("PUT", path, { entries });
        node.status({ fill: "green", shape: "dot", text: `${entries.length} set` });
        send({ ...msg, payload: out });
        done();
      } catch (err) {
        const text = err instanceof ApiError && err.fields ? `${err.message}: ${JSON.stringify(err.fields)}` : err.message;
        node.status({ fill: "red", shape: "ring", text });
        done(err);
      }
    });
  }
  RED.nodes.registerType("espadmin config", EspadminConfigNode);
};
