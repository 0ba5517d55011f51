/* Scenarios that run the real ESP8266_RTOS_SDK v3.4 port (ports/esp8266/espadmin/
 * espadmin_esp8266.c, ports/esp-common) and the core, in the small-memory profile, on the host
 * model of v3.4 (esp8266/include/hostmodel.h). Usage: hm8266-scenarios NAME STATE_FILE; a
 * restart of the device re-executes this program, so a scenario is written per boot. Exit
 * status 0 and "PASS NAME" on success. main() calls espadmin_esp_nvs_init() first, as the
 * example's app_main does, so an image that crashes afterwards has had its boot counted. */
#include "scenario_lib.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVICE_KEY_B64 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0x00..0x1f */

/* The port's pending-verify record, read behind its back (namespace espadmin, "ota_verify"). */
static bool verify_record(char *out, size_t cap)
{
    nvs_handle h;
    if (nvs_open("espadmin", NVS_READONLY, &h) != ESP_OK) {
        return false;
    }
    size_t n = cap - 1;
    bool found = nvs_get_blob(h, "ota_verify", out, &n) == ESP_OK;
    nvs_close(h);
    if (found) {
        out[n] = '\0';
    }
    return found;
}

/* Seals a secret config value as the server does (docs/protocol.md, config_secret.json):
 * AES-256-GCM with the device key, AAD "espadmin-cfg-v1\n{id}\n{key}\n{version}",
 * base64(nonce ‖ ciphertext ‖ tag). */
static void seal(const char *key, int version, const char *plaintext_json, char *out_b64)
{
    uint8_t k[32], nonce[12], buf[256], tag[16];
    for (int i = 0; i < 32; i++) {
        k[i] = (uint8_t)i;
    }
    for (int i = 0; i < 12; i++) {
        nonce[i] = (uint8_t)(0xa0 + i);
    }
    char aad[160];
    int aad_len = snprintf(aad, sizeof(aad), "espadmin-cfg-v1\n%s\n%s\n%d", DEVICE, key, version);
    size_t pl = strlen(plaintext_json);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n = 0, m = 0;
    CHECK(EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1 &&
              EVP_EncryptInit_ex(x, NULL, NULL, k, nonce) == 1 &&
              EVP_EncryptUpdate(x, NULL, &n, (const uint8_t *)aad, aad_len) == 1 &&
              EVP_EncryptUpdate(x, buf + 12, &n, (const uint8_t *)plaintext_json, (int)pl) == 1 &&
              EVP_EncryptFinal_ex(x, buf + 12 + n, &m) == 1 &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, 16, tag) == 1,
          "cannot seal the secret");
    EVP_CIPHER_CTX_free(x);
    memcpy(buf, nonce, 12);
    memcpy(buf + 12 + pl, tag, 16);
    EVP_EncodeBlock((unsigned char *)out_b64, buf, (int)(12 + pl + 16));
}

typedef struct {
    const char *key;
    char value[64];
    int rc;
} cfg_get_t;

static void get_config(espadmin_agent_t *agent, void *arg)
{
    cfg_get_t *g = arg;
    espadmin_cfg_type_t type;
    g->rc = espadmin_config_get(agent, g->key, &type, g->value, sizeof(g->value));
}

static const char *config_value(const char *key)
{
    static cfg_get_t g;
    memset(&g, 0, sizeof(g));
    g.key = key;
    CHECK(espadmin_esp_with_agent(get_config, &g) == ESP_OK, "with_agent failed");
    return g.rc == 0 ? g.value : NULL;
}

/* ---- scenarios ---- */

/* A config with a secret: delivered, the secret decrypted with the device key and stored, the
 * config acknowledged with its version; the plaintext never leaves the device; a secret sealed
 * for another version (a replay) is refused and the applied config stays. After a restart the
 * device asks for the config it holds, and the secret is still there. */
static void s_config_secret(int boot)
{
    char sealed[128], cmd[1024], buf[2048];
    if (boot == 1) {
        provision(false, NULL);
        start();
        wait_online();
        seal("wifi_pass", 7, "\"hunter2\"", sealed);
        snprintf(cmd, sizeof(cmd),
                 "{\"v\":1,\"id\":\"cfg-7\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":7,"
                 "\"hash\":\"a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5\",\"entries\":["
                 "{\"key\":\"interval_s\",\"type\":\"int\",\"value\":60},"
                 "{\"key\":\"wifi_pass\",\"type\":\"string\",\"value\":\"%s\",\"secret\":true}]}}",
                 sealed);
        send_cmd(cmd, 700); /* in esp-mqtt fragments, reassembled by the core */
        CHECK(hm_broker_wait("/up/ack", "\"id\":\"cfg-7\"", buf, sizeof(buf), WAIT_MS), "config not acknowledged");
        CHECK(strstr(buf, "\"result\":\"ok\"") && strstr(buf, "\"config_version\":7"), "config not applied");
        const char *v = config_value("wifi_pass");
        CHECK(v && strcmp(v, "hunter2") == 0, "secret not decrypted and stored");
        v = config_value("interval_s");
        CHECK(v && strcmp(v, "60") == 0, "plain value not stored");

        /* the same sealed value under version 8: its AAD does not match, all or nothing */
        snprintf(cmd, sizeof(cmd),
                 "{\"v\":1,\"id\":\"cfg-8\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":8,"
                 "\"hash\":\"a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5\",\"entries\":["
                 "{\"key\":\"interval_s\",\"type\":\"int\",\"value\":5},"
                 "{\"key\":\"wifi_pass\",\"type\":\"string\",\"value\":\"%s\",\"secret\":true}]}}",
                 sealed);
        send_cmd(cmd, 0);
        CHECK(hm_broker_wait("/up/ack", "\"id\":\"cfg-8\"", buf, sizeof(buf), WAIT_MS), "replay not acknowledged");
        CHECK(strstr(buf, "\"result\":\"error\"") && strstr(buf, "wifi_pass"), "replayed secret not refused");
        v = config_value("interval_s");
        CHECK(v && strcmp(v, "60") == 0, "a refused config changed the applied one");
        CHECK(hm_broker_count("", "hunter2") == 0, "the secret's plaintext was published");
        send_cmd("{\"v\":1,\"id\":\"rs-cfg\",\"name\":\"restart\",\"expires_at\":9000000000000,\"params\":{}}", 0);
        wait_restart("no restart", WAIT_MS);
    }
    start();
    wait_online();
    CHECK(hm_broker_wait("/up/config_req", "\"config_version\":7", NULL, 0, WAIT_MS),
          "the next boot does not ask with the held version");
    const char *v = config_value("wifi_pass");
    CHECK(v && strcmp(v, "hunter2") == 0, "secret lost across the restart");
    pass();
}

/* restart: acknowledged, then the device restarts (re-executes) and its boot metadata says
 * why: reset reason "sw", the running version, the ESP8266 identity from v3.4's APIs. */
static void s_restart(int boot)
{
    char buf[4096];
    if (boot == 1) {
        provision(false, NULL);
        start();
        wait_online();
        CHECK(hm_broker_wait("/up/metadata", "\"reset_reason\":\"poweron\"", NULL, 0, WAIT_MS), "no first-boot metadata");
        send_cmd("{\"v\":1,\"id\":\"rs-1\",\"name\":\"restart\",\"expires_at\":9000000000000,\"params\":{}}", 0);
        CHECK(hm_broker_wait("/up/ack", "\"id\":\"rs-1\"", buf, sizeof(buf), WAIT_MS), "restart not acknowledged");
        CHECK(strstr(buf, "\"result\":\"ok\"") != NULL, "restart not acknowledged ok");
        wait_restart("acknowledged but no restart", WAIT_MS);
    }
    CHECK(hm_restarts() == 0, "restart count carried over");
    start();
    wait_online();
    CHECK(hm_broker_wait("/up/metadata", "\"reset_reason\":\"sw\"", buf, sizeof(buf), WAIT_MS),
          "no boot metadata with reset reason sw");
    CHECK(strstr(buf, "\"firmware_version\":\"v-1.0.0\""), "metadata without the running version");
    CHECK(strstr(buf, "esp8266") && strstr(buf, "v3.4-hostmodel"), "metadata without chip and SDK version");
    CHECK(strstr(buf, "192.168.4.23"), "metadata without the address from tcpip_adapter");
    pass();
}

/* debug on: lines logged by an application task through esp_log (v3.4: one character at a
 * time into esp_log_set_putchar's hook, under esp_log's lock) are published whole on the log
 * topic with their tag; debug off stops them. */
static void s_debug_logs(int boot)
{
    CHECK(boot == 1, "the board restarted");
    provision(false, NULL);
    start();
    wait_online();
    send_cmd("{\"v\":1,\"id\":\"dbg-1\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":true,"
             "\"level\":\"info\",\"duration_s\":60}}", 0);
    CHECK(hm_broker_wait("/up/ack", "dbg-1", NULL, 0, WAIT_MS), "debug not acknowledged");
    for (int i = 0; i < 100 && hm_broker_count("/up/log", "sensor 42 read") == 0; i++) {
        ESP_LOGI("app", "sensor %d read", 42);
        vTaskDelay(pdMS_TO_TICKS(50));
    }
    char buf[4096];
    CHECK(hm_broker_wait("/up/log", "\"tag\":\"app\",\"msg\":\"sensor 42 read\"", buf, sizeof(buf), WAIT_MS),
          "line not published whole (tag and message)");
    CHECK(strstr(buf, "\"level\":\"info\""), "line without its level");
    send_cmd("{\"v\":1,\"id\":\"dbg-2\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":false}}", 0);
    CHECK(hm_broker_wait("/up/ack", "dbg-2", NULL, 0, WAIT_MS), "debug off not acknowledged");
    int before = hm_broker_count("/up/log", "");
    for (int i = 0; i < 10; i++) {
        ESP_LOGI("app", "after debug off %d", i);
    }
    /* a batch is due every 250 ms: the agent has had eight times that to send one */
    for (int i = 0; i < 40; i++) {
        vTaskDelay(pdMS_TO_TICKS(50));
        CHECK(hm_broker_count("/up/log", "after debug off") == 0, "lines published after debug off");
    }
    CHECK(hm_broker_count("/up/log", "") == before, "log batches after debug off");
    pass();
}

/* An update whose new image never confirms (it cannot reach the broker): downloaded, verified,
 * rebooted into ota_1; the port counts the boot; at the verify deadline the core asks for a
 * rollback and the port boots ota_0 again (esp_ota_set_boot_partition, no bootloader
 * rollback); the old image reports failed / boot_failed_rolled_back. */
static void s_update_rollback(int boot)
{
    char rec[40], buf[2048];
    switch (boot) {
    case 1:
        provision(false, NULL);
        start();
        wait_online();
        update("up-rb", "v-1.1.0", "v-1.1.0", 0, "http://files.local/fw/v-1.1.0.bin", true);
        CHECK(hm_broker_wait("/up/ota", "\"state\":\"rebooting\"", NULL, 0, WAIT_MS), "image not downloaded and verified");
        CHECK(verify_record(rec, sizeof(rec)) && strcmp(rec, "ota_1 0") == 0, "update not recorded for verification");
        check_stacks(); /* the download task's use, in the plain build */
        wait_restart("no restart after the update", WAIT_MS);
    case 2:
        CHECK(hm_ota_running_slot() == 1 && strcmp(hm_running_version(), "v-1.1.0") == 0, "not running the new image");
        CHECK(verify_record(rec, sizeof(rec)) && strcmp(rec, "ota_1 1") == 0, "the boot of the new image not counted");
        hm_broker_set_refuse(true);
        start();
        wait_restart("no rollback after the verify deadline", WAIT_MS);
    default:
        CHECK(hm_ota_running_slot() == 0 && strcmp(hm_running_version(), "v-1.0.0") == 0,
              "not back on the previous image");
        CHECK(!verify_record(rec, sizeof(rec)), "verification record left behind");
        start();
        wait_online();
        CHECK(hm_broker_wait("/up/ota", "\"id\":\"up-rb\"", buf, sizeof(buf), WAIT_MS), "rollback not reported");
        CHECK(strstr(buf, "\"state\":\"failed\"") && strstr(buf, "\"reason\":\"boot_failed_rolled_back\""),
              "rollback reported with the wrong reason");
        pass();
    }
}

/* The confirm path: the new image reaches the broker, is confirmed (the record erased) and
 * reported succeeded; it then stays across later restarts instead of being counted towards a
 * rollback. */
static void s_update_confirm(int boot)
{
    char rec[40];
    switch (boot) {
    case 1:
        provision(false, NULL);
        start();
        wait_online();
        update("up-ok", "v-1.2.0", "v-1.2.0", 0, "http://files.local/fw/v-1.2.0.bin", true);
        wait_restart("no restart after the update", WAIT_MS);
    case 2:
        CHECK(strcmp(hm_running_version(), "v-1.2.0") == 0, "not running the new image");
        start();
        wait_online();
        CHECK(hm_broker_wait("/up/ota", "\"state\":\"succeeded\"", NULL, 0, WAIT_MS), "update not confirmed");
        for (int i = 0; i < 200 && verify_record(rec, sizeof(rec)); i++) {
            vTaskDelay(pdMS_TO_TICKS(20));
        }
        CHECK(!verify_record(rec, sizeof(rec)), "confirmation did not clear the verification record");
        send_cmd("{\"v\":1,\"id\":\"rs-2\",\"name\":\"restart\",\"expires_at\":9000000000000,\"params\":{}}", 0);
        wait_restart("no restart", WAIT_MS);
    case 3:
        send_cmd("{\"v\":1,\"id\":\"rs-3\",\"name\":\"restart\",\"expires_at\":9000000000000,\"params\":{}}", 0);
        start();
        wait_online();
        wait_restart("no restart", WAIT_MS);
    default:
        CHECK(hm_ota_running_slot() == 1 && strcmp(hm_running_version(), "v-1.2.0") == 0,
              "a confirmed image was rolled back");
        start();
        wait_online();
        pass();
    }
}

/* An image that crashes at every boot before it can confirm: the port counts its boots at
 * espadmin_esp_nvs_init and, past CONFIG_ESPADMIN_OTA_MAX_UNCONFIRMED_BOOTS (2 in the model),
 * boots the previous image, which reports the rollback. */
static void s_crash_loop(int boot)
{
    char buf[2048], rec[40];
    if (boot == 1) {
        provision(false, NULL);
        start();
        wait_online();
        update("up-crash", "v-1.3.0", "v-1.3.0", HM_IMG_CRASHES, "http://files.local/fw/v-1.3.0.bin", true);
        wait_restart("no restart after the update", WAIT_MS);
    }
    CHECK(boot == 5, "the crashing image was not switched away from after two unconfirmed boots");
    CHECK(strcmp(hm_running_version(), "v-1.0.0") == 0, "not back on the previous image");
    CHECK(!verify_record(rec, sizeof(rec)), "verification record left behind");
    start();
    wait_online();
    CHECK(hm_broker_wait("/up/ota", "\"id\":\"up-crash\"", buf, sizeof(buf), WAIT_MS), "rollback not reported");
    CHECK(strstr(buf, "\"reason\":\"boot_failed_rolled_back\""), "rollback reported with the wrong reason");
    pass();
}

/* The server's NVS CSV (format=nvs-csv, what the SDK's nvs_partition_gen.py writes to the
 * nvs partition at 0x9000): typed mqtt_port (u16) and mqtt_tls (u8), the CA as a base64 blob
 * that fits v3.4's 1,984-byte limit; esp-mqtt gets exactly that host, port, TLS and CA in its
 * flat configuration. */
static void s_provisioning_csv(int boot)
{
    CHECK(boot == 1, "the board restarted");
    CHECK(hm_nvs_load_csv(TESTDATA "/provisioning-nvs.csv") == 0, "cannot load the CSV");
    hm_broker_set_ca(CA_PEM);
    start();
    wait_online();
    hm_connection_t c;
    CHECK(hm_broker_connections(&c) >= 1, "no connection");
    CHECK(strcmp(c.host, "mqtt.example.com") == 0 && c.port == 8883, "wrong host or port");
    CHECK(c.transport == MQTT_TRANSPORT_OVER_SSL && strcmp(c.ca, CA_PEM) == 0, "not TLS with the provisioned CA");
    CHECK(strcmp(c.client_id, DEVICE) == 0 && strcmp(c.username, DEVICE) == 0, "wrong client ID or user");
    pass();
}

/* No certificate bundle on the ESP8266: an https download without a provisioned CA fails with
 * download_error saying so, before any connection is made. */
static void s_https_needs_ca(int boot)
{
    CHECK(boot == 1, "the board restarted");
    provision(false, NULL);
    start();
    wait_online();
    char buf[2048];
    int before = hm_http_requests();
    update("up-noca", "v-1.4.0", "v-1.4.0", 0, "https://cdn.example.net/fw/v-1.4.0.bin", true);
    CHECK(hm_broker_wait("/up/ota", "\"id\":\"up-noca\",\"version\":\"v-1.4.0\",\"state\":\"failed\"", buf, sizeof(buf),
                         WAIT_MS), "download without a CA not refused");
    CHECK(strstr(buf, "\"reason\":\"download_error\"") && strstr(buf, "no CA"), "wrong reason or message");
    CHECK(hm_http_requests() == before, "connected without a CA");
    pass();
}

static const struct {
    const char *name;
    void (*fn)(int boot);
} k_scenarios[] = {
    {"config_secret", s_config_secret}, {"restart", s_restart},       {"debug_logs", s_debug_logs},
    {"update_rollback", s_update_rollback}, {"update_confirm", s_update_confirm}, {"crash_loop", s_crash_loop},
    {"https_needs_ca", s_https_needs_ca}, {"provisioning_csv", s_provisioning_csv},
};

int main(int argc, char **argv)
{
    int boot = scenario_boot(argc, argv);
    /* app_main: espadmin_esp_nvs_init first (it counts a new image's boot, and may switch back) */
    ESP_ERROR_CHECK(espadmin_esp_nvs_init());
    if (hm_running_image_crashes()) {
        fprintf(stderr, "hostmodel: image %s crashes at boot\n", hm_running_version());
        hm_panic();
    }
    for (size_t i = 0; i < sizeof(k_scenarios) / sizeof(k_scenarios[0]); i++) {
        if (strcmp(k_scenarios[i].name, g_name) == 0) {
            k_scenarios[i].fn(boot);
            fail("scenario returned");
        }
    }
    fprintf(stderr, "unknown scenario %s\n", g_name);
    return 2;
}
