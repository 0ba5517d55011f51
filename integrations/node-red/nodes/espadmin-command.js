// The "espadmin command" node: sends restart, debug or a config refresh to a device, a tag
// or a project, and outputs the commands the server created (their acknowledgements arrive
// as "command" events on the espadmin events node).
"use strict";

const { client } = require("./client");

const COMMANDS = ["restart", "debug", "config"];

module.exports = function (RED) {
  function EspadminCommandNode(n) {
    RED.nodes.createNode(this, n);
    const node = this;
    const server = RED.nodes.getNode(n.server);
    if (!server) {
      node.status({ fill: "red", shape: "ring", text: "no server" });
      return;
    }
    const api = client(server);

    node.on("input", async (msg, send, done) => {
      const p = msg.payload && typeof msg.payload === "object" ? msg.payload : {};
      const name = p.command || n.command || "restart";
      const target = {};
      const device = p.device_id || msg.device_id || n.device;
      const tag = p.tag || n.tag;
      if (device) target.device_ids = Array.isArray(device) ? device : [device];
      else if (tag) target.tag = tag;
      else if (p.project_id || n.project) target.project_id = p.project_id || n.project;
      if (!COMMANDS.includes(name)) {
        done(new Error(`unknown command "${name}": restart, debug or config`));
        return;
      }
      if (!Object.keys(target).length) {
        done(new Error("no target: set a device ID, a tag or a project (or msg.payload.device_id / tag / project_id)"));
        return;
      }
      node.status({ fill: "blue", shape: "dot", text: `sending ${name}` });
      try {
        let out;
        if (name === "config") {
          out = await api.call("POST", await api.tenantPath("config/push"), { target });
        } else {
          const body = { name, target };
          if (name === "debug") body.params = { enabled: p.enabled !== undefined ? !!p.enabled : n.enabled !== false };
          if (name === "restart" && p.reason) body.params = { reason: String(p.reason) };
          out = await api.call("POST", await api.tenantPath("commands"), body);
        }
        node.status({ fill: "green", shape: "dot", text: `${name} sent` });
        send({ ...msg, payload: out });
        done();
      } catch (err) {
        node.status({ fill: "red", shape: "ring", text: err.message });
        done(err);
      }
    });
  }
  RED.nodes.registerType("espadmin command", EspadminCommandNode);
};
