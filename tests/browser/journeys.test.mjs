// The main journeys of the web UI in a real browser against a real `espadmin serve` and a
// simulated device. Each step keeps a screenshot in artifacts/. Run with ./run.sh.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  TIMEOUT, buildBinary, haveChromium, launchBrowser, screenshot, startServer, startSim, tempDir,
} from "./harness.mjs";

const present = haveChromium();
const OWNER = { name: "Ada Owner", email: "ada@example.com", password: "correct horse battery staple" };
const VIEWER = { name: "Vic Viewer", email: "vic@example.com", password: "another long passphrase 42" };

describe("web UI journeys", { skip: present ? false : "chromium is not installed (set CI=true to make this a failure)" }, () => {
  let tmp, bin, server, owner, viewerCtx, sim, page;
  const problems = [];
  const state = {};

  // watch records uncaught page errors and CSP violations: either fails the run at the end.
  function watch(p, who) {
    p.on("pageerror", (err) => problems.push(`${who}: uncaught ${err.message}`));
    p.on("console", (msg) => {
      if (/Content Security Policy|Refused to/.test(msg.text())) problems.push(`${who}: ${msg.text()}`);
    });
    p.setDefaultTimeout(TIMEOUT);
    return p;
  }

  before(async () => {
    tmp = tempDir();
    bin = buildBinary(tmp.dir);
    server = await startServer(bin, tmp.dir);
    owner = await launchBrowser(tmp.dir);
    page = watch(owner.pages()[0] || (await owner.newPage()), "owner");
  });

  after(async () => {
    await sim?.stop();
    await viewerCtx?.close();
    await owner?.close();
    await server?.stop();
    tmp?.cleanup();
  });

  test("an anonymous visitor of a fresh install is sent to setup", async () => {
    await page.goto(server.url + "/t/acme/devices");
    assert.equal(new URL(page.url()).pathname, "/setup");
  });

  test("first-run setup shows field errors, then creates the owner and tenant", async () => {
    await page.goto(server.setupURL);
    await page.getByLabel("Your name").fill(OWNER.name);
    await page.getByLabel("Email").fill("not-an-email");
    await page.getByLabel("Password").fill(OWNER.password);
    await page.getByLabel("Tenant name").fill("Acme");
    await page.getByLabel("Tenant URL name (slug)").fill("acme");
    await page.getByRole("button", { name: "Create owner and tenant" }).click();
    const emailError = page.locator('[data-error-for="email"]');
    await emailError.filter({ hasText: /\S/ }).waitFor();
    assert.equal(await page.getByLabel("Email").getAttribute("aria-invalid"), "true");
    await screenshot(page, "01-setup-field-error");
    await page.getByLabel("Email").fill(OWNER.email);
    await page.getByRole("button", { name: "Create owner and tenant" }).click();
    await page.waitForURL(/\/t\/acme\/$/);
    await page.locator("#stat-total").filter({ hasText: "0" }).waitFor();
    await screenshot(page, "02-dashboard-empty");
  });

  test("sign out, a wrong password is explained, then sign in", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/login$/);
    await page.getByLabel("Email").fill(OWNER.email);
    await page.getByLabel("Password").fill("wrong password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator("[data-form-error]").filter({ hasText: /\S/ }).waitFor();
    await screenshot(page, "03-login-error");
    await page.getByLabel("Password").fill(OWNER.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.waitForURL(/\/t\/acme\/$/);
  });

  test("create a device: the secret and the bundle are shown once", async () => {
    await page.getByRole("link", { name: "Devices", exact: true }).click();
    await page.waitForURL(/\/t\/acme\/devices$/);
    await page.getByRole("button", { name: "Create device" }).click();
    await page.locator('[data-error-for="name"]').filter({ hasText: /\S/ }).waitFor();
    await page.getByLabel("Name", { exact: true }).fill("kitchen-sensor");
    await page.getByLabel("Tags (comma-separated)").fill("kitchen, sensors");
    await page.getByRole("button", { name: "Create device" }).click();
    const box = page.locator("#created-device");
    await box.waitFor({ state: "visible" });
    state.deviceID = (await box.locator('[data-f="id"]').textContent()).trim();
    assert.ok((await page.locator("#created-secret").textContent()).length > 20, "secret shown");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download provisioning bundle" }).click(),
    ]);
    state.bundle = join(tmp.dir, "bundle.json");
    await download.saveAs(state.bundle);
    await page.locator(`tr[data-device="${state.deviceID}"] [data-status="offline"]`).waitFor();
    await screenshot(page, "04-device-created");
  });

  test("the device comes online without reloading the page", async () => {
    await page.evaluate(() => { window.__noReload = true; });
    sim = startSim(bin, state.bundle, tmp.dir);
    await page.locator(`tr[data-device="${state.deviceID}"] [data-status="online"]`).waitFor();
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
    await screenshot(page, "05-device-online");
    // The filter narrows the list.
    await page.getByLabel("Status").selectOption("false");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByText("No devices match.").waitFor();
    await page.getByLabel("Status").selectOption("");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator(`tr[data-device="${state.deviceID}"]`).waitFor();
  });

  test("restart from the device page is acknowledged live", async () => {
    await page.getByRole("link", { name: "kitchen-sensor" }).click();
    await page.waitForURL(new RegExp(`/devices/${state.deviceID}$`));
    await page.locator('#presence[data-status="online"]').waitFor();
    await page.locator("#device-metadata").getByText("Firmware", { exact: true }).waitFor();
    await page.evaluate(() => { window.__noReload = true; });
    await page.getByRole("button", { name: "Restart" }).click();
    await page.locator('#command-rows [data-state="succeeded"]').waitFor();
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
    await screenshot(page, "06-device-restart-acknowledged");
  });

  test("a config edit reaches the device and shows in sync", async () => {
    await page.getByLabel("Key").fill("interval");
    await page.getByLabel("Type").selectOption("int");
    await page.getByLabel("Value").fill("not a number");
    await page.getByRole("button", { name: "Set on this device" }).click();
    await page.locator('#config-form [data-error-for="value"]').filter({ hasText: /\S/ }).waitFor();
    await page.getByLabel("Value").fill("30");
    await page.getByRole("button", { name: "Set on this device" }).click();
    await page.locator('#config-rows tr[data-key="interval"]').waitFor();
    await page.locator('#config-sync[data-state="in_sync"]').waitFor();
    await screenshot(page, "07a-device-config-in-sync");
  });

  test("live logs arrive in the console, and the text filter narrows them", async () => {
    await page.getByRole("button", { name: "Start streaming" }).click();
    await page.locator("#log-lines .log-line").first().waitFor();
    await page.getByLabel("Filter text").fill("no line contains this");
    await page.waitForFunction(() => document.querySelectorAll("#log-lines .log-line:not(.marker)").length === 0);
    await page.getByLabel("Filter text").fill("");
    await page.locator("#log-lines .log-line").first().waitFor();
    await screenshot(page, "07b-device-live-logs");
    await page.getByRole("button", { name: "Stop streaming" }).click();
  });

  test("the dashboard counts the device and charts its firmware", async () => {
    await page.getByRole("link", { name: "Dashboard" }).click();
    await page.locator("#stat-total").filter({ hasText: "1" }).waitFor();
    await page.locator("#fw-chart svg rect.chart-bar").waitFor();
    await screenshot(page, "07-dashboard");
    await page.getByRole("button", { name: /theme/ }).click();
    assert.match(await page.evaluate(() => document.documentElement.dataset.theme), /^(dark|light)$/);
    await screenshot(page, "08-dashboard-other-theme");
  });

  test("projects: create one; an upload that is not a firmware image is refused with a readable message", async () => {
    await page.getByRole("link", { name: "Projects" }).click();
    await page.getByLabel("Name").fill("thermostat");
    await page.getByLabel("Description").fill("living-room thermostat");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.waitForURL(/\/t\/acme\/projects\/[^/]+$/);
    await page.locator("#release-rows").getByText("No releases yet.").waitFor();
    const junk = join(tmp.dir, "junk.bin");
    writeFileSync(junk, Buffer.alloc(64 * 1024, 0x5a));
    await page.getByLabel("Version (v-x.y.z)").fill("v-1.0.0");
    await page.getByLabel("Firmware image (.bin)").setInputFiles(junk);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.locator("#upload-form").locator("[data-form-error], [data-error-for]").filter({ hasText: /\S/ }).first().waitFor();
    await screenshot(page, "09a-project-upload-refused");
  });

  test("API tokens are shown once; the audit log records the changes", async () => {
    await page.getByRole("link", { name: "API tokens" }).click();
    await page.getByLabel("Name").fill("ci");
    await page.getByLabel("devices:read").check();
    await page.getByRole("button", { name: "Create token" }).click();
    await page.locator("#token-result").waitFor({ state: "visible" });
    assert.match(await page.getByLabel("Token", { exact: true }).inputValue(), /^esp_/);
    await page.locator("#token-rows").getByText("ci", { exact: true }).waitFor();
    await screenshot(page, "09-tokens");
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.locator("#audit-rows").getByText("device.create").waitFor();
    await screenshot(page, "10-audit");
  });

  test("invite a viewer, who sees no action they may not take", async () => {
    await page.getByRole("link", { name: "Members" }).click();
    await page.getByLabel("Email").fill(VIEWER.email);
    await page.getByLabel("Role", { exact: true }).selectOption("viewer");
    await page.getByRole("button", { name: "Invite" }).click();
    await page.locator("#invite-result").waitFor({ state: "visible" });
    const link = await page.getByLabel("Invitation link").inputValue();
    assert.match(link, /\/invitations\/accept\?token=/);
    await page.locator("#invitation-rows").getByText(VIEWER.email).waitFor();
    await screenshot(page, "11-members-invited");

    viewerCtx = await launchBrowser(tmp.dir);
    const v = watch(viewerCtx.pages()[0] || (await viewerCtx.newPage()), "viewer");
    await v.goto(link);
    await v.waitForURL(/\/login\?next=/);
    await v.getByRole("link", { name: "Create an account" }).click();
    await v.getByLabel("Your name").fill(VIEWER.name);
    await v.getByLabel("Email").fill(VIEWER.email);
    await v.getByLabel("Password").fill(VIEWER.password);
    await v.getByRole("button", { name: "Create account" }).click();
    await v.waitForURL(/\/invitations\/accept\?token=/);
    await screenshot(v, "12-invitation");
    await v.getByRole("button", { name: "Accept invitation" }).click();
    await v.waitForURL(/\/t\/acme\/$/);
    await v.locator("#stat-total").filter({ hasText: "1" }).waitFor();

    await v.getByRole("link", { name: "Devices", exact: true }).click();
    await v.locator(`tr[data-device="${state.deviceID}"]`).waitFor();
    for (const name of ["Create device", "Restart selected", "Debug logs on"]) {
      assert.equal(await v.getByRole("button", { name }).count(), 0, `viewer sees "${name}"`);
    }
    assert.equal(await v.locator('#device-rows input[type="checkbox"]').count(), 0, "viewer can select devices");
    await screenshot(v, "13-viewer-devices");
    await v.getByRole("link", { name: "kitchen-sensor" }).click();
    await v.locator('#presence[data-status="online"]').waitFor();
    for (const name of ["Restart", "Debug logs on", "Save", "Set on this device", /Rotate credentials/, /Disable device/]) {
      assert.equal(await v.getByRole("button", { name }).count(), 0, `viewer sees "${name}"`);
    }
    await screenshot(v, "14-viewer-device");
    await v.getByRole("link", { name: "Members" }).click();
    await v.locator("#member-rows").getByText(OWNER.email).waitFor();
    assert.equal(await v.getByRole("button", { name: "Invite" }).count(), 0);
    assert.equal(await v.getByRole("link", { name: "Audit log" }).count(), 0);
  });

  test("phone-width layout", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.getByRole("link", { name: "Devices", exact: true }).click();
    await page.locator(`tr[data-device="${state.deviceID}"]`).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow}px at phone width`);
    await screenshot(page, "15-devices-phone");
  });

  test("no page threw or broke the Content-Security-Policy", () => {
    assert.deepEqual(problems, []);
  });
});
