// The main journeys of the web UI in a real browser against a real `espadmin serve` and a
// simulated device. Each step keeps a screenshot in artifacts/. Run with ./run.sh.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  TIMEOUT, artifacts, buildBinary, haveChromium, launchBrowser, makeImage, pageAPI, screenshot, setUpOwner, startServer, startSim,
  tempDir, watchPage,
} from "./harness.mjs";

const present = haveChromium();
const OWNER = { name: "Ada Owner", email: "ada@example.com", password: "correct horse battery staple" };
const VIEWER = { name: "Vic Viewer", email: "vic@example.com", password: "another long passphrase 42" };

describe("web UI journeys", { skip: present ? false : "chromium is not installed (set CI=true to make this a failure)" }, () => {
  let tmp, bin, server, owner, viewerCtx, sim, sim2, page;
  const problems = [];
  const state = {};

  // watch records uncaught page errors and CSP violations: either fails the run at the end.
  const watch = (p, who) => watchPage(p, problems, who);

  before(async () => {
    tmp = tempDir();
    bin = buildBinary(tmp.dir);
    server = await startServer(bin, tmp.dir);
    owner = await launchBrowser(tmp.dir);
    page = watch(owner.pages()[0] || (await owner.newPage()), "owner");
  });

  after(async () => {
    await sim?.stop();
    await sim2?.stop();
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
    await page.getByLabel("Status").selectOption("offline");
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
    await page.getByRole("tab", { name: "Commands" }).click();
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Restart" }).click();
    await page.locator('#command-rows [data-state="succeeded"]').waitFor();
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
    await screenshot(page, "06-device-restart-acknowledged");
  });

  test("a config edit reaches the device and shows in sync", async () => {
    await page.getByRole("tab", { name: "Config" }).click();
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
    await page.getByRole("tab", { name: "Logs" }).click();
    await page.getByRole("button", { name: "Start streaming" }).click();
    await page.locator("#log-lines .log-line").first().waitFor();
    await page.getByLabel("Filter text").fill("no line contains this");
    await page.waitForFunction(() => document.querySelectorAll("#log-lines .log-line:not(.marker)").length === 0);
    // An empty result says so instead of leaving a blank box.
    await page.locator('#log-lines [data-empty="filter"]').filter({ hasText: "No lines match the filter." }).waitFor();
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

  test("upload a release: a progress bar, then the details read from the image", async () => {
    state.projectURL = page.url();
    state.projectID = new URL(state.projectURL).pathname.split("/").pop();
    const image = makeImage(tmp.dir, { chip: "esp32s3", version: "v-1.1.0", size: 768 * 1024 });
    await page.getByLabel("Version (v-x.y.z)").fill("v-1.1.0");
    await page.getByLabel("Firmware image (.bin)").setInputFiles(image);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.locator("#upload-form [data-form-done]").filter({ hasText: "Release v-1.1.0 uploaded" }).waitFor();
    assert.equal(await page.locator("#upload-progress").evaluate((e) => e.value), 100, "the progress bar is full");
    const rel = page.locator('#release-rows tr[data-release="v-1.1.0"]');
    await rel.locator('[data-f="chip"]').filter({ hasText: "esp32s3" }).waitFor();
    assert.match(await rel.locator('[data-f="app_version"]').textContent(), /^v-1\.1\.0/);
    assert.match(await rel.locator('[data-f="idf_version"]').textContent(), /v5\.2\.1/);
    await screenshot(page, "09b-project-release-uploaded");
  });

  test("a device created in the project comes online, and a rollout updates it live", async () => {
    await page.getByRole("link", { name: "Devices", exact: true }).click();
    await page.getByLabel("Name", { exact: true }).fill("thermostat-1");
    await page.getByLabel("Project (optional)").selectOption({ label: "thermostat" });
    await page.getByRole("button", { name: "Create device" }).click();
    const box = page.locator("#created-device");
    await box.locator('[data-f="name"]').filter({ hasText: "thermostat-1" }).waitFor();
    state.thermoID = (await box.locator('[data-f="id"]').textContent()).trim();
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download provisioning bundle" }).click(),
    ]);
    const bundle = join(tmp.dir, "bundle-thermostat.json");
    await download.saveAs(bundle);
    sim2 = startSim(bin, bundle, tmp.dir, "sim2");

    await page.goto(state.projectURL);
    const dev = page.locator(`#project-device-rows tr[data-device="${state.thermoID}"]`);
    await dev.locator('[data-status="online"]').waitFor();
    await dev.locator('[data-firmware="v-1.0.0"]').waitFor();
    await page.evaluate(() => { window.__noReload = true; });
    await page.getByLabel("Release", { exact: true }).selectOption({ label: "v-1.1.0" });
    await page.getByLabel("Target").selectOption("all");
    // Starting asks first, naming the release, the target and how many devices it reaches.
    const asked = new Promise((res) => page.once("dialog", (d) => { res(d.message()); d.accept(); }));
    await page.getByRole("button", { name: "Start rollout" }).click();
    assert.match(await asked, /v-1\.1\.0 to every device of the project: 1 device\b/);
    await page.locator("#rollout-rows tr").first().locator("[data-state]").waitFor();
    await screenshot(page, "09c-rollout-started");
    await page.locator('#rollout-rows [data-state="completed"]').waitFor();
    await page.locator(`#rollout-device-rows tr[data-rollout-device="${state.thermoID}"] [data-state="succeeded"]`).waitFor();
    await dev.locator('[data-firmware="v-1.1.0"]').waitFor();
    assert.equal(await page.evaluate(() => window.__noReload), true, "the page was not reloaded");
    await screenshot(page, "09d-rollout-completed");
  });

  test("project variables: a secret is write-only; the device's config versions show diffs and roll back", async () => {
    const form = page.locator("#project-config-form");
    await form.getByLabel("Variable key").fill("api_token");
    await form.getByLabel("Variable value").fill("hunter2-very-secret");
    await form.getByLabel("secret (write-only)").check();
    await page.getByRole("button", { name: "Set variable" }).click();
    await page.locator('#variable-rows tr[data-key="api_token"] [data-secret="true"]').filter({ hasText: "set" }).waitFor();
    await form.getByLabel("Variable key").fill("interval");
    await form.getByLabel("Variable type").selectOption("int");
    await form.getByLabel("Variable value").fill("60");
    await page.getByRole("button", { name: "Set variable" }).click();
    await page.locator('#variable-rows tr[data-key="interval"]').filter({ hasText: "60" }).waitFor();
    assert.equal(await page.getByText("hunter2-very-secret").count(), 0, "the secret is never shown");
    await screenshot(page, "09e-project-variables");

    await page.getByRole("link", { name: "thermostat-1" }).first().click();
    await page.waitForURL(new RegExp(`/devices/${state.thermoID}$`));
    await page.locator("#device-metadata").getByText("v-1.1.0", { exact: true }).waitFor();
    await page.getByRole("tab", { name: "Updates" }).click();
    await page.locator('#update-rows [data-state="succeeded"]').waitFor();
    assert.match(await page.locator("#update-rows tr").first().textContent(), /v-1\.1\.0/);
    await page.getByRole("tab", { name: "Config" }).click();
    await page.locator('#config-rows tr[data-key="interval"]').waitFor();
    await page.locator('#config-sync[data-state="in_sync"]').waitFor();
    // A device value overrides the project's; rolling back to the version before removes it.
    await page.getByLabel("Key").fill("interval");
    await page.getByLabel("Type").selectOption("int");
    await page.getByLabel("Value").fill("90");
    await page.getByRole("button", { name: "Set on this device" }).click();
    await page.locator('#config-rows tr[data-key="interval"]').filter({ hasText: "90" }).filter({ hasText: "device" }).waitFor();
    const versions = page.locator("#config-versions .version");
    await versions.first().locator('[data-op="changed"]').filter({ hasText: "interval" }).waitFor();
    const current = Number(await versions.first().getAttribute("data-version"));
    assert.ok(current >= 3, `at least three config versions, got ${current}`);
    assert.equal(await page.getByText("hunter2-very-secret").count(), 0, "the secret is never shown");
    await screenshot(page, "09f-device-config-versions");
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: `Roll back to version ${current - 1}` }).click();
    await page.locator(`#config-versions .version[data-version="${current + 1}"]`).filter({ hasText: "rollback" }).waitFor();
    await page.locator('#config-rows tr[data-key="interval"]').filter({ hasText: "60" }).filter({ hasText: "project" }).waitFor();
    await page.locator('#config-sync[data-state="in_sync"]').waitFor();
    await screenshot(page, "09g-device-config-rolled-back");
    await page.getByRole("tab", { name: "Updates" }).click();
    await page.locator("#updates").screenshot({ path: join(artifacts, "09h-device-update-history.png") });
  });

  test("bulk tagging and a config push from the device list", async () => {
    await page.getByRole("link", { name: "Devices", exact: true }).click();
    await page.locator(`tr[data-device="${state.thermoID}"]`).waitFor();
    await page.getByLabel("Select every device shown").check();
    await page.getByLabel("Tag for the selected devices").fill("fleet-a");
    await page.getByRole("button", { name: "Add tag" }).click();
    await page.locator("#bulk-done").filter({ hasText: "Added tag fleet-a to 2 device(s)." }).waitFor();
    for (const id of [state.deviceID, state.thermoID]) {
      await page.locator(`tr[data-device="${id}"] .tags`).getByText("fleet-a").waitFor();
    }
    await page.getByRole("button", { name: "Push config" }).click();
    await page.locator("#bulk-done").filter({ hasText: /Configuration pushed to 2 device/ }).waitFor();
    await screenshot(page, "09i-devices-bulk");
  });

  test("errors, settings and the dashboard's rollouts and errors", async () => {
    await page.getByRole("link", { name: "Errors" }).click();
    await page.waitForURL(/\/t\/acme\/errors$/);
    await page.getByText("No errors match.").waitFor();
    await screenshot(page, "09j-errors");
    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await page.locator('#bugsnag-state[data-set="false"]').waitFor();
    await page.getByLabel("Notifier API key (32 hex digits)").fill("not a key");
    await page.getByRole("button", { name: "Save Bugsnag settings" }).click();
    await page.locator('#bugsnag-form [data-error-for="api_key"]').filter({ hasText: /\S/ }).waitFor();
    await page.getByLabel("Notifier API key (32 hex digits)").fill("0123456789abcdef0123456789abcdef");
    await page.getByRole("button", { name: "Save Bugsnag settings" }).click();
    await page.locator('#bugsnag-state[data-set="true"]').waitFor();
    assert.equal(await page.getByLabel("Notifier API key (32 hex digits)").inputValue(), "", "the key is not shown again");
    await page.getByLabel("Tenant name").fill("Acme Labs");
    await page.getByRole("button", { name: "Save name" }).click();
    await page.locator("#tenant-form [data-form-done]").filter({ hasText: "Saved." }).waitFor();
    await screenshot(page, "09k-settings");
    await page.getByRole("link", { name: "Dashboard" }).click();
    await page.locator("#dash-rollouts").getByText("No rollout is running.").waitFor();
    await page.locator("#dash-errors").getByText("No open errors.").waitFor();
  });

  test("settings: the broker's connection test, field errors, live state, a conflict, and back to built-in", async () => {
    await page.getByRole("link", { name: "Settings", exact: true }).click();
    await page.waitForURL(/\/t\/acme\/settings$/);
    const status = page.locator("#broker-status");
    await page.locator('#broker-status[data-state="builtin"]').waitFor();
    assert.equal(await page.getByLabel("the built-in broker").isChecked(), true, "built-in is the default");
    assert.equal(await page.getByLabel(/^Broker URL/).isVisible(), false, "the external broker's fields are hidden for built-in");

    // External, with an address nothing listens on: the test says so readably.
    await page.getByLabel("the tenant's own broker (external)").check();
    await page.getByLabel(/^Broker URL/).fill("tcp://127.0.0.1:1");
    await page.getByLabel("Password (write-only)").fill("s3cret-password");
    await page.getByLabel("Username", { exact: true }).fill("espadmin");
    await page.getByRole("button", { name: "Test connection" }).click();
    const result = page.locator("#broker-test-result");
    await page.locator('#broker-test-result[data-result="unreachable"]').waitFor();
    assert.match(await result.textContent(), /^Unreachable: nothing answered at this address/);
    await screenshot(page, "09l-settings-broker-test-unreachable");

    // A scheme MQTT does not use is a field error next to the URL, from the test and from saving.
    await page.getByLabel(/^Broker URL/).fill("http://127.0.0.1:1883");
    await page.getByRole("button", { name: "Test connection" }).click();
    const urlError = page.locator('#broker-form [data-error-for="url"]');
    await urlError.filter({ hasText: /scheme "http" is not supported/ }).waitFor();
    assert.equal(await result.textContent(), "", "no test result next to a field error");
    await page.getByRole("button", { name: "Save broker settings" }).click();
    await urlError.filter({ hasText: /^Broker URL: scheme "http" is not supported/ }).waitFor();
    assert.equal(await page.getByLabel(/^Broker URL/).getAttribute("aria-invalid"), "true");
    await screenshot(page, "09m-settings-broker-field-error");

    // Saved with the unreachable address, the live state shows the failure without a reload;
    // the password reads back only as set.
    await page.getByLabel(/^Broker URL/).fill("tcp://127.0.0.1:1");
    await page.getByRole("button", { name: "Save broker settings" }).click();
    await page.locator("#broker-form [data-form-done]").filter({ hasText: "Saved: the server now connects to the tenant's broker." }).waitFor();
    assert.equal(await page.getByLabel("Password (write-only)").inputValue(), "", "the password is not shown again");
    await page.locator('#br-password-state[data-set="true"]').waitFor();
    await page.locator("#broker-last-error").filter({ hasText: /^Last error: Unreachable/ }).waitFor();
    assert.match(await status.getAttribute("data-state"), /^(connecting|disconnected|failed)$/);
    await page.locator("#broker-since").filter({ hasText: /^since / }).waitFor();
    await screenshot(page, "09n-settings-broker-external-state");

    // Someone else saves meanwhile (a second tab): this page's save is a readable 409, and
    // reloading the settings lets it save.
    const other = watch(await owner.newPage(), "owner (second tab)");
    await other.goto(server.url + "/t/acme/settings");
    await other.locator('#br-password-state[data-set="true"]').waitFor();
    await other.getByLabel("Topic root (empty means espadmin)").fill("acme");
    await other.getByRole("button", { name: "Save broker settings" }).click();
    await other.locator("#broker-form [data-form-done]").filter({ hasText: /^Saved/ }).waitFor();
    await other.close();

    await page.getByLabel("the built-in broker").check();
    assert.equal(await page.getByRole("button", { name: "Test connection" }).isVisible(), false, "no test for built-in");
    await page.getByRole("button", { name: "Save broker settings" }).click();
    await page.locator("#broker-form [data-form-error]").filter({ hasText: /changed by someone else/ }).waitFor();
    await screenshot(page, "09o-settings-broker-conflict");
    await page.getByRole("button", { name: "Reload the broker settings" }).click();
    await page.getByRole("button", { name: "Reload the broker settings" }).waitFor({ state: "hidden" });
    await page.waitForFunction(() => document.getElementById("br-topic-root").value === "acme");
    assert.equal(await page.locator("#broker-form [data-form-error]").textContent(), "", "the conflict message is gone");
    assert.equal(await page.getByLabel("the tenant's own broker (external)").isChecked(), true);

    // Back to built-in: saved, and the live state follows.
    await page.getByLabel("the built-in broker").check();
    await page.getByRole("button", { name: "Save broker settings" }).click();
    await page.locator("#broker-form [data-form-done]").filter({ hasText: "Saved: devices use the built-in broker." }).waitFor();
    await page.locator('#broker-status[data-state="builtin"]').waitFor();
    assert.equal(await page.locator("#broker-last-error").textContent(), "");
    await page.reload();
    await page.locator('#br-password-state[data-set="true"]').waitFor({ state: "attached" });
    assert.equal(await page.getByLabel("the built-in broker").isChecked(), true, "built-in after a reload");
    assert.equal(await page.getByLabel(/^Broker URL/).isVisible(), false);
    await screenshot(page, "09p-settings-broker-builtin");
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
    await page.locator("#audit-rows").getByText("device.create").first().waitFor();
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
    await v.locator("#stat-total").filter({ hasText: "2" }).waitFor();

    await v.getByRole("link", { name: "Devices", exact: true }).click();
    await v.locator(`tr[data-device="${state.deviceID}"]`).waitFor();
    for (const name of ["Create device", "Restart selected", "Debug logs on", "Push config", "Add tag", "Remove tag"]) {
      assert.equal(await v.getByRole("button", { name }).count(), 0, `viewer sees "${name}"`);
    }
    assert.equal(await v.locator('#device-rows input[type="checkbox"]').count(), 0, "viewer can select devices");
    await screenshot(v, "13-viewer-devices");
    await v.getByRole("link", { name: "kitchen-sensor" }).click();
    await v.locator('#presence[data-status="online"]').waitFor();
    for (const name of ["Restart", "Debug logs on", "Save", "Set on this device", /Rotate credentials/, /Disable device/]) {
      assert.equal(await v.getByRole("button", { name }).count(), 0, `viewer sees "${name}"`);
    }
    await v.getByRole("tab", { name: "Config" }).click();
    assert.equal(await v.getByRole("button", { name: /Roll back to version/ }).count(), 0, "viewer sees a rollback button");
    await v.locator("#config-versions .version").first().waitFor();
    await screenshot(v, "14-viewer-device");
    await v.getByRole("link", { name: "Projects" }).click();
    await v.getByRole("link", { name: "thermostat", exact: true }).click();
    await v.locator('#variable-rows tr[data-key="api_token"]').waitFor();
    await v.locator('#rollout-rows [data-state="completed"]').waitFor();
    for (const name of ["Upload", "Start rollout", "Set variable", /Remove variable/, /Delete release/]) {
      assert.equal(await v.getByRole("button", { name }).count(), 0, `viewer sees "${name}"`);
    }
    assert.equal(await v.getByText("hunter2-very-secret").count(), 0, "the secret is never shown");
    await screenshot(v, "14b-viewer-project");
    await v.getByRole("link", { name: "Errors" }).click();
    await v.getByText("No errors match.").waitFor();
    assert.equal(await v.getByRole("button", { name: /Resolve|Reopen/ }).count(), 0);
    assert.equal(await v.getByRole("link", { name: "Settings", exact: true }).count(), 0, "viewer sees the settings link");
    const res = await v.goto(server.url + "/t/acme/settings");
    assert.equal(res.status(), 403, "viewer may not open settings");
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

// The 500-device day: a fleet of simulated devices in two projects, and the device list's
// sorting, filtering, paging, "select all matching" with a confirmed bulk restart, CSV export,
// the dashboard's counts and paging through a project's rollouts. Its own server, so it runs
// alone:
//   node --test --test-name-pattern="500-device" journeys.test.mjs
describe("the 500-device day", { skip: present ? false : "chromium is not installed (set CI=true to make this a failure)" }, () => {
  let tmp, bin, server, browser, page;
  const sims = [];
  const problems = [];
  const ids = {};

  // api calls the JSON API from the signed-in page (session cookie and CSRF token).
  const api = (...args) => pageAPI(page)(...args);

  // until polls cond (async) every half second until it holds or the deadline passes.
  async function until(what, cond, timeout = 180_000) {
    const end = Date.now() + timeout;
    for (;;) {
      const v = await cond();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  before(async () => {
    tmp = tempDir();
    bin = buildBinary(tmp.dir);
    // Count the fleet every second, so the dashboard's chart has a history within the journey.
    process.env.ESPADMIN_HISTORY_FLEET_INTERVAL = "1s";
    try {
      server = await startServer(bin, tmp.dir);
    } finally {
      delete process.env.ESPADMIN_HISTORY_FLEET_INTERVAL;
    }
    browser = await launchBrowser(tmp.dir);
    page = browser.pages()[0] || (await browser.newPage());
    watchPage(page, problems);
    await setUpOwner(page, server.setupURL, OWNER);
  });

  after(async () => {
    for (const s of sims) {
      if (s.exitCode !== null) continue;
      const done = new Promise((r) => s.once("exit", r));
      s.kill("SIGTERM");
      await done;
    }
    await browser?.close();
    await server?.stop();
    tmp?.cleanup();
  });

  test("500 simulated devices in two projects come online", async () => {
    for (const name of ["north", "south"]) {
      const r = await api("POST", "/api/v1/tenants/acme/projects", { name });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      ids[name] = r.body.id;
    }
    const tok = await api("POST", "/api/v1/tenants/acme/tokens", { name: "sim", kind: "tenant", scopes: ["devices:write"] });
    assert.equal(tok.status, 201, JSON.stringify(tok.body));
    for (const [name, fw] of [["north", "v-1.0.0"], ["south", "v-2.0.0"]]) {
      const proc = spawn(bin, ["sim", "--server", server.url, "--token", tok.body.token, "--tenant", "acme", "--count", "250",
        "--project", ids[name], "--tags", name, "--firmware", fw, "--log-lines", "0", "--state-dir", join(tmp.dir, `sim-${name}`)],
      { stdio: ["ignore", "ignore", process.env.VERBOSE ? "inherit" : "ignore"], env: { ...process.env, ESPADMIN_DATA_DIR: join(tmp.dir, `sim-${name}-data`) } });
      sims.push(proc);
    }
    await until("500 devices online", async () => {
      const r = await api("GET", "/api/v1/tenants/acme/devices/stats");
      return r.status === 200 && r.body.online === 500;
    });
    await page.goto(server.url + "/t/acme/");
    await page.locator("#stat-online").filter({ hasText: /^500$/ }).waitFor();
    await page.locator("#stat-total").filter({ hasText: /^500$/ }).waitFor();
    const bars = page.locator("#fw-chart svg .chart-bar");
    // The dashboard redraws as the last devices report, so wait for the drawing of all 500.
    await until("the firmware chart of 500 devices", async () =>
      /v-1\.0\.0: 250.*v-2\.0\.0: 250/.test((await page.locator("#fw-chart svg").getAttribute("aria-label")) || ""), TIMEOUT);
    assert.equal(await bars.count(), 2, "one bar per firmware version");
    // Online devices over time: counts taken while the fleet came online, up to 500 now.
    const online = page.locator('#online-history svg.line-chart[aria-label$="now 500"]');
    await online.waitFor();
    const label = await online.getAttribute("aria-label");
    assert.ok(Number(label.match(/: (\d+) points/)[1]) >= 3, `several counts over time: ${label}`);
    assert.ok(await page.locator("#online-history polyline").getAttribute("points"), "a line is drawn");
    await page.locator("#errors-trend svg .chart-bar").first().waitFor();
    assert.equal(await page.locator("#errors-trend svg .chart-bar").count(), 14, "errors per day: one bar a day for 14 days");
    await screenshot(page, "50-dashboard-500-devices");
  });

  test("sort, filter and page through the device list with its total", async () => {
    await page.getByRole("link", { name: "Devices", exact: true }).click();
    await page.locator("#device-total").filter({ hasText: "Showing 50 of 500 devices." }).waitFor();
    const names = () => page.locator("#device-rows tr td:nth-child(3)").allTextContents();
    await page.locator('th[data-sort="name"] button').click();
    await page.locator('th[data-sort="name"][aria-sort="ascending"]').waitFor();
    await page.locator("#device-rows tr").first().filter({ hasText: "sim-0001" }).waitFor();
    let got = await names();
    assert.deepEqual(got, [...got].sort(), "ascending by name");
    await page.locator('th[data-sort="name"] button').click();
    await page.locator('th[data-sort="name"][aria-sort="descending"]').waitFor();
    await page.locator("#device-rows tr").first().filter({ hasText: "sim-0250" }).waitFor();
    got = await names();
    assert.deepEqual(got, [...got].sort().reverse(), "descending by name");
    assert.match(page.url(), /sort=-name/, "the order is in the URL");
    // Filter by project (picked by name) and firmware version.
    await page.getByLabel("Project", { exact: true }).selectOption({ label: "south" });
    await page.getByLabel("Firmware version").fill("v-2.0.0");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("#device-total").filter({ hasText: "Showing 50 of 250 devices." }).waitFor();
    assert.equal(await page.locator("#device-rows td.project").filter({ hasText: "north" }).count(), 0, "only south's devices");
    await page.locator("#device-rows td.project").filter({ hasText: "south" }).first().waitFor();
    await page.getByRole("button", { name: "Show 50 more" }).click();
    await page.locator("#device-total").filter({ hasText: "Showing 100 of 250 devices." }).waitFor();
    assert.equal(await page.locator("#device-rows tr").count(), 100);
    got = await names();
    assert.deepEqual(got, [...got].sort().reverse(), "the second page continues the order");
    await page.getByLabel("Firmware version").fill("v-9.9.9");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByText("No devices match.").waitFor();
    await page.locator("#device-total").filter({ hasText: "Showing 0 of 0 devices." }).waitFor();
    await page.getByLabel("Firmware version").fill("v-2.0.0");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.locator("#device-total").filter({ hasText: "of 250 devices." }).waitFor();
    await screenshot(page, "51-devices-sorted-filtered");
  });

  test("select all matching, then a bulk restart asks first and reaches every match", async () => {
    await page.locator("#select-all").check();
    await page.locator("#bulk-count").filter({ hasText: "50 selected" }).waitFor();
    await page.getByRole("button", { name: "Select all 250 matching" }).click();
    await page.locator("#bulk-count").filter({ hasText: "All 250 matching selected" }).waitFor();
    // Cancelling sends nothing.
    let message = "";
    page.once("dialog", (d) => { message = d.message(); d.dismiss(); });
    await page.getByRole("button", { name: "Restart selected" }).click();
    await until("the confirmation", async () => message !== "", TIMEOUT);
    assert.match(message, /Restart 250 devices\?/);
    const before = await api("GET", `/api/v1/tenants/acme/devices?project=${ids.south}&limit=1`);
    const first = before.body.items[0].id;
    assert.equal((await api("GET", `/api/v1/tenants/acme/devices/${first}/commands`)).body.items.length, 0, "cancelled: no command");
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Restart selected" }).click();
    await page.locator("#bulk-done").filter({ hasText: "restart sent to 250 device(s)" }).waitFor();
    await screenshot(page, "52-devices-bulk-restart");
    // Every south device got it, no north device did.
    await until("the restarts acknowledged", async () => {
      const r = await api("GET", `/api/v1/tenants/acme/devices/${first}/commands`);
      return r.body.items.length === 1 && r.body.items[0].state === "succeeded";
    });
    const north = await api("GET", `/api/v1/tenants/acme/devices?project=${ids.north}&limit=1`);
    assert.equal((await api("GET", `/api/v1/tenants/acme/devices/${north.body.items[0].id}/commands`)).body.items.length, 0);
  });

  test("export the filtered list as CSV", async () => {
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Export CSV" }).click(),
    ]);
    const file = join(tmp.dir, "devices.csv");
    await download.saveAs(file);
    const lines = readFileSync(file, "utf8").trim().split("\n");
    assert.equal(lines[0], "id,name,project_id,project,tags,status,firmware_version,ip,rssi,free_heap,last_seen_at,created_at");
    assert.equal(lines.length, 251, "a header and 250 devices");
    assert.ok(lines.slice(1).every((l) => l.includes(",south,") && l.includes(",v-2.0.0,")), "only the filtered devices");
    const sorted = lines.slice(1).map((l) => l.split(",")[1]);
    assert.deepEqual(sorted, [...sorted].sort().reverse(), "in the list's order");
  });

  test("a device's Restart and Disable ask first and say what happens", async () => {
    await page.locator("#device-rows a").first().click();
    await page.locator('#presence[data-status="online"]').waitFor();
    await page.locator("#device-meta").getByRole("link", { name: "south" }).waitFor();
    // Presence and health over time, from the device's own history.
    // The chart is redrawn when presence changes (the device may still be starting again after
    // the bulk restart), so wait for the drawing that ends online.
    await page.locator('#chart-online svg.line-chart[aria-label$="now 1"]').waitFor();
    await page.locator("#chart-heap svg.line-chart").waitFor();
    await page.locator("#chart-rssi svg.line-chart").waitFor();
    // The page is in tabs; the URL names the open one.
    await page.getByRole("tab", { name: "Commands" }).click();
    assert.match(page.url(), /#commands$/);
    assert.equal(await page.locator("#panel-overview").isVisible(), false, "one tab at a time");
    let message = "";
    page.once("dialog", (d) => { message = d.message(); d.dismiss(); });
    await page.getByRole("button", { name: "Restart", exact: true }).click();
    await until("the restart confirmation", async () => message !== "", TIMEOUT);
    assert.match(message, /^Restart sim-\d+\? It reboots at once/);
    const rows = page.locator("#command-rows tr[data-command]");
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1, "cancelled: only the bulk restart is listed");
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Restart", exact: true }).click();
    await until("two commands", async () => (await rows.count()) === 2, TIMEOUT);
    // The history reads as a summary with details on demand, State and Result beside it.
    await rows.first().getByText("reason: restart from the web UI").waitFor();
    await rows.first().locator("details pre").waitFor({ state: "attached" });
    assert.equal(await rows.first().locator("details pre").isVisible(), false, "details are folded");
    await rows.first().locator('[data-state="succeeded"]').waitFor();

    await page.getByRole("tab", { name: "Overview" }).click();
    message = "";
    page.once("dialog", (d) => { message = d.message(); d.dismiss(); });
    await page.getByRole("button", { name: "Disable device" }).click();
    await until("the disable confirmation", async () => message !== "", TIMEOUT);
    assert.match(message, /locks the device out at once/);
    // (The device may be offline for a moment: it is starting again after the restart above.)
    assert.match(await page.locator("#presence").textContent(), /^(online|offline)$/, "cancelled: still enabled");
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Disable device" }).click();
    await page.locator('#presence[data-status="offline"]').filter({ hasText: "disabled" }).waitFor();
    // A command to a device that is not connected says it waits.
    await page.getByRole("tab", { name: "Commands" }).click();
    page.once("dialog", (d) => d.accept());
    await page.getByRole("button", { name: "Restart", exact: true }).click();
    await page.locator("#cmd-done").filter({ hasText: "queued until the device connects" }).waitFor();
    await rows.first().locator('[data-state="queued"]').waitFor();
    await screenshot(page, "53-device-confirmations");
    await page.reload();
    // The page's script loads after the document, so wait for it to restore the tab.
    await until("a reload keeps the tab", async () =>
      (await page.getByRole("tab", { name: "Commands" }).getAttribute("aria-selected")) === "true" &&
      (await page.locator("#panel-commands").isVisible()), TIMEOUT);
    await page.getByRole("tab", { name: "Overview" }).click();
    await page.getByRole("button", { name: "Enable device" }).click();
    await page.locator("#presence").filter({ hasText: /^(online|offline)$/ }).waitFor();
  });

  test("the project page says how many devices it has and links to the full list", async () => {
    await page.goto(server.url + `/t/acme/projects/${ids.north}`);
    await page.locator("#project-device-total").filter({ hasText: "250 devices are linked" }).waitFor();
    await page.getByRole("link", { name: /in the device list/ }).click();
    await page.locator("#device-total").filter({ hasText: "Showing 50 of 250 devices." }).waitFor();
    assert.equal(await page.getByLabel("Project", { exact: true }).inputValue(), ids.north);
  });

  test("bulk provisioning: bad lines are listed and nothing is created, then a zip of bundles", async () => {
    await page.goto(server.url + "/t/acme/devices");
    await page.locator("#device-total").filter({ hasText: "of 500 devices." }).waitFor();
    const input = page.getByLabel("Devices (CSV file)");
    await input.setInputFiles({ name: "bad.csv", mimeType: "text/csv", buffer: Buffer.from("name,project,tags\nbench-1,north,a\n,north,\nbench-3,nowhere,\n") });
    await page.getByRole("button", { name: "Upload CSV and create" }).click();
    const errors = page.locator("#bulk-create-errors li");
    await errors.first().waitFor();
    assert.deepEqual(await errors.allTextContents(), ["Line 3: name is required", 'Line 4: project no project "nowhere" in this tenant']);
    assert.equal((await api("GET", "/api/v1/tenants/acme/devices/stats")).body.total, 500, "nothing was created");
    await screenshot(page, "54-bulk-provisioning-errors");
    await input.setInputFiles({ name: "good.csv", mimeType: "text/csv", buffer: Buffer.from("name,project,tags\nbench-1,north,a b\nbench-2,south,\nbench-3,,\n") });
    await page.getByRole("button", { name: "Upload CSV and create" }).click();
    await page.locator("#bulk-created").filter({ hasText: "3 devices created." }).waitFor();
    assert.equal(await errors.count(), 0);
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("link", { name: "Download their bundles (zip)" }).click(),
    ]);
    const zip = join(tmp.dir, "bundles.zip");
    await download.saveAs(zip);
    const bytes = readFileSync(zip);
    assert.equal(bytes.subarray(0, 2).toString(), "PK", "a zip file");
    for (const name of ["devices.csv", "0002-bench-1-", ".nvs.csv", "0004-bench-3-"]) assert.ok(bytes.includes(name), `the zip holds ${name}`);
    await page.locator("#device-total").filter({ hasText: "of 503 devices." }).waitFor();
    await screenshot(page, "55-bulk-provisioning-done");
  });

  test("the audit log and the errors page name members and projects instead of IDs", async () => {
    await page.goto(server.url + "/t/acme/settings/audit");
    await page.getByLabel("Action").fill("project.create");
    await page.locator("#audit-filter").getByRole("button").click();
    const created = page.locator("#audit-rows tr").filter({ hasText: "project.create" }).first();
    await created.waitFor();
    assert.match(await created.textContent(), /Ada Owner/, "the actor by name");
    assert.match(await created.textContent(), /project (north|south)/, "the project by name");
    assert.equal(await page.locator("#audit-rows").getByText(ids.north).count(), 0, "no raw project ID shown");
    await page.goto(server.url + "/t/acme/errors");
    await page.getByLabel("Project").selectOption({ label: "north" });
    await page.getByRole("button", { name: "Filter" }).click();
    await page.getByText("No errors match.").waitFor();
    assert.match(page.url(), new RegExp(`project=${ids.north}`));
  });

  test("page through a project's rollouts: the 20 newest, then the older ones", async () => {
    await page.goto(server.url + `/t/acme/projects/${ids.north}`);
    const image = makeImage(tmp.dir, { chip: "esp32", version: "v-1.1.0", size: 64 * 1024 });
    await page.getByLabel("Version (v-x.y.z)").fill("v-1.1.0");
    await page.getByLabel("Firmware image (.bin)").setInputFiles(image);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.locator("#upload-form [data-form-done]").filter({ hasText: "Release v-1.1.0 uploaded" }).waitFor();
    const releases = await api("GET", `/api/v1/tenants/acme/projects/${ids.north}/releases`);
    assert.equal(releases.status, 200, JSON.stringify(releases.body));
    const release = releases.body.items.find((r) => r.version === "v-1.1.0");
    // Twenty-one rollouts to bench-1 (tag "a"), which never connects: they stay active, and
    // the 250 simulated devices of the project are not touched.
    const started = [];
    for (let i = 0; i < 21; i++) {
      const r = await api("POST", "/api/v1/tenants/acme/rollouts", { release_id: release.id, target: { kind: "tag", tag: "a" } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      started.push(r.body.id);
    }
    await page.reload();
    const rows = page.locator("#rollout-rows tr");
    await rows.first().locator('[data-state="active"]').waitFor();
    assert.equal(await rows.count(), 20, "the first page holds the 20 newest");
    assert.equal(await rows.first().getAttribute("data-rollout"), started.at(-1), "the newest on top");
    await page.getByRole("button", { name: "Load older rollouts" }).click();
    await page.waitForFunction(() => document.querySelectorAll("#rollout-rows tr").length === 21);
    assert.equal(await rows.last().getAttribute("data-rollout"), started[0], "the oldest last");
    assert.equal(await page.getByRole("button", { name: "Load older rollouts" }).isVisible(), false, "nothing older");
    await screenshot(page, "56-rollouts-paged");
  });

  test("no page of the 500-device day threw or broke the Content-Security-Policy", () => {
    assert.deepEqual(problems, []);
  });
});

// A new user's first hour and a project with many rollouts, on a server of its own: the
// setup link, a mistyped address, bundles that point at localhost, release warnings that
// stay, rollouts that fail visibly, the newest rollout on top with its pager, the rollout's
// device table paged, a confirmation before starting, the log console of an offline device,
// and no missing file (favicon) on any page.
describe("first hour and rollouts", { skip: present ? false : "chromium is not installed (set CI=true to make this a failure)" }, () => {
  let tmp, bin, server, ctx, page, sim;
  const problems = [];
  const missing = [];
  const state = {};

  // call runs one API request in the page, as its scripts do (session cookie, CSRF header).
  const call = (...args) => pageAPI(page)(...args);

  // confirmNext accepts the next dialog and resolves with its message.
  const confirmNext = () => new Promise((res) => page.once("dialog", (d) => { res(d.message()); d.accept(); }));

  before(async () => {
    tmp = tempDir();
    bin = buildBinary(tmp.dir);
    server = await startServer(bin, tmp.dir);
    ctx = await launchBrowser(tmp.dir);
    page = ctx.pages()[0] || (await ctx.newPage());
    watchPage(page, problems);
    // Every file a page asks for exists (a missing favicon was a 404 on every page); the
    // mistyped address below is the one 404 asked for on purpose.
    page.on("response", (r) => {
      if (r.status() === 404 && !r.url().endsWith("/no-such-page")) missing.push(r.url());
    });
  });

  after(async () => {
    await sim?.stop();
    await ctx?.close();
    await server?.stop();
    tmp?.cleanup();
  });

  test("the server's address without the setup link says where the link is", async () => {
    await page.goto(server.url + "/");
    assert.equal(new URL(page.url()).pathname, "/setup");
    const box = page.locator("#setup-needs-link");
    await box.waitFor();
    assert.match(await box.textContent(), /setup_url/);
    assert.match(await box.textContent(), /espadmin user create/);
    assert.equal(await page.locator("form").count(), 0, "no form that could only fail");
    await screenshot(page, "h14-01-setup-without-link");
  });

  test("a mistyped address is a page, not JSON", async () => {
    const resp = await page.goto(server.url + "/no-such-page");
    assert.equal(resp.status(), 404);
    assert.match(resp.headers()["content-type"], /^text\/html/);
    await page.getByRole("heading", { name: "Page not found" }).waitFor();
    await page.getByRole("link", { name: "Go to the start page" }).waitFor();
  });

  test("setup, then every page of those who add devices warns that bundles point at this machine", async () => {
    await setUpOwner(page, server.setupURL, OWNER);
    await page.goto(server.url + "/t/acme/devices");
    const notice = page.locator('[data-notice="endpoint"]').first();
    await notice.waitFor();
    assert.match(await notice.textContent(), /127\.0\.0\.1.*--mqtt-public-host/);
    await screenshot(page, "h14-02-loopback-warning");
  });

  test("a release keeps its upload warning on its row", async () => {
    await page.getByRole("link", { name: "Projects" }).click();
    await page.getByLabel("Name").fill("fleet");
    await page.getByRole("button", { name: "Create project" }).click();
    await page.waitForURL(/\/t\/acme\/projects\/[^/]+$/);
    state.projectURL = page.url();
    state.projectID = new URL(state.projectURL).pathname.split("/").pop();
    // The image calls itself v-1.0.9 but is uploaded as v-1.1.0: stored, with a warning.
    const image = makeImage(tmp.dir, { chip: "esp32", version: "v-1.0.9", size: 256 * 1024 });
    await page.getByLabel("Version (v-x.y.z)").fill("v-1.1.0");
    await page.getByLabel("Firmware image (.bin)").setInputFiles(image);
    await page.getByRole("button", { name: "Upload" }).click();
    await page.locator("#upload-form [data-form-done]").filter({ hasText: "Release v-1.1.0 uploaded" }).waitFor();
    await page.reload();
    const warning = page.locator('#release-rows tr[data-release="v-1.1.0"] [data-f="warning"]');
    await warning.waitFor();
    assert.match(await warning.textContent(), /v-1\.0\.9/);
  });

  test("a rollout whose device failed is not a green 'completed', and the failed device shows what it downloaded", async () => {
    // One live device tagged canary and 120 that never connect, tagged bulk.
    const created = await call("POST", "/api/v1/tenants/acme/devices", { name: "canary-1", project_id: state.projectID, tags: ["canary"] });
    assert.equal(created.status, 201);
    state.canaryID = created.body.id;
    const bundle = join(tmp.dir, "canary.json");
    writeFileSync(bundle, JSON.stringify(created.body.provisioning));
    sim = startSim(bin, bundle, tmp.dir, "canary");
    const made = await page.evaluate(async ({ project }) => {
      const csrf = document.querySelector('meta[name="csrf-token"]').content;
      const ids = [];
      for (let i = 0; i < 120; i++) {
        const res = await fetch("/api/v1/tenants/acme/devices", {
          method: "POST", headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrf },
          body: JSON.stringify({ name: `bulk-${String(i).padStart(3, "0")}`, project_id: project, tags: i === 0 ? ["bulk", "one"] : ["bulk"] }),
        });
        if (res.status !== 201) throw new Error(`create device: HTTP ${res.status}`);
        ids.push((await res.json()).id);
      }
      return ids;
    }, { project: state.projectID });
    state.bulkIDs = made;

    // Serve other bytes than the release's hash, so the canary's update fails after it
    // downloaded the whole image.
    const tenant = await call("GET", "/api/v1/tenants/acme");
    const releases = await call("GET", `/api/v1/tenants/acme/projects/${state.projectID}/releases`);
    state.releaseID = releases.body.items[0].id;
    const blob = join(tmp.dir, "data", "blobs", "tenants", tenant.body.id, "releases", `${state.releaseID}.bin`);
    const bytes = readFileSync(blob);
    bytes[100] ^= 0xff;
    writeFileSync(blob, bytes);

    await page.goto(state.projectURL);
    await page.locator(`#project-device-rows tr[data-device="${state.canaryID}"] [data-status="online"]`).waitFor();
    await page.getByLabel("Release", { exact: true }).selectOption({ label: "v-1.1.0" });
    await page.getByLabel("Target").selectOption("tag");
    await page.getByLabel("Tag or percent").fill("canary");
    await page.getByLabel("Pause above (% failed)").fill("100");
    const asked = confirmNext();
    await page.getByRole("button", { name: "Start rollout" }).click();
    assert.match(await asked, /Start a rollout of v-1\.1\.0 to the devices tagged “canary”: 1 device\?/);
    const row = page.locator("#rollout-rows tr").first();
    const badge = row.locator('[data-outcome="failures"]');
    await badge.waitFor();
    assert.equal((await badge.textContent()).trim(), "completed, 1 failed");
    assert.match(await row.locator('[data-f="policy"]').textContent(), /pauses above 100% failed/);
    const dev = page.locator(`#rollout-device-rows tr[data-rollout-device="${state.canaryID}"]`);
    await dev.locator('[data-state="failed"]').waitFor();
    const progress = await dev.locator('[data-f="progress"]').textContent();
    assert.match(progress, /\b(9[5-9]|100)%/, `the failed device shows what it downloaded, not 0%: ${progress}`);
    await screenshot(page, "h14-03-rollout-completed-with-failures");
  });

  test("with the default threshold the same failure pauses the rollout and says why", async () => {
    await page.getByLabel("Pause above (% failed)").fill("");
    const asked = confirmNext();
    await page.getByRole("button", { name: "Start rollout" }).click();
    await asked;
    const row = page.locator("#rollout-rows tr").first();
    await row.locator('[data-state="paused"]').waitFor();
    assert.match(await row.locator('[data-f="pause-reason"]').textContent(), /failure rate 100% \(1 of 1 devices\)/);
    await row.getByRole("button", { name: /^Abort rollout/ }).click();
    await row.locator('[data-state="aborted"]').waitFor();
  });

  test("a rollout that asks for approval waits at the stage's end until approved", async () => {
    await page.getByLabel("Target").selectOption("tag");
    await page.getByLabel("Tag or percent").fill("canary");
    await page.getByLabel("Stages (%)").fill("50,100");
    await page.getByLabel("Pause above (% failed)").fill("100");
    await page.getByLabel("approve each next stage").check();
    const asked = confirmNext();
    await page.getByRole("button", { name: "Start rollout" }).click();
    assert.match(await asked, /The first stage updates 1\./);
    const row = page.locator("#rollout-rows tr").first();
    await row.locator('[data-f="pause-reason"]').filter({ hasText: "awaiting approval" }).waitFor();
    assert.match(await row.locator('[data-f="policy"]').textContent(), /approval between stages/);
    await row.getByRole("button", { name: /^Approve next stage rollout/ }).click();
    await page.locator("#rollout-rows tr").first().locator('[data-outcome="failures"]').waitFor();
    await page.getByLabel("Stages (%)").fill("");
    await page.getByLabel("Pause above (% failed)").fill("");
    await page.getByLabel("approve each next stage").uncheck();
  });

  test("the newest rollout is on top with its actions, older ones behind a pager, its devices paged", async () => {
    // Twenty rollouts before it, to one device that never connects (they stay active).
    for (let i = 0; i < 20; i++) {
      const r = await call("POST", "/api/v1/tenants/acme/rollouts", { release_id: state.releaseID, target: { kind: "tag", tag: "one" } });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    await page.goto(state.projectURL);
    await page.getByLabel("Target").selectOption("tag");
    await page.getByLabel("Tag or percent").fill("bulk");
    await page.getByLabel("Soak per stage (minutes)").fill("10");
    await page.getByLabel("approve each next stage").check();
    const asked = confirmNext();
    await page.getByRole("button", { name: "Start rollout" }).click();
    assert.match(await asked, /to the devices tagged “bulk”: 120 devices\?/);
    await page.locator("#rollout-devices-count").filter({ hasText: "Showing 100 of 120 devices." }).waitFor();
    const top = page.locator("#rollout-rows tr").first();
    await top.locator('[data-state="active"]').waitFor();
    assert.match(await top.locator('[data-f="policy"]').textContent(), /soaks 10 min · approval between stages/);
    await top.getByRole("button", { name: /^Pause rollout/ }).waitFor();
    await top.getByRole("button", { name: /^Abort rollout/ }).waitFor();
    assert.equal(await page.locator("#rollout-rows tr").count(), 20, "the first page holds the 20 newest");
    assert.match(await page.locator("#rollouts-count").textContent(), /20 newest/);
    assert.match(await page.locator("#rollout-devices-title").textContent(), /latest rollout \(v-1\.1\.0/);
    assert.equal(await page.locator("#rollout-device-rows tr").count(), 100);
    await page.getByRole("button", { name: "Load more devices" }).click();
    await page.locator("#rollout-devices-count").filter({ hasText: "Showing 120 of 120 devices." }).waitFor();
    assert.equal(await page.locator("#rollout-device-rows tr").count(), 120);
    assert.equal(await page.getByRole("button", { name: "Load more devices" }).isVisible(), false);
    await page.getByRole("button", { name: "Load older rollouts" }).click();
    await page.waitForFunction(() => document.querySelectorAll("#rollout-rows tr").length === 24);
    assert.equal(await page.getByRole("button", { name: "Load older rollouts" }).isVisible(), false);
    await screenshot(page, "h14-04-rollouts-paged");
    await top.getByRole("button", { name: /^Pause rollout/ }).click();
    await page.locator("#rollout-rows tr").first().locator('[data-state="paused"]').waitFor();
  });

  test("a device's page shows its uptime now and the config version it runs, not the boot's zeros", async () => {
    // The canary has been online for a while by now; it got a config after its boot.
    const put = await call("PUT", `/api/v1/tenants/acme/devices/${state.canaryID}/config/interval`, { type: "int", value: 30, version: 0 });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await page.goto(`${server.url}/t/acme/devices/${state.canaryID}#config`);
    await page.locator('#config-sync[data-state="in_sync"]').waitFor();
    await page.reload();
    // The page's script restores the #config tab once it has loaded; switch after that.
    await page.locator('#tab-config[aria-selected="true"]').waitFor();
    await page.getByRole("tab", { name: "Overview" }).click();
    const metaValue = (name) => page.evaluate((name) => {
      const dt = [...document.querySelectorAll("#device-metadata dt")].find((e) => e.textContent === name);
      return dt ? dt.nextElementSibling.textContent : null;
    }, name);
    await page.locator("#device-metadata dt").filter({ hasText: "Uptime" }).waitFor();
    const uptime = Number.parseInt(await metaValue("Uptime"), 10);
    assert.ok(uptime >= 1, `uptime shows ${uptime} s for a device online for seconds`);
    assert.notEqual(await metaValue("Config version"), "0", "the config version applied since boot");
  });

  test("streaming the logs of an offline device says lines come when it connects", async () => {
    await page.goto(`${server.url}/t/acme/devices/${state.bulkIDs[5]}#logs`);
    await page.getByRole("button", { name: "Start streaming" }).click();
    await page.locator("#log-state").filter({ hasText: "The device is offline; lines appear when it connects." }).waitFor();
    await page.getByRole("button", { name: "Stop streaming" }).click();
  });

  test("no page threw, broke the Content-Security-Policy or asked for a missing file", () => {
    assert.deepEqual(problems, []);
    assert.deepEqual(missing, []);
  });
});

// Alerts: a rule fires on a real device's presence and the history shows it; a member
// acknowledges it; the browser asks for notification permission, registers the service
// worker and tries to subscribe (headless Chromium has no push service, so the subscription
// itself is refused and the page says so).
describe("alerts journey", { skip: present ? false : "chromium is not installed (set CI=true to make this a failure)" }, () => {
  let tmp, bin, server, ctx, page, sim;
  const problems = [];

  before(async () => {
    tmp = tempDir();
    bin = buildBinary(tmp.dir);
    server = await startServer(bin, tmp.dir);
    ctx = await launchBrowser(tmp.dir);
    page = ctx.pages()[0] || (await ctx.newPage());
    watchPage(page, problems);
  });

  after(async () => {
    await sim?.stop();
    await ctx?.close();
    await server?.stop();
    tmp?.cleanup();
  });

  // call sends an API request from the page with its session and CSRF token.
  const call = (...args) => pageAPI(page)(...args);

  test("an alert appears in the history and is acknowledged; the push permission flow runs", async () => {
    await setUpOwner(page, server.setupURL, OWNER);

    await page.getByRole("link", { name: "Alerts" }).click();
    await page.waitForURL(/\/t\/acme\/alerts$/);
    await page.getByText("No alerts.").waitFor();
    // A channel and a rule through the page's forms.
    await page.getByLabel("Name", { exact: true }).nth(1).fill("Ops mail");
    await page.getByLabel("Kind").selectOption("email");
    await page.getByLabel("Target (URL or email addresses)").fill("ops@example.com");
    await page.getByRole("button", { name: "Create channel" }).click();
    const channelID = (await page.locator("#channel-rows code").first().textContent()).trim();
    await page.getByLabel("Name", { exact: true }).first().fill("Back online");
    await page.getByLabel("Watches").selectOption("device_online");
    await page.getByLabel("Channel IDs (comma separated)").fill(channelID);
    await page.getByRole("button", { name: "Create rule" }).click();
    await page.locator("#rule-rows").getByText("Back online").waitFor();
    await screenshot(page, "alerts-01-rules");

    // Edit: a row's Edit fills the form, Save replaces the item (PUT) and the form turns back
    // into the "new" form. An empty token field sends no secret, so a stored one stays.
    const puts = [];
    page.on("request", (req) => {
      if (req.method() === "PUT") puts.push({ url: req.url(), body: req.postDataJSON() });
    });
    await page.locator("#rule-rows tr", { hasText: "Back online" }).getByRole("button", { name: "Edit" }).click();
    await page.getByRole("heading", { name: "Edit rule “Back online”" }).waitFor();
    assert.equal(await page.getByLabel("Name", { exact: true }).first().inputValue(), "Back online");
    assert.equal(await page.getByLabel("Watches").inputValue(), "device_online");
    assert.equal(await page.getByLabel("Channel IDs (comma separated)").inputValue(), channelID);
    await page.getByLabel("Name", { exact: true }).first().fill("Porch back online");
    await page.getByLabel("Cooldown (seconds)").fill("120");
    await page.getByRole("button", { name: "Save rule" }).click();
    await page.locator("#rule-rows").getByText("Porch back online").waitFor();
    await page.getByRole("button", { name: "Create rule" }).waitFor();
    const rules = await call("GET", "/api/v1/tenants/acme/alerts/rules");
    assert.equal(rules.body.items.length, 1, "editing changes the rule, it makes no new one");
    const rule = rules.body.items[0];
    assert.deepEqual([rule.name, rule.kind, rule.cooldown_seconds, rule.channel_ids, rule.enabled],
      ["Porch back online", "device_online", 120, [channelID], true]);

    const channelRow = page.locator("#channel-rows tr", { hasText: "Ops mail" });
    await channelRow.getByRole("button", { name: "Edit" }).click();
    await page.getByRole("heading", { name: "Edit channel “Ops mail”" }).waitFor();
    assert.equal(await page.getByLabel("Target (URL or email addresses)").inputValue(), "ops@example.com");
    assert.equal(await page.getByLabel("Kind").isDisabled(), true, "a channel's kind cannot change");
    // Bad input gets the API's field error and changes nothing.
    await page.getByLabel("Target (URL or email addresses)").fill("not an address");
    await page.getByRole("button", { name: "Save channel" }).click();
    await page.locator('#channel-form [data-error-for="target"]').filter({ hasText: /\S/ }).waitFor();
    await page.getByLabel("Target (URL or email addresses)").fill("oncall@example.com");
    await page.getByRole("button", { name: "Save channel" }).click();
    await page.locator("#channel-rows").getByText("oncall@example.com").waitFor();
    await page.getByRole("button", { name: "Create channel" }).waitFor();
    const saved = puts.filter((p) => p.url.endsWith(`/alerts/channels/${channelID}`)).at(-1);
    assert.ok(saved, "the channel was saved with PUT");
    assert.equal("secret" in saved.body, false, "an empty token field sends no secret");
    assert.equal("kind" in saved.body, false);
    const channels = await call("GET", "/api/v1/tenants/acme/alerts/channels");
    assert.deepEqual(channels.body.items.map((c) => [c.id, c.target]), [[channelID, "oncall@example.com"]]);
    await screenshot(page, "alerts-01b-edited");

    // A device comes online: the rule fires (after its grouping window).
    const dev = await call("POST", "/api/v1/tenants/acme/devices", { name: "porch-light" });
    assert.equal(dev.status, 201);
    const bundlePath = join(tmp.dir, "alerts-bundle.json");
    writeFileSync(bundlePath, JSON.stringify(dev.body.provisioning));
    sim = startSim(bin, bundlePath, tmp.dir, "alerts-sim");
    const row = page.locator("#alert-rows tr[data-alert]").first();
    for (let i = 0; i < 12 && !(await row.count()); i++) {
      await page.getByRole("button", { name: "Filter" }).click();
      await row.waitFor({ timeout: 5_000 }).catch(() => {});
    }
    await row.getByText("Porch back online: 1 device back online").waitFor();
    await screenshot(page, "alerts-02-history");
    await row.getByRole("button", { name: "Acknowledge" }).click();
    await page.locator("#alert-rows").getByText(/by /).waitFor();
    await page.locator("#alert-rows .state-acknowledged").waitFor();

    // Push: permission granted, service worker registered; headless Chromium has no push
    // service, so subscribing ends with a message instead of a subscription.
    await ctx.grantPermissions(["notifications"], { origin: server.url });
    await page.reload();
    await page.locator("#delivery-rows").getByText("alert.firing").waitFor();
    await page.getByRole("button", { name: "Notify this browser" }).click();
    await page.locator("#push-state").filter({ hasText: /receives the alerts|Subscribing failed/ }).waitFor({ timeout: 40_000 });
    console.log(`push: ${await page.locator("#push-state").textContent()}`);
    const sw = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration("/");
      return { registered: !!reg, script: reg && (reg.active || reg.installing || reg.waiting)?.scriptURL, permission: Notification.permission };
    });
    assert.equal(sw.registered, true, "the service worker is registered");
    assert.match(sw.script || "", /\/sw\.js$/);
    assert.equal(sw.permission, "granted");
    await screenshot(page, "alerts-03-push");
    assert.deepEqual(problems, []);
  });
});
