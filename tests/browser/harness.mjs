// Test harness of the browser journeys: builds espadmin, starts `espadmin serve` on free
// ports with a fresh data folder, and drives Debian's chromium through playwright-core.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = resolve(here, "../..");
export const artifacts = join(here, "artifacts");
export const chromiumPath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

// Journeys are long: one expect waits at most this long for the page to catch up.
export const TIMEOUT = 20_000;

export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

// buildBinary compiles espadmin once per run (ESPADMIN_BIN uses a ready binary instead).
export function buildBinary(dir) {
  if (process.env.ESPADMIN_BIN) return process.env.ESPADMIN_BIN;
  const bin = join(dir, "espadmin");
  execFileSync("go", ["build", "-o", bin, "./cmd/espadmin"], { cwd: repoRoot, stdio: "inherit" });
  return bin;
}

// lineWaiter collects a process's output lines and resolves waiters when a line matches.
function lineWaiter(proc, name) {
  const lines = [];
  const waiters = [];
  let exited = null;
  const onData = (buf) => {
    for (const line of buf.toString().split("\n")) {
      if (!line.trim()) continue;
      lines.push(line);
      if (process.env.VERBOSE) console.error(`[${name}] ${line}`);
      for (const w of [...waiters]) {
        const m = line.match(w.re);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          clearTimeout(w.timer);
          w.res(m);
        }
      }
    }
  };
  proc.stdout.on("data", onData);
  proc.stderr.on("data", onData);
  proc.on("exit", (code) => {
    exited = code;
    for (const w of waiters.splice(0)) {
      clearTimeout(w.timer);
      w.rej(new Error(`${name} exited (${code}) before printing ${w.re}; last output:\n${lines.slice(-20).join("\n")}`));
    }
  });
  return {
    lines,
    wait(re, timeout = 30_000) {
      for (const l of lines) {
        const m = l.match(re);
        if (m) return Promise.resolve(m);
      }
      if (exited !== null) return Promise.reject(new Error(`${name} already exited (${exited})`));
      return new Promise((res, rej) => {
        const w = { re, res, rej };
        w.timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          rej(new Error(`${name} did not print ${re} within ${timeout} ms; last output:\n${lines.slice(-20).join("\n")}`));
        }, timeout);
        waiters.push(w);
      });
    },
  };
}

// startServer runs `espadmin serve` and returns its URL and the setup URL from its log.
export async function startServer(bin, dir) {
  const httpPort = await freePort();
  const mqttPort = await freePort();
  const dataDir = join(dir, "data");
  mkdirSync(dataDir, { recursive: true });
  const url = `http://127.0.0.1:${httpPort}`;
  const env = {
    ...process.env,
    ESPADMIN_DATA_DIR: dataDir,
    ESPADMIN_HTTP_ADDR: `127.0.0.1:${httpPort}`,
    ESPADMIN_PUBLIC_URL: url,
    ESPADMIN_MQTT_ADDR: `127.0.0.1:${mqttPort}`,
    ESPADMIN_MQTT_PUBLIC_HOST: "127.0.0.1",
    ESPADMIN_MQTT_TLS_ADDR: "",
    ESPADMIN_MQTT_WS_ADDR: "",
    // The broker settings journey points a tenant at loopback addresses.
    ESPADMIN_MQTT_BRIDGE_ALLOW_PRIVATE: "true",
    ESPADMIN_SIGNUP: "open",
    ESPADMIN_LOG_FORMAT: "json",
    ESPADMIN_LOG_LEVEL: "info",
  };
  const proc = spawn(bin, ["serve"], { env, stdio: ["ignore", "pipe", "pipe"] });
  const out = lineWaiter(proc, "serve");
  const m = await out.wait(/"setup_url":"([^"]+)"/);
  await out.wait(/http server listening/);
  return {
    url, mqttPort, setupURL: m[1], proc, out,
    async stop() {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await done;
    },
  };
}

// startSim runs the device simulator on a provisioning bundle file; name keeps the state of
// several simulators apart.
export function startSim(bin, bundle, dir, name = "sim") {
  const proc = spawn(bin, ["sim", "--bundle", bundle, "--state-dir", join(dir, `${name}-state`)],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ESPADMIN_LOG_FORMAT: "json", ESPADMIN_DATA_DIR: join(dir, `${name}-data`) } });
  const out = lineWaiter(proc, name);
  return {
    proc, out,
    async stop() {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await done;
    },
  };
}

// makeImage writes a valid ESP32 application image (server/ota/otatest/cmd/mkimage) and returns its
// path.
export function makeImage(dir, { chip, version, size = 0 }) {
  const file = join(dir, `firmware-${chip}-${version}.bin`);
  execFileSync("go", ["run", "./server/ota/otatest/cmd/mkimage", "-chip", chip, "-version", version, "-size", String(size), "-o", file],
    { cwd: repoRoot, stdio: "inherit" });
  return file;
}

// haveChromium reports whether the browser is installed; in CI a missing browser is a
// failure, never a skip.
export function haveChromium() {
  if (existsSync(chromiumPath)) return true;
  if (process.env.CI === "true") throw new Error(`${chromiumPath} is missing (CI=true): install Debian's chromium (scripts/install-test-deps.sh)`);
  return false;
}

export async function launchBrowser(dir) {
  const profile = mkdtempSync(join(dir, "profile-"));
  return chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-component-update", "--disable-sync"],
    acceptDownloads: true,
    viewport: { width: 1200, height: 900 },
  });
}

// tempDir makes a temporary folder for one suite's server, binary and browser profile.
export function tempDir() {
  const d = mkdtempSync(join(tmpdir(), "espadmin-ui-"));
  return { dir: d, cleanup: () => rmSync(d, { recursive: true, force: true }) };
}

export async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
}

// watchPage records the page's uncaught errors and Content-Security-Policy violations in
// problems (a suite asserts it stays empty) and sets the default timeout. Its goto and reload
// return once a UI page's script has set the page up (body[data-ready], set by app.js): the
// script is a module loaded after the load event, and a click before it would be lost.
export function watchPage(page, problems, who = "") {
  const prefix = who ? `${who}: ` : "";
  page.on("pageerror", (err) => problems.push(`${prefix}uncaught ${err.message}`));
  page.on("console", (msg) => {
    if (/Content Security Policy|Refused to/.test(msg.text())) problems.push(prefix + msg.text());
  });
  page.setDefaultTimeout(TIMEOUT);
  for (const method of ["goto", "reload"]) {
    const navigate = page[method].bind(page);
    page[method] = async (...args) => {
      const res = await navigate(...args);
      await page.waitForFunction(() =>
        !document.querySelector('script[type="module"]') || document.body?.dataset.ready === "true");
      return res;
    };
  }
  return page;
}

// pageAPI returns a function that calls the JSON API from the signed-in page, as its scripts
// do (session cookie, CSRF header): (method, path, body) → { status, body }.
export function pageAPI(page) {
  return (method, path, body) => page.evaluate(async ([method, path, body]) => {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = document.querySelector('meta[name="csrf-token"]')?.content || "";
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch(path, { method, credentials: "same-origin", headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed = null;
    try { parsed = text ? JSON.parse(text) : null; } catch { parsed = null; }
    return { status: res.status, body: parsed };
  }, [method, path, body]);
}

// setUpOwner fills the first-run setup form with owner and tenant Acme (slug acme) and waits
// for the tenant's start page.
export async function setUpOwner(page, setupURL, owner) {
  await page.goto(setupURL);
  await page.getByLabel("Your name").fill(owner.name);
  await page.getByLabel("Email").fill(owner.email);
  await page.getByLabel("Password").fill(owner.password);
  await page.getByLabel("Tenant name").fill("Acme");
  await page.getByLabel("Tenant URL name (slug)").fill("acme");
  await page.getByRole("button", { name: "Create owner and tenant" }).click();
  await page.waitForURL(/\/t\/acme\/$/);
}
