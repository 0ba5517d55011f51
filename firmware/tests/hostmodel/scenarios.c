/* Scenarios that run the real ESP-IDF port (ports/esp-idf/espadmin_esp.c) and the core on the
 * host model. Usage: hm-scenarios NAME STATE_FILE. A restart of the device re-executes this
 * program with the same arguments (hostmodel.h hm_boot), so a scenario is written per boot.
 * Exit status 0 and "PASS NAME" on success. */
#include "scenario_lib.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- scenarios ---- */

/* A PUBACK arrives while the update's download is in a 300 ms handshake. The old port held the
 * agent lock across the handshake and its MQTT handler waited for that lock inside esp-mqtt's
 * API lock: both tasks froze. */
static void s_deadlock(int boot)
{
    if (boot == 1) {
        provision(false, NULL);
        hm_broker_set_puback_delay_ms(30);
        hm_http_set_handshake_ms(300);
        start();
        wait_online();
        update("up-deadlock", "v-1.1.0", "v-1.1.0", 0, "http://files.local/fw/v-1.1.0.bin", true);
        /* 30 s (the alarm) without the restart that ends the update fails the scenario */
        CHECK(hm_broker_wait("/up/ota", "\"state\":\"rebooting\"", NULL, 0, WAIT_MS), "update stalled (deadlock)");
        check_stacks();
        sleep(30);
        fail("no restart after the update");
    }
    start();
    wait_online();
    CHECK(hm_broker_wait("/up/ota", "\"state\":\"succeeded\"", NULL, 0, WAIT_MS), "update not confirmed");
    CHECK(strcmp(hm_running_version(), "v-1.1.0") == 0, "not running the new image");
    pass();
}

/* The broker CA comes from config (_mqtt_ca); the core frees its copy right after connect
 * returns while esp-mqtt reads the certificate at connect time, in its own task. */
static void s_ca_uaf(int boot)
{
    (void)boot;
    provision(true, "-----BEGIN CERTIFICATE-----\nprovisioned-CA-superseded-by-config\n-----END CERTIFICATE-----\n");
    hm_nvs_set_str("espadmin_cfg_a", "_mqtt_ca", "0" CA_PEM);
    hm_nvs_set_str("espadmin", "cfg_active", "a");
    hm_nvs_set_str("espadmin", "cfg_a_ver", "3");
    hm_broker_set_ca(CA_PEM);
    hm_broker_set_connect_delay_ms(150);
    start();
    wait_online();
    hm_connection_t c;
    CHECK(hm_broker_connections(&c) >= 1, "no connection");
    CHECK(strcmp(c.ca, CA_PEM) == 0, "esp-mqtt did not get the config CA");
    pass();
}

/* The NVS CSV exactly as the server writes it (typed mqtt_port u16, mqtt_tls u8, CA as base64
 * blob): the board connects to exactly that host, port and TLS with that CA. */
static void s_provisioning_csv(int boot)
{
    (void)boot;
    CHECK(hm_nvs_load_csv(TESTDATA "/provisioning-nvs.csv") == 0, "cannot load the CSV");
    hm_broker_set_ca(CA_PEM);
    start();
    wait_online();
    hm_connection_t c;
    CHECK(hm_broker_connections(&c) >= 1, "no connection");
    CHECK(strcmp(c.host, "mqtt.example.com") == 0, "wrong host");
    CHECK(c.port == 8883, "wrong port (typed u16 not read)");
    CHECK(c.transport == MQTT_TRANSPORT_OVER_SSL, "not TLS (typed u8 not read)");
    CHECK(strcmp(c.ca, CA_PEM) == 0, "wrong CA");
    CHECK(strcmp(c.client_id, DEVICE) == 0 && strcmp(c.username, DEVICE) == 0, "wrong client ID or user");
    CHECK(strcmp(c.password, "k0Qm3Zp8sV2xY7wR4tU1nB6cL9dF5gH0jK2lM4nP6qS") == 0, "wrong password");
    pass();
}

/* The server's CSV with a download CA (ota.download_ca_file): a download from a host that is
 * not server_url, signed by another private CA than the broker's, is verified with ota_ca. */
static void s_provisioning_ota_ca(int boot)
{
    hm_broker_set_ca(CA_PEM);
    if (boot == 1) {
        CHECK(hm_nvs_load_csv(TESTDATA "/provisioning-nvs-ota-ca.csv") == 0, "cannot load the CSV");
        hm_http_set_ca(OTA_CA);
        start();
        wait_online();
        update("up-ota-ca", "v-1.6.0", "v-1.6.0", 0, "https://files.example.net/fw/v-1.6.0.bin", true);
        CHECK(hm_broker_wait("/up/ota", "\"state\":\"rebooting\"", NULL, 0, WAIT_MS),
              "download not verified with the provisioned ota_ca");
        sleep(30);
        fail("no restart after the update");
    }
    start();
    wait_online();
    CHECK(hm_broker_wait("/up/ota", "\"state\":\"succeeded\"", NULL, 0, WAIT_MS), "update not confirmed");
    pass();
}

/* First boot of a new image: confirmed from the bootloader's pending-verify state although the
 * image's version string differs from the release version; then an image that crashes at
 * boot is rolled back by the bootloader and reported. */
static void s_first_boot(int boot)
{
    switch (boot) {
    case 1:
        provision(false, NULL);
        start();
        wait_online();
        update("up-1", "v-1.1.0", "1.1.0-local-build", 0, "http://files.local/fw/a.bin", true);
        sleep(30);
        fail("no restart after the update");
    case 2:
        CHECK(hm_ota_running_state() == ESP_OTA_IMG_PENDING_VERIFY, "new image is not pending verify");
        start();
        wait_online();
        CHECK(hm_broker_wait("/up/ota", "\"state\":\"succeeded\"", NULL, 0, WAIT_MS), "no succeeded report");
        for (int i = 0; i < 200 && hm_ota_running_state() != ESP_OTA_IMG_VALID; i++) {
            vTaskDelay(pdMS_TO_TICKS(20));
        }
        CHECK(hm_ota_running_state() == ESP_OTA_IMG_VALID, "image not marked valid");
        update("up-2", "v-1.2.0", "v-1.2.0", HM_IMG_CRASHES, "http://files.local/fw/b.bin", true);
        sleep(30);
        fail("no restart after the second update");
    case 3:
        fail("the crashing image ran"); /* main() panics before this */
    default:
        CHECK(strcmp(hm_running_version(), "1.1.0-local-build") == 0, "not back on the confirmed image");
        start();
        wait_online();
        CHECK(hm_broker_wait("/up/ota", "boot_failed_rolled_back", NULL, 0, WAIT_MS), "rollback not reported");
        CHECK(hm_broker_wait("/up/error", "panic", NULL, 0, WAIT_MS), "crash not reported");
        pass();
    }
}

/* A panic with core dumps to flash: at the next boot the port reads the summary and the panic
 * reason (esp_core_dump_get_summary, esp_core_dump_get_panic_reason) and the error report
 * carries them with the whole core dump's size. The core dump stays in flash until a coredump
 * command's upload (an HTTP PUT from the port's own task, reading the coredump partition) is
 * answered 2xx: a refused upload is acknowledged with its reason and keeps it. */
static void s_crash_report(int boot)
{
    static const uint32_t pcs[] = {0x400d1a2b, 0x400d1c40, 0x40088f6d};
    char report[4096];
    switch (boot) {
    case 1:
        provision(false, NULL);
        start();
        wait_online();
        hm_panic_core_dump("LoadProhibited", "sensor", pcs, 3, 0x3ffb1230);
    default:
        CHECK(hm_core_dump_present(), "the core dump did not survive the reboot");
        start();
        wait_online();
        CHECK(hm_broker_wait("/up/error", "\"reset_reason\":\"panic\"", report, sizeof(report), WAIT_MS), "crash not reported");
        CHECK(strstr(report, "\"message\":\"LoadProhibited\"") != NULL, "no panic reason as the message");
        CHECK(strstr(report, "\"backtrace\":[{\"pc\":\"0x400d1a2b\",\"sp\":\"0x3ffb1230\"},{\"pc\":\"0x400d1c40\"},{\"pc\":\"0x40088f6d\"}]") != NULL,
              "no backtrace");
        CHECK(strstr(report, "\"task\":\"sensor\"") != NULL && strstr(report, "EXCCAUSE 28") != NULL, "no core dump summary");
        CHECK(strstr(report, "\"size\":12288") != NULL, "no core dump size");
        vTaskDelay(pdMS_TO_TICKS(300)); /* the report's PUBACK came and went */
        CHECK(hm_core_dump_present(), "the core dump was erased before it was uploaded");

        hm_http_set_upload_status(403);
        send_cmd("{\"v\":1,\"id\":\"cd-1\",\"name\":\"coredump\",\"expires_at\":9007199254740991,"
                 "\"params\":{\"url\":\"http://files.local/coredumps/r1?sig=x\",\"url_expires_at\":0}}", 0);
        CHECK(hm_broker_wait("/up/ack", "\"id\":\"cd-1\"", report, sizeof(report), WAIT_MS), "no ack of the refused upload");
        CHECK(strstr(report, "\"result\":\"error\"") && strstr(report, "HTTP 403"), "refused upload not reported as such");
        CHECK(hm_core_dump_present(), "a refused upload erased the core dump");

        hm_http_set_upload_status(201);
        send_cmd("{\"v\":1,\"id\":\"cd-2\",\"name\":\"coredump\",\"expires_at\":9007199254740991,"
                 "\"params\":{\"url\":\"http://files.local/coredumps/r1?sig=y\",\"url_expires_at\":0}}", 0);
        CHECK(hm_broker_wait("/up/ack", "\"id\":\"cd-2\"", report, sizeof(report), WAIT_MS), "no ack of the upload");
        CHECK(strstr(report, "\"result\":\"ok\"") != NULL, "upload not acknowledged ok");
        static uint8_t want[HM_CORE_SIZE], got[HM_CORE_SIZE];
        hm_core_dump_image(want);
        CHECK(hm_http_uploaded("http://files.local/coredumps/r1", got, sizeof(got)) == HM_CORE_SIZE &&
                  memcmp(got, want, sizeof(want)) == 0,
              "the server did not receive the core dump as it was in flash");
        CHECK(!hm_core_dump_present(), "the core dump was not erased after the upload");
        pass();
    }
}

/* A new image that cannot reach the server is rolled back by the agent when the verify
 * deadline (CONFIG_ESPADMIN_OTA_VERIFY_TIMEOUT_S, 3 s in the model) passes. */
static void s_verify_timeout(int boot)
{
    switch (boot) {
    case 1:
        provision(false, NULL);
        start();
        wait_online();
        update("up-3", "v-1.5.0", "v-1.5.0", 0, "http://files.local/fw/c.bin", true);
        sleep(30);
        fail("no restart after the update");
    case 2:
        CHECK(hm_ota_running_state() == ESP_OTA_IMG_PENDING_VERIFY, "new image is not pending verify");
        hm_broker_set_refuse(true);
        start();
        sleep(30);
        fail("no rollback after the verify deadline");
    default:
        CHECK(strcmp(hm_running_version(), "v-1.0.0") == 0, "not back on the previous image");
        start();
        wait_online();
        CHECK(hm_broker_wait("/up/ota", "boot_failed_rolled_back", NULL, 0, WAIT_MS), "rollback not reported");
        pass();
    }
}

/* CONFIG_LOG_VERSION_2 hands one line to the vprintf hook in three calls. */
static void s_log_v2(int boot)
{
    (void)boot;
    hm_log_set_version(2);
    provision(false, NULL);
    start();
    wait_online();
    send_cmd("{\"v\":1,\"id\":\"dbg-1\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":true,"
             "\"level\":\"info\",\"duration_s\":60}}", 0);
    CHECK(hm_broker_wait("/up/ack", "dbg-1", NULL, 0, WAIT_MS), "debug not acknowledged");
    for (int i = 0; i < 100 && hm_broker_count("/up/log", "hello 42 from v2") == 0; i++) {
        ESP_LOGI("app", "hello %d from v2", 42);
        vTaskDelay(pdMS_TO_TICKS(50));
    }
    char buf[8192];
    CHECK(hm_broker_wait("/up/log", "\"tag\":\"app\",\"msg\":\"hello 42 from v2\"", buf, sizeof(buf), WAIT_MS),
          "line not captured whole (tag and message)");
    CHECK(hm_broker_count("/up/log", "\"msg\":\"\"") == 0, "empty lines captured from the line's pieces");
    pass();
}

/* No provisioning: the board waits and logs, never restarts; provisioned later, it starts. */
static void s_unprovisioned(int boot)
{
    CHECK(boot == 1, "the board restarted");
    start();
    sleep(3);
    CHECK(hm_restarts() == 0, "the board restarted");
    CHECK(hm_broker_connections(NULL) == 0, "connected without provisioning");
    CHECK(espadmin_esp_with_agent(NULL, NULL) == ESP_ERR_INVALID_STATE, "with_agent ran without an agent");
    provision(false, NULL);
    wait_online();
    pass();
}

/* OTA in the field: a 2,000-byte URL, a redirect, a private CA for the download server from
 * config (_ota_ca), a link dropped mid-way resumed with Range. */
static void s_ota_field(int boot)
{
    if (boot == 1) {
        provision(false, NULL);
        hm_nvs_set_str("espadmin_cfg_a", "_ota_ca", "0" OTA_CA);
        hm_nvs_set_str("espadmin", "cfg_active", "a");
        hm_nvs_set_str("espadmin", "cfg_a_ver", "4");
        hm_http_set_ca(OTA_CA);
        hm_http_set_handshake_ms(50);
        hm_http_set_drop_after(5000);
        hm_broker_set_puback_delay_ms(300);
        char url[2049];
        int n = snprintf(url, sizeof(url), "https://files.local/fw/v-1.3.0.bin?sig=");
        while (n < 2000) {
            url[n] = (char)('a' + n % 26);
            n++;
        }
        url[n] = '\0';
        serve_image("https://cdn.local/real/v-1.3.0.bin", "v-1.3.0");
        hm_http_redirect(url, "https://cdn.local/real/v-1.3.0.bin", 302);
        start();
        wait_online();
        update("up-field", "v-1.3.0", "v-1.3.0", 0, url, false);
        CHECK(hm_broker_wait("/up/ota", "\"state\":\"rebooting\"", NULL, 0, WAIT_MS), "download failed");
        CHECK(hm_http_range_requests() >= 1, "the dropped download was not resumed with Range");
        check_stacks();
        sleep(30);
        fail("no restart after the update");
    }
    start();
    wait_online();
    CHECK(hm_broker_wait("/up/ota", "\"state\":\"succeeded\"", NULL, 0, WAIT_MS), "update not confirmed");
    CHECK(strcmp(hm_running_version(), "v-1.3.0") == 0, "not running the new image");
    pass();
}

/* A self-hosted server with one private CA: a download from the provisioned server_url is
 * verified with the broker's CA from the provisioning. */
static void s_ota_server_ca(int boot)
{
    hm_broker_set_ca(CA_PEM);
    if (boot == 1) {
        provision(true, CA_PEM);
        hm_nvs_set_str("espadmin", "server_url", "https://admin.local/");
        hm_http_set_ca(CA_PEM);
        start();
        wait_online();
        update("up-own-ca", "v-1.4.0", "v-1.4.0", 0, "https://admin.local/api/v1/firmware/v-1.4.0.bin?sig=x", true);
        CHECK(hm_broker_wait("/up/ota", "\"state\":\"rebooting\"", NULL, 0, WAIT_MS), "download failed");
        sleep(30);
        fail("no restart after the update");
    }
    start();
    wait_online();
    CHECK(hm_broker_wait("/up/ota", "\"state\":\"succeeded\"", NULL, 0, WAIT_MS), "update not confirmed");
    pass();
}

/* Each failure is reported with its true reason, the port's account of it in the message: an
 * HTTP 404, a redirect loop, an image whose hash differs, and esp_ota_begin refused because the
 * running image still awaits confirmation (ESP_ERR_OTA_ROLLBACK_INVALID_STATE). */
static void s_ota_reasons(int boot)
{
    CHECK(boot == 1, "the board restarted");
    provision(false, NULL);
    start();
    wait_online();
    char buf[4096];

    update("up-404", "v-1.1.0", "v-1.1.0", 0, "http://files.local/fw/missing.bin", false);
    CHECK(hm_broker_wait("/up/ota", "\"id\":\"up-404\",\"version\":\"v-1.1.0\",\"state\":\"failed\"", buf,
                         sizeof(buf), WAIT_MS), "404 not reported");
    CHECK(strstr(buf, "\"reason\":\"download_error\"") && strstr(buf, "HTTP 404"), "404: wrong reason or message");

    hm_http_redirect("http://files.local/fw/a.bin", "http://files.local/fw/b.bin", 302);
    hm_http_redirect("http://files.local/fw/b.bin", "http://files.local/fw/a.bin", 302);
    update("up-loop", "v-1.1.0", "v-1.1.0", 0, "http://files.local/fw/a.bin", false);
    CHECK(hm_broker_wait("/up/ota", "\"id\":\"up-loop\",\"version\":\"v-1.1.0\",\"state\":\"failed\"", buf,
                         sizeof(buf), WAIT_MS), "redirect loop not reported");
    CHECK(strstr(buf, "\"reason\":\"download_error\"") && strstr(buf, "too many redirects"),
          "redirect loop: wrong reason or message");

    serve_image("http://files.local/fw/other.bin", "v-9.9.9"); /* not the image the hash is of */
    update("up-hash", "v-1.1.0", "v-1.1.0", 0, "http://files.local/fw/other.bin", false);
    CHECK(hm_broker_wait("/up/ota", "\"id\":\"up-hash\",\"version\":\"v-1.1.0\",\"state\":\"failed\"", buf,
                         sizeof(buf), WAIT_MS), "hash mismatch not reported");
    CHECK(strstr(buf, "\"reason\":\"hash_mismatch\""), "hash mismatch: wrong reason");

    hm_ota_set_running_state(ESP_OTA_IMG_PENDING_VERIFY);
    update("up-pv", "v-1.1.0", "v-1.1.0", 0, "http://files.local/fw/v-1.1.0.bin", true);
    CHECK(hm_broker_wait("/up/ota", "\"id\":\"up-pv\",\"version\":\"v-1.1.0\",\"state\":\"failed\"", buf,
                         sizeof(buf), WAIT_MS), "refused begin not reported");
    CHECK(strstr(buf, "\"reason\":\"busy\"") && strstr(buf, "awaits confirmation"),
          "begin during pending verify: wrong reason or message");
    CHECK(hm_broker_count("/up/ota", "no_space") == 0, "a failure reported as no_space");
    pass();
}

/* Runs on the agent task (espadmin_esp_with_agent): while the agent is busy here, esp-mqtt
 * delivers a burst of twelve commands near the device's limit (15 KB; 3.2 KB in the small
 * profile), 4 KiB fragments each. */
static void burst_while_busy(espadmin_agent_t *agent, void *arg)
{
    (void)agent;
    (void)arg;
    static char big[ESPADMIN_DEVICE_MAX_COMMAND - 1384];
    for (int i = 0; i < 12; i++) {
        int n = snprintf(big, sizeof(big),
                         "{\"v\":1,\"id\":\"flood-%d\",\"name\":\"debug\",\"expires_at\":9000000000000,"
                         "\"params\":{\"enabled\":false},\"pad\":\"", i);
        memset(big + n, 'x', sizeof(big) - (size_t)n - 3);
        memcpy(big + sizeof(big) - 3, "\"}", 3);
        hm_broker_inject(g_cmd_topic, big, strlen(big), 4096);
    }
    vTaskDelay(pdMS_TO_TICKS(800));
}

/* A burst the agent cannot take at once: the handler drops what does not fit the queue or its
 * byte budget (counted) instead of waiting, and the agent keeps working. */
static void s_flood(int boot)
{
    (void)boot;
    provision(false, NULL);
    start();
    wait_online();
    CHECK(espadmin_esp_with_agent(burst_while_busy, NULL) == ESP_OK, "with_agent failed");
    /* esp-mqtt may still be delivering the burst's last fragments, and a command that finds
     * the queue full is dropped like them: send it again (the agent acknowledges a repeated
     * ID once more) until it is answered, or the deadline says the agent stopped. */
    bool answered = false;
    for (int waited = 0; !answered && waited < WAIT_MS; waited += 2000) {
        send_cmd("{\"v\":1,\"id\":\"after-flood\",\"name\":\"debug\",\"expires_at\":9000000000000,"
                 "\"params\":{\"enabled\":false}}", 0);
        answered = hm_broker_wait("/up/ack", "after-flood", NULL, 0, 2000);
    }
    CHECK(answered, "agent stopped after the burst");
    CHECK(espadmin_esp_dropped_events() > 0, "nothing dropped: the burst did not test the bound");
    CHECK(hm_broker_count("/up/ack", "flood-") >= 1, "no command of the burst got through");
    fprintf(stderr, "burst: %d of 12 acknowledged, %u events dropped\n", hm_broker_count("/up/ack", "flood-"),
            (unsigned)espadmin_esp_dropped_events());
    pass();
}

static const struct {
    const char *name;
    void (*fn)(int boot);
} k_scenarios[] = {
    {"deadlock", s_deadlock},       {"ca_uaf", s_ca_uaf},           {"provisioning_csv", s_provisioning_csv},
    {"first_boot", s_first_boot},   {"log_v2", s_log_v2},           {"unprovisioned", s_unprovisioned},
    {"ota_field", s_ota_field},     {"ota_server_ca", s_ota_server_ca},
    {"ota_reasons", s_ota_reasons},         {"provisioning_ota_ca", s_provisioning_ota_ca},
    {"verify_timeout", s_verify_timeout}, {"flood", s_flood}, {"crash_report", s_crash_report},
};

int main(int argc, char **argv)
{
    int boot = scenario_boot(argc, argv);
    if (hm_running_image_crashes()) {
        fprintf(stderr, "hostmodel: image %s crashes at boot\n", hm_running_version());
        hm_panic();
    }
    ESP_ERROR_CHECK(espadmin_esp_nvs_init());
    for (size_t i = 0; i < sizeof(k_scenarios) / sizeof(k_scenarios[0]); i++) {
        if (strcmp(k_scenarios[i].name, g_name) == 0) {
            k_scenarios[i].fn(boot);
            fail("scenario returned");
        }
    }
    fprintf(stderr, "unknown scenario %s\n", g_name);
    return 2;
}
