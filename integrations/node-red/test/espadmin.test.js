// The nodes in a real Node-RED runtime (node-red-node-test-helper) against a real
// `espadmin serve` with a simulated device (`espadmin sim`): a flow sees the device come
// online, sends it a command and sees its acknowledgement, and sets a config value the device
// applies, and resumes its event stream after the server restarts.
"use strict";

const assert = require("node:assert/strict");
const { after, before, describe, test } = require("node:test");
const { execFileSync, spawn } = require("node:child_process");
const { mkdtempSync, rmSync, writeFileSync } = require("node:fs");
const { createServer } = require("node:net");
const { tmpdir } = require("node:os");
const { join, resolve } = require("node:path");
const helper = require("node-red-node-test-helper");

const serverNode = require("../nodes/espadmin-server.js");
const eventsNode = require("../nodes/espadmin-events.js");
const commandNode = require("../nodes/espadmin-command.js");
const configNode = require("../nodes/espadmin-config.js");

helper.init(require.resolve("node-red"));

const repoRoot = resolve(__dirname, "../../..");
const TIMEOUT = 30_000;

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

// until polls fn until it returns a truthy value or the deadline passes.
async function until(what, fn, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// collector records the messages a helper node receives and resolves waits for one.
function collector(node) {
  const msgs = [];
  const waiters = [];
  node.on("input", (msg) => {
    msgs.push(msg);
    for (const w of [...waiters]) {
      if (w.match(msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.res(msg);
      }
    }
  });
  return {
    msgs,
    wait(what, match, timeout = TIMEOUT) {
      const found = msgs.find(match);
      if (found) return Promise.resolve(found);
      return new Promise((res, rej) => {
        const w = { match, res };
        w.timer = setTimeout(() => rej(new Error(`no message: ${what}; got ${JSON.stringify(msgs.map((m) => m.topic || m.payload))}`)), timeout);
        waiters.push(w);
      });
    },
  };
}

describe("espadmin nodes against espadmin serve", () => {
  let dir, bin, serve, serveArgs, sim, url, token, deviceID;
  const procs = [];

  function run(args, input) {
    return execFileSync(bin, args, { input, env: { ...process.env, ESPADMIN_LOG_LEVEL: "error" } }).toString();
  }

  function start(args, env) {
    const p = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", process.env.VERBOSE ? "inherit" : "ignore"] });
    procs.push(p);
    return p;
  }

  async function api(method, path, body) {
    const res = await fetch(url + path, {
      method, headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", Accept: "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(data)}`);
    return data;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "espadmin-nodered-"));
    bin = process.env.ESPADMIN_BIN || join(dir, "espadmin");
    if (!process.env.ESPADMIN_BIN) execFileSync("go", ["build", "-o", bin, "./cmd/espadmin"], { cwd: repoRoot, stdio: "inherit" });
    const data = join(dir, "data");
    const base = ["--data-dir", data];
    run(["user", "create", "--email", "flows@example.com", "--tenant", "acme", ...base], "a long enough password\n");
    const out = run(["token", "create", "--email", "flows@example.com", "--tenant", "acme", "--name", "node-red",
      "--scopes", "devices:read,devices:write,commands:write,config:write", ...base]);
    token = out.trim().split("\n").pop();
    const httpPort = await freePort();
    const mqttPort = await freePort();
    url = `http://127.0.0.1:${httpPort}`;
    serveArgs = ["serve", ...base, "--http-addr", `127.0.0.1:${httpPort}`, "--mqtt-addr", `127.0.0.1:${mqttPort}`,
      "--mqtt-tls-addr", "", "--mqtt-public-host", "127.0.0.1", "--public-url", url];
    serve = start(serveArgs);
    await until("the server", async () => (await fetch(url + "/readyz")).ok);
    const created = await api("POST", "/api/v1/tenants/acme/devices", { name: "porch", tags: ["outdoor"] });
    deviceID = created.id;
    const bundle = join(dir, "bundle.json");
    writeFileSync(bundle, JSON.stringify(created.provisioning));
    process.env.ESPADMIN_TEST_BUNDLE = bundle;
    await new Promise((r) => helper.startServer(r));
  });

  after(async () => {
    await helper.unload();
    await new Promise((r) => helper.stopServer(r));
    for (const p of procs.reverse()) {
      if (p.exitCode === null) {
        const done = new Promise((r) => p.once("exit", r));
        p.kill("SIGTERM");
        await done;
      }
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const flowServer = () => ({ id: "srv", type: "espadmin-server", url });
  const credentials = () => ({ srv: { token } });

  test("a flow receives the device's status change", async () => {
    const flow = [
      flowServer(),
      { id: "ev", type: "espadmin events", server: "srv", types: "presence", wires: [["out"]] },
      { id: "out", type: "helper" },
    ];
    await helper.load([serverNode, eventsNode], flow, credentials());
    const out = collector(helper.getNode("out"));
    const ev = helper.getNode("ev");
    await until("the events node to connect", () => streamConnected(ev));
    sim = start(["sim", "--bundle", process.env.ESPADMIN_TEST_BUNDLE, "--state-dir", join(dir, "sim")],
      { ESPADMIN_DATA_DIR: join(dir, "sim-data") });
    const msg = await out.wait("presence online", (m) => m.topic === "presence" && m.device_id === deviceID && m.payload.data.online === true);
    assert.equal(msg.payload.type, "presence");
    assert.ok(out.msgs.every((m) => m.topic === "presence"), "only presence events pass the filter");
    await helper.unload();
  });

  test("a flow's command reaches the device and its acknowledgement comes back", async () => {
    const flow = [
      flowServer(),
      { id: "ev", type: "espadmin events", server: "srv", types: "command", device: deviceID, wires: [["acks"]] },
      { id: "cmd", type: "espadmin command", server: "srv", command: "debug", wires: [["sent"]] },
      { id: "acks", type: "helper" },
      { id: "sent", type: "helper" },
    ];
    await helper.load([serverNode, eventsNode, commandNode], flow, credentials());
    const acks = collector(helper.getNode("acks"));
    const sent = collector(helper.getNode("sent"));
    await until("the events node to connect", () => streamConnected(helper.getNode("ev")));
    await until("the device online", async () => (await api("GET", `/api/v1/tenants/acme/devices/${deviceID}`)).online);
    helper.getNode("cmd").receive({ payload: { device_id: deviceID, enabled: true } });
    const s = await sent.wait("the created command", () => true);
    const command = s.payload.items[0];
    assert.equal(command.name, "debug");
    assert.equal(command.device_id, deviceID);
    const ack = await acks.wait("the acknowledgement", (m) => m.payload.data.id === command.id && m.payload.data.state === "succeeded");
    assert.equal(ack.topic, "command");

    // Bad input fails the message with a clear error instead of calling the server.
    const errors = [];
    helper.getNode("cmd").on("call:error", (call) => errors.push(String(call.firstArg)));
    helper.getNode("cmd").receive({ payload: { command: "explode", device_id: deviceID } });
    await until("the error", async () => errors.length > 0);
    assert.match(errors[0], /unknown command "explode"/);
    await helper.unload();
  });

  test("a flow sets a config value and the device applies it", async () => {
    const flow = [
      flowServer(),
      { id: "ev", type: "espadmin events", server: "srv", types: "config", device: deviceID, wires: [["synced"]] },
      { id: "cfg", type: "espadmin config", server: "srv", device: deviceID, wires: [["stored"]] },
      { id: "synced", type: "helper" },
      { id: "stored", type: "helper" },
    ];
    await helper.load([serverNode, eventsNode, configNode], flow, credentials());
    const synced = collector(helper.getNode("synced"));
    const stored = collector(helper.getNode("stored"));
    await until("the events node to connect", () => streamConnected(helper.getNode("ev")));
    helper.getNode("cfg").receive({ payload: { interval: 30, label: "porch light" } });
    const s = await stored.wait("the stored entries", () => true);
    const keys = s.payload.entries.map((e) => `${e.key}=${JSON.stringify(e.value)}:${e.type}`).sort();
    assert.deepEqual(keys, ["interval=30:int", 'label="porch light":string']);
    await synced.wait("the config applied", (m) => m.payload.data.state === "in_sync");
    // A second write replaces the value: the node sends the entry's current version.
    stored.msgs.length = 0;
    helper.getNode("cfg").receive({ payload: { interval: 60 } });
    const again = await stored.wait("the replaced entry", () => true);
    const interval = again.payload.entries.find((e) => e.key === "interval");
    assert.equal(interval.value, 60);
    assert.equal(interval.version, 2);
    await helper.unload();
  });

  test("after the server restarts, the events node resumes with the last event's ID and hears that events may be lost", async () => {
    const flow = [
      flowServer(),
      { id: "ev", type: "espadmin events", server: "srv", wires: [["out"]] },
      { id: "out", type: "helper" },
    ];
    await helper.load([serverNode, eventsNode], flow, credentials());
    const out = collector(helper.getNode("out"));
    const ev = helper.getNode("ev");
    await until("the events node to connect", () => streamConnected(ev));
    const spare = await api("POST", "/api/v1/tenants/acme/devices", { name: "spare" });
    await out.wait("the new device's event", (m) => m.topic === "device" && m.device_id === spare.id);
    assert.ok(!out.msgs.some((m) => m.topic === "dropped"), "a fresh stream reports no loss");

    // The new process holds no events of the old one: resuming after the last event it
    // received (Last-Event-ID), the node is told it may have missed some.
    const exited = new Promise((r) => serve.once("exit", r));
    serve.kill("SIGTERM");
    await exited;
    serve = start(serveArgs);
    await until("the server again", async () => (await fetch(url + "/readyz")).ok);
    const lost = await out.wait("the dropped event", (m) => m.topic === "dropped");
    assert.equal(lost.payload.data.reason, "resume");
    await helper.unload();
  });
});

// streamConnected reports whether an events node has shown its stream as connected (the
// test helper records every status call).
async function streamConnected(node) {
  return node.status.getCalls().some((c) => c.thisValue === node && c.args[0] && c.args[0].text === "connected");
}
