/* ESP8266_RTOS_SDK v3.4 platform for the ESP Admin agent, always with the core's small-memory
 * profile (include/espadmin/profile.h): the SDK's esp-mqtt (flat esp_mqtt_client_config_t,
 * the event loop API), NVS, esp_http_client and esp_ota_ops for updates, Mbed TLS 2.x
 * (mbedtls_sha256_*_ret, mbedtls_gcm_*), libsodium (Ed25519), esp_read_mac,
 * esp_ota_get_app_description and tcpip_adapter.
 *
 * What it shares with the ESP-IDF port is in ports/esp-common (NVS, the esp-mqtt handler that
 * copies into a bounded queue and never waits, the strings kept for esp-mqtt, the download
 * task, log lines, the agent task), under the same rules: no lock of ours is held across a
 * call into the SDK, SDK strings live as long as their client, the download runs in its own
 * task, every OTA failure is reported with its true reason.
 *
 * What differs from ESP-IDF:
 *  - No app rollback in v3.4's bootloader or esp_ota_ops.h: a restart boots whatever
 *    esp_ota_set_boot_partition chose. The port keeps the pending-verify state itself, in the
 *    NVS key "ota_verify" of the espadmin namespace ("<slot label> <boots>"), written before
 *    the boot partition is switched. At each boot (espadmin_esp_nvs_init, which app_main calls
 *    first, before anything that could crash) a record naming the running slot means "first
 *    boots of a new image": the boot is counted, and beyond
 *    CONFIG_ESPADMIN_OTA_MAX_UNCONFIRMED_BOOTS the port switches back to the other slot and
 *    restarts. Otherwise the core confirms the image when its online status is acknowledged
 *    (ota_mark_valid erases the record) or, at the verify deadline, asks for a rollback
 *    (ota_rollback switches back and restarts). The core's own ota_pending record then tells
 *    the server "failed / boot_failed_rolled_back", as on ESP-IDF.
 *  - No certificate bundle: MQTT over TLS and https downloads need a provisioned CA (mqtt_ca,
 *    ota_ca, or config _mqtt_ca / _ota_ca); without one the connection is refused with a log
 *    line (MQTT) or a download_error that says so.
 *  - esp_log has no vprintf hook: esp_log_set_putchar hands the text over one character at a
 *    time, with esp_log's recursive lock held for the whole line, so one line buffer serves.
 *  - esp_mqtt_client_publish instead of esp_mqtt_client_enqueue (not in this esp-mqtt). */
#include "espadmin_esp.h"
#include "espadmin_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_http_client.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "mbedtls/gcm.h"
#include "mbedtls/sha256.h"
#include "mqtt_client.h"
#include "nvs.h"
#include "sodium.h"
#include "tcpip_adapter.h"

#ifndef ESPADMIN_PROFILE_SMALL
#error "the ESP8266 port is built with the small-memory profile (the component defines ESPADMIN_PROFILE_SMALL)"
#endif
#ifndef CONFIG_ESPADMIN_OTA_MAX_UNCONFIRMED_BOOTS
#define CONFIG_ESPADMIN_OTA_MAX_UNCONFIRMED_BOOTS 3
#endif
#ifndef CONFIG_ESPADMIN_MQTT_BUFFER_SIZE
#define CONFIG_ESPADMIN_MQTT_BUFFER_SIZE 2048
#endif

static const char *TAG = "espadmin";

/* The port's pending-verify record (key of at most 15 characters, namespace espadmin). */
#define VERIFY_KEY "ota_verify"

/* OTA: agent task only, except s_pending, set before the agent task exists. */
static esp_ota_handle_t s_ota; /* 0: none (esp_ota_begin's handles start at 1) */
static const esp_partition_t *s_ota_part;
static bool s_pending;
static bool s_boot_checked;

/* Logs: only the task holding esp_log's lock runs the putchar hook. */
static putchar_like_t s_prev_putchar;
static bool s_in_hook;
static char s_line[256];
static size_t s_line_len;

/* ---- MQTT (esp-mqtt 01594bf: the flat configuration) ---- */

static int p_mqtt_connect(void *ctx, const espadmin_mqtt_config_t *c)
{
    (void)ctx;
    const espc_mqtt_keep_t *k = espc_mqtt_keep(c);
    if (k == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    if (c->tls && k->ca_pem == NULL) {
        ESP_LOGE(TAG, "MQTT over TLS needs a CA on the ESP8266 (the SDK has no certificate bundle): "
                      "provision mqtt_ca or set config _mqtt_ca");
        espc_mqtt_disconnect(ctx);
        return ESPADMIN_PLATFORM_ERR;
    }
    esp_mqtt_client_config_t cfg = {
        .host = k->host,
        .port = c->port,
        .transport = c->tls ? MQTT_TRANSPORT_OVER_SSL : MQTT_TRANSPORT_OVER_TCP,
        .client_id = k->client_id,
        .username = k->username,
        .password = k->password,
        .lwt_topic = k->will_topic,
        .lwt_msg = k->will_msg,
        .lwt_msg_len = (int)c->will_len,
        .lwt_qos = c->will_qos,
        .lwt_retain = c->will_retain,
        .keepalive = c->keepalive_s,
        .disable_auto_reconnect = true, /* the core reconnects with backoff */
        .buffer_size = CONFIG_ESPADMIN_MQTT_BUFFER_SIZE,
        .cert_pem = k->ca_pem,
    };
    return espc_mqtt_start(esp_mqtt_client_init(&cfg));
}

static int p_mqtt_subscribe(void *ctx, const char *filter, int qos)
{
    (void)ctx;
    esp_mqtt_client_handle_t m = espc_mqtt_client();
    return m ? esp_mqtt_client_subscribe(m, filter, qos) : -1;
}

/* esp_mqtt_client_publish takes esp-mqtt's API lock, which its task holds while it connects:
 * the agent task may wait for a handshake here, but holds no lock of ours meanwhile. */
static int p_mqtt_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
    (void)ctx;
    esp_mqtt_client_handle_t m = espc_mqtt_client();
    if (m == NULL) {
        return -1;
    }
    int id = esp_mqtt_client_publish(m, topic, payload, (int)len, qos, retain);
    return id < 0 ? -1 : (qos ? id : 0);
}

/* ---- OTA: esp_ota_* and the port's own pending-verify record ---- */

static void verify_record_erase(void)
{
    espc_kv_erase(NULL, ESPADMIN_NVS_NAMESPACE, VERIFY_KEY);
    espc_kv_commit(NULL, ESPADMIN_NVS_NAMESPACE);
}

static bool verify_record_write(const char *label, unsigned boots)
{
    char rec[40];
    int n = snprintf(rec, sizeof(rec), "%s %u", label, boots);
    return espc_kv_set(NULL, ESPADMIN_NVS_NAMESPACE, VERIFY_KEY, rec, (size_t)n) == ESPADMIN_PLATFORM_OK &&
           espc_kv_commit(NULL, ESPADMIN_NVS_NAMESPACE) == ESPADMIN_PLATFORM_OK;
}

/* Boots the other slot (the image that ran before the update): returns only when that fails. */
static void switch_back(void)
{
    const esp_partition_t *prev = esp_ota_get_next_update_partition(NULL);
    esp_err_t err = prev ? esp_ota_set_boot_partition(prev) : ESP_ERR_NOT_FOUND;
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "cannot switch back to the previous image: %s", esp_err_to_name(err));
        return;
    }
    verify_record_erase();
    s_pending = false;
    ESP_LOGW(TAG, "switched back to %s: restarting", prev->label);
    esp_restart();
}

/* At every boot, before the agent: is this one of the first boots of a new image? */
static void boot_check(void)
{
    if (s_boot_checked) {
        return;
    }
    s_boot_checked = true;
    char rec[40];
    size_t n = sizeof(rec) - 1;
    if (espc_kv_get(NULL, ESPADMIN_NVS_NAMESPACE, VERIFY_KEY, rec, &n) != ESPADMIN_PLATFORM_OK) {
        return;
    }
    rec[n] = '\0';
    char label[17];
    unsigned boots = 0;
    const esp_partition_t *run = esp_ota_get_running_partition();
    if (sscanf(rec, "%16s %u", label, &boots) != 2 || run == NULL || strcmp(run->label, label) != 0) {
        /* the new image is not the one running (the bootloader refused it): nothing to confirm;
         * the core's ota_pending record reports the update as rolled back */
        ESP_LOGW(TAG, "the updated image in %s is not running", label);
        verify_record_erase();
        return;
    }
    boots++;
    if (boots > CONFIG_ESPADMIN_OTA_MAX_UNCONFIRMED_BOOTS) {
        ESP_LOGE(TAG, "new image in %s started %u times without being confirmed: rolling back", label,
                 boots - 1);
        switch_back();
    }
    if (!verify_record_write(label, boots)) {
        ESP_LOGE(TAG, "cannot count the boot of the new image");
    }
    s_pending = true;
}

static int p_ota_begin(void *ctx, int64_t size)
{
    (void)ctx;
    espc_err[0] = '\0';
    if (s_pending) {
        snprintf(espc_err, sizeof(espc_err), "the running image awaits confirmation");
        return ESPADMIN_PLATFORM_PENDING_VERIFY;
    }
    s_ota_part = esp_ota_get_next_update_partition(NULL);
    if (s_ota_part == NULL) {
        ESP_LOGE(TAG, "no OTA partition to write to");
        snprintf(espc_err, sizeof(espc_err), "no OTA partition to write to");
        return ESPADMIN_PLATFORM_NO_SPACE;
    }
    if ((int64_t)s_ota_part->size < size) {
        ESP_LOGE(TAG, "image of %lu bytes does not fit partition %s", (unsigned long)size, s_ota_part->label);
        snprintf(espc_err, sizeof(espc_err), "image does not fit partition %s (%lu bytes)", s_ota_part->label,
                 (unsigned long)s_ota_part->size);
        return ESPADMIN_PLATFORM_NO_SPACE;
    }
    esp_err_t err = esp_ota_begin(s_ota_part, (size_t)size, &s_ota); /* erases what the image needs */
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_begin: %s", esp_err_to_name(err));
        s_ota = 0;
        snprintf(espc_err, sizeof(espc_err), "esp_ota_begin: %s", esp_err_to_name(err));
        return err == ESP_ERR_INVALID_SIZE ? ESPADMIN_PLATFORM_NO_SPACE : ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int p_ota_write(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    esp_err_t err = esp_ota_write(s_ota, data, len);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_write: %s", esp_err_to_name(err));
        snprintf(espc_err, sizeof(espc_err), "esp_ota_write: %s", esp_err_to_name(err));
        return err == ESP_ERR_OTA_VALIDATE_FAILED ? ESPADMIN_PLATFORM_INVALID_IMAGE
               : err == ESP_ERR_INVALID_SIZE      ? ESPADMIN_PLATFORM_NO_SPACE
                                                  : ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int p_ota_finish(void *ctx)
{
    (void)ctx;
    esp_err_t err = esp_ota_end(s_ota); /* verifies the image (esp_image_load) */
    s_ota = 0;
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_end: %s", esp_err_to_name(err));
        snprintf(espc_err, sizeof(espc_err), "esp_ota_end: %s", esp_err_to_name(err));
        return ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

/* v3.4 has no esp_ota_abort: esp_ota_end releases the handle whatever it finds. */
static void p_ota_abort(void *ctx)
{
    (void)ctx;
    if (s_ota) {
        (void)esp_ota_end(s_ota);
        s_ota = 0;
    }
}

/* The record goes first: a reset between the two writes leaves a record naming a slot that
 * does not run, which the next boot erases. */
static int p_ota_set_boot(void *ctx, const char *version)
{
    (void)ctx;
    (void)version; /* the image carries its own esp_app_desc_t version */
    if (!verify_record_write(s_ota_part->label, 0)) {
        ESP_LOGE(TAG, "cannot record the update for its verification");
        return ESPADMIN_PLATFORM_ERR;
    }
    esp_err_t err = esp_ota_set_boot_partition(s_ota_part);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_set_boot_partition: %s", esp_err_to_name(err));
        verify_record_erase();
        return ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int p_ota_mark_valid(void *ctx)
{
    (void)ctx;
    if (espc_kv_erase(NULL, ESPADMIN_NVS_NAMESPACE, VERIFY_KEY) != ESPADMIN_PLATFORM_OK ||
        espc_kv_commit(NULL, ESPADMIN_NVS_NAMESPACE) != ESPADMIN_PLATFORM_OK) {
        return ESPADMIN_PLATFORM_ERR;
    }
    s_pending = false;
    return ESPADMIN_PLATFORM_OK;
}

static void p_ota_rollback(void *ctx)
{
    (void)ctx;
    switch_back(); /* returns only on failure */
}

static void p_running_version(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "%s", esp_ota_get_app_description()->version);
}

static espadmin_boot_state_t p_boot_state(void *ctx)
{
    (void)ctx;
    return s_pending ? ESPADMIN_BOOT_PENDING_VERIFY : ESPADMIN_BOOT_VALID;
}

/* ---- system ---- */

static void p_restart(void *ctx) { (void)ctx; esp_restart(); }

static const char *p_reset_reason(void *ctx)
{
    (void)ctx;
    switch (esp_reset_reason()) {
    case ESP_RST_POWERON: return "poweron";
    case ESP_RST_EXT: return "ext";
    case ESP_RST_SW:
    case ESP_RST_FAST_SW: return "sw";
    case ESP_RST_PANIC: return "panic";
    case ESP_RST_INT_WDT: return "int_wdt";
    case ESP_RST_TASK_WDT: return "task_wdt";
    case ESP_RST_WDT: return "wdt";
    case ESP_RST_DEEPSLEEP: return "deepsleep";
    case ESP_RST_BROWNOUT: return "brownout";
    case ESP_RST_SDIO: return "sdio";
    default: return "unknown";
    }
}

static void p_system_info(void *ctx, espadmin_sysinfo_t *si)
{
    (void)ctx;
    esp_chip_info_t chip;
    esp_chip_info(&chip);
    const esp_app_desc_t *app = esp_ota_get_app_description();
    snprintf(si->chip_model, sizeof(si->chip_model), "esp8266");
    si->chip_revision = chip.revision;
    snprintf(si->idf_version, sizeof(si->idf_version), "%s", esp_get_idf_version());
    snprintf(si->project, sizeof(si->project), "%s", app->project_name);
    uint8_t mac[6] = {0};
    esp_read_mac(mac, ESP_MAC_WIFI_STA);
    snprintf(si->mac, sizeof(si->mac), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    tcpip_adapter_ip_info_t ip;
    if (tcpip_adapter_get_ip_info(TCPIP_ADAPTER_IF_STA, &ip) == ESP_OK) {
        snprintf(si->ip, sizeof(si->ip), IPSTR, IP2STR(&ip.ip));
    }
    wifi_ap_record_t ap;
    if (esp_wifi_sta_get_ap_info(&ap) == ESP_OK) {
        si->has_rssi = true;
        si->rssi = ap.rssi;
    }
    si->free_heap = esp_get_free_heap_size();
    si->min_free_heap = esp_get_minimum_free_heap_size();
}

/* ---- logs: esp_log_set_putchar ---- */

/* esp_log_write prints the prefix, the message and the newline through this, one character at
 * a time, holding its recursive lock for the whole line: a line is complete at '\n'. Every
 * character goes on to the previous output; a line logged while this task is inside the hook
 * (the agent logging from the capture) is passed on and not captured again. */
static int log_putchar(int ch)
{
    putchar_like_t prev = __atomic_load_n(&s_prev_putchar, __ATOMIC_ACQUIRE);
    int r = prev ? prev(ch) : putchar(ch);
    if (s_in_hook) {
        return r;
    }
    if (s_line_len < sizeof(s_line) - 1) {
        s_line[s_line_len++] = (char)ch; /* a longer line is cut */
    }
    if (ch == '\n') {
        s_in_hook = true;
        if (s_line[s_line_len - 1] != '\n') {
            s_line[s_line_len - 1] = '\n';
        }
        espc_feed_log(s_line, s_line_len);
        s_line_len = 0;
        s_in_hook = false;
    }
    return r;
}

void espc_port_install_log_hook(void)
{
    __atomic_store_n(&s_prev_putchar, esp_log_set_putchar(log_putchar), __ATOMIC_RELEASE);
}

/* ---- crypto: Mbed TLS 2.x (the SDK's fork) and libsodium ---- */

static void *p_sha_begin(void *ctx)
{
    (void)ctx;
    mbedtls_sha256_context *c = malloc(sizeof(*c));
    if (c) {
        mbedtls_sha256_init(c);
        mbedtls_sha256_starts_ret(c, 0);
    }
    return c;
}

static void p_sha_update(void *ctx, void *h, const void *data, size_t len)
{
    (void)ctx;
    mbedtls_sha256_update_ret(h, data, len);
}

static void p_sha_finish(void *ctx, void *h, uint8_t out[32])
{
    (void)ctx;
    uint8_t tmp[32];
    if (mbedtls_sha256_finish_ret(h, tmp) != 0) {
        memset(tmp, 0, sizeof(tmp));
    }
    if (out) {
        memcpy(out, tmp, 32);
    }
    mbedtls_sha256_free(h);
    free(h);
}

static bool p_gcm_decrypt(void *ctx, const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_len,
                          const void *ct, size_t ct_len, const uint8_t tag[16], void *out)
{
    (void)ctx;
    mbedtls_gcm_context g;
    mbedtls_gcm_init(&g);
    bool ok = mbedtls_gcm_setkey(&g, MBEDTLS_CIPHER_ID_AES, key, 256) == 0 &&
              mbedtls_gcm_auth_decrypt(&g, ct_len, nonce, 12, aad, aad_len, tag, 16, ct, out) == 0;
    mbedtls_gcm_free(&g);
    return ok;
}

static bool p_ed25519_verify(void *ctx, const uint8_t pub[32], const void *msg, size_t len, const uint8_t sig[64])
{
    (void)ctx;
    return crypto_sign_ed25519_verify_detached(sig, msg, len, pub) == 0;
}

/* ---- the agent ---- */

static const espadmin_platform_t s_platform = {
    .now_ms = espc_now,
    .wall_ms = espc_wall,
    .random = espc_random,
    .kv_get = espc_kv_get,
    .kv_set = espc_kv_set,
    .kv_erase = espc_kv_erase,
    .kv_erase_all = espc_kv_erase_all,
    .kv_commit = espc_kv_commit,
    .mqtt_connect = p_mqtt_connect,
    .mqtt_disconnect = espc_mqtt_disconnect,
    .mqtt_subscribe = p_mqtt_subscribe,
    .mqtt_publish = p_mqtt_publish,
    .ota_begin = p_ota_begin,
    .ota_write = p_ota_write,
    .ota_finish = p_ota_finish,
    .ota_abort = p_ota_abort,
    .ota_set_boot = p_ota_set_boot,
    .ota_mark_valid = p_ota_mark_valid,
    .ota_rollback = p_ota_rollback,
    .running_version = p_running_version,
    .boot_state = p_boot_state,
    .http_open = espc_http_open,
    .http_read = espc_http_read,
    .http_close = espc_http_close,
    .last_error = espc_last_error,
    .restart = p_restart,
    .reset_reason = p_reset_reason,
    .system_info = p_system_info,
    .log = espc_log,
    .log_lock = espc_log_lock,
    .sha256_begin = p_sha_begin,
    .sha256_update = p_sha_update,
    .sha256_finish = p_sha_finish,
    .ed25519_verify = p_ed25519_verify,
    .aes_gcm_decrypt = p_gcm_decrypt,
};

esp_err_t espadmin_esp_nvs_init(void)
{
    esp_err_t err = espc_nvs_flash_init();
    if (err == ESP_OK) {
        boot_check(); /* may switch back to the previous image and restart */
    }
    return err;
}

esp_err_t espadmin_esp_start(void)
{
    if (sodium_init() < 0) {
        return ESP_FAIL;
    }
    boot_check(); /* when the application initialised NVS itself */
    return espc_start(&s_platform);
}
