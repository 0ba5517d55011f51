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
 *  - esp_mqtt_client_publish instead of esp_mqtt_client_enqueue (not in this esp-mqtt).
 *  - Mbed TLS 2.x's _ret calls (in ports/esp-common with the other crypto). */
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
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "mqtt_client.h"
#include "nvs.h"
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

/* OTA: set before the agent task exists, then agent task only. */
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
    if (s_pending) {
        snprintf(espc_err, sizeof(espc_err), "the running image awaits confirmation");
        return ESPADMIN_PLATFORM_PENDING_VERIFY;
    }
    int rc = espc_ota_pick(size);
    if (rc != ESPADMIN_PLATFORM_OK) {
        return rc;
    }
    /* v3.4 erases what the image needs at begin (no OTA_WITH_SEQUENTIAL_WRITES) */
    esp_err_t err = esp_ota_begin(espc_ota_part, (size_t)size, &espc_ota);
    return err == ESP_OK ? ESPADMIN_PLATFORM_OK : espc_ota_begin_failed(err);
}

/* v3.4 has no esp_ota_abort: esp_ota_end releases the handle whatever it finds. */
static void p_ota_abort(void *ctx)
{
    (void)ctx;
    if (espc_ota) {
        (void)esp_ota_end(espc_ota);
        espc_ota = 0;
    }
}

/* The record goes first: a reset between the two writes leaves a record naming a slot that
 * does not run, which the next boot erases. */
static int p_ota_set_boot(void *ctx, const char *version)
{
    (void)ctx;
    (void)version; /* the image carries its own esp_app_desc_t version */
    if (!verify_record_write(espc_ota_part->label, 0)) {
        ESP_LOGE(TAG, "cannot record the update for its verification");
        return ESPADMIN_PLATFORM_ERR;
    }
    esp_err_t err = esp_ota_set_boot_partition(espc_ota_part);
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

static void p_system_info(void *ctx, espadmin_sysinfo_t *si)
{
    (void)ctx;
    espc_system_info(si);
    snprintf(si->project, sizeof(si->project), "%s", esp_ota_get_app_description()->project_name);
    tcpip_adapter_ip_info_t ip;
    if (tcpip_adapter_get_ip_info(TCPIP_ADAPTER_IF_STA, &ip) == ESP_OK) {
        snprintf(si->ip, sizeof(si->ip), IPSTR, IP2STR(&ip.ip));
    }
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

/* ---- the agent ---- */

static espadmin_platform_t s_platform;

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
    esp_err_t err = espc_crypto_init();
    if (err != ESP_OK) {
        return err;
    }
    boot_check(); /* when the application initialised NVS itself */
    espc_platform_defaults(&s_platform);
    s_platform.mqtt_connect = p_mqtt_connect;
    s_platform.mqtt_subscribe = p_mqtt_subscribe;
    s_platform.mqtt_publish = p_mqtt_publish;
    s_platform.ota_begin = p_ota_begin;
    s_platform.ota_abort = p_ota_abort;
    s_platform.ota_set_boot = p_ota_set_boot;
    s_platform.ota_mark_valid = p_ota_mark_valid;
    s_platform.ota_rollback = p_ota_rollback;
    s_platform.running_version = p_running_version;
    s_platform.boot_state = p_boot_state;
    s_platform.system_info = p_system_info;
    return espc_start(&s_platform);
}
