/* ESP-IDF v5 platform for the ESP Admin agent: esp-mqtt, NVS, esp_ota_* with app rollback,
 * esp_http_client, esp_log_set_vprintf (chained, re-entry guarded), esp_restart, mbedTLS
 * (SHA-256, AES-GCM) and libsodium (Ed25519). The agent runs in its own task; every call into
 * the core happens with the agent mutex held. */
#include "espadmin_esp.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "esp_app_desc.h"
#include "esp_chip_info.h"
#include "esp_crt_bundle.h"
#include "esp_http_client.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_netif.h"
#include "esp_ota_ops.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "mbedtls/gcm.h"
#include "mbedtls/sha256.h"
#include "mqtt_client.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sodium.h"

static const char *TAG = "espadmin";

static SemaphoreHandle_t s_lock;
static espadmin_agent_t *s_agent;
static esp_mqtt_client_handle_t s_mqtt;
static esp_ota_handle_t s_ota;
static const esp_partition_t *s_ota_part;
static esp_http_client_handle_t s_http;
static vprintf_like_t s_prev_vprintf;
static __thread bool s_in_hook;

static void lock(void) { xSemaphoreTakeRecursive(s_lock, portMAX_DELAY); }
static void unlock(void) { xSemaphoreGiveRecursive(s_lock); }

/* ---- time, randomness ---- */

static int64_t p_now(void *ctx) { (void)ctx; return esp_timer_get_time() / 1000; }

static int64_t p_wall(void *ctx)
{
    (void)ctx;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    if (tv.tv_sec < 1700000000) {
        return 0; /* not set by SNTP yet */
    }
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void p_random(void *ctx, void *buf, size_t len) { (void)ctx; esp_fill_random(buf, len); }

/* ---- NVS ---- */

static int p_kv_get(void *ctx, const char *ns, const char *key, void *buf, size_t *len)
{
    (void)ctx;
    nvs_handle_t h;
    if (nvs_open(ns, NVS_READONLY, &h) != ESP_OK) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    size_t n = buf ? *len : 0;
    esp_err_t err = nvs_get_blob(h, key, buf, &n);
    if (err == ESP_ERR_NVS_NOT_FOUND || err == ESP_ERR_NVS_TYPE_MISMATCH) {
        /* provisioning values come from nvs_partition_gen as strings */
        n = buf ? *len + 1 : 0;
        char *tmp = buf ? malloc(n) : NULL;
        err = nvs_get_str(h, key, tmp, &n);
        if (err == ESP_OK && n > 0) {
            n--; /* without the NUL */
            if (buf) {
                memcpy(buf, tmp, n);
            }
        }
        free(tmp);
    }
    nvs_close(h);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    if (err == ESP_ERR_NVS_INVALID_LENGTH) {
        return ESPADMIN_PLATFORM_TOO_SMALL;
    }
    if (err != ESP_OK) {
        return ESPADMIN_PLATFORM_ERR;
    }
    *len = n;
    return ESPADMIN_PLATFORM_OK;
}

static int with_handle(const char *ns, int (*fn)(nvs_handle_t h, const char *key, const void *val, size_t len),
                       const char *key, const void *val, size_t len)
{
    nvs_handle_t h;
    if (nvs_open(ns, NVS_READWRITE, &h) != ESP_OK) {
        return ESPADMIN_PLATFORM_ERR;
    }
    int rc = fn(h, key, val, len);
    nvs_close(h);
    return rc;
}

static int do_set(nvs_handle_t h, const char *key, const void *val, size_t len)
{
    return nvs_set_blob(h, key, val, len) == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int do_erase(nvs_handle_t h, const char *key, const void *val, size_t len)
{
    (void)val;
    (void)len;
    esp_err_t err = nvs_erase_key(h, key);
    return err == ESP_OK || err == ESP_ERR_NVS_NOT_FOUND ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int do_erase_all(nvs_handle_t h, const char *key, const void *val, size_t len)
{
    (void)key;
    (void)val;
    (void)len;
    return nvs_erase_all(h) == ESP_OK && nvs_commit(h) == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int do_commit(nvs_handle_t h, const char *key, const void *val, size_t len)
{
    (void)key;
    (void)val;
    (void)len;
    return nvs_commit(h) == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int p_kv_set(void *ctx, const char *ns, const char *key, const void *val, size_t len)
{
    (void)ctx;
    return with_handle(ns, do_set, key, val, len);
}

static int p_kv_erase(void *ctx, const char *ns, const char *key)
{
    (void)ctx;
    return with_handle(ns, do_erase, key, NULL, 0);
}

static int p_kv_erase_all(void *ctx, const char *ns)
{
    (void)ctx;
    return with_handle(ns, do_erase_all, NULL, NULL, 0);
}

static int p_kv_commit(void *ctx, const char *ns)
{
    (void)ctx;
    return with_handle(ns, do_commit, NULL, NULL, 0);
}

esp_err_t espadmin_esp_nvs_init(void)
{
#if CONFIG_ESPADMIN_NVS_ENCRYPTION
    const esp_partition_t *keys = esp_partition_find_first(ESP_PARTITION_TYPE_DATA,
                                                            ESP_PARTITION_SUBTYPE_DATA_NVS_KEYS, NULL);
    if (keys == NULL) {
        return ESP_ERR_NOT_FOUND;
    }
    nvs_sec_cfg_t cfg;
    esp_err_t err = nvs_flash_read_security_cfg(keys, &cfg);
    if (err == ESP_ERR_NVS_KEYS_NOT_INITIALIZED) {
        err = nvs_flash_generate_keys(keys, &cfg);
    }
    if (err != ESP_OK) {
        return err;
    }
    return nvs_flash_secure_init(&cfg);
#else
    return nvs_flash_init();
#endif
}

/* ---- MQTT (esp-mqtt) ---- */

static void mqtt_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    (void)base;
    esp_mqtt_event_handle_t e = data;
    lock();
    if (s_agent) {
        switch ((esp_mqtt_event_id_t)id) {
        case MQTT_EVENT_CONNECTED:
            espadmin_on_connected(s_agent);
            break;
        case MQTT_EVENT_DISCONNECTED:
            espadmin_on_disconnected(s_agent);
            break;
        case MQTT_EVENT_PUBLISHED:
            espadmin_on_published(s_agent, e->msg_id);
            break;
        case MQTT_EVENT_DATA:
            /* copied into the agent's bounded inbox; handled in the tick */
            espadmin_on_message_fragment(s_agent, e->topic, (size_t)e->topic_len, (size_t)e->total_data_len,
                                         (size_t)e->current_data_offset, e->data, (size_t)e->data_len);
            break;
        default:
            break;
        }
    }
    unlock();
}

static void p_mqtt_disconnect(void *ctx)
{
    (void)ctx;
    if (s_mqtt) {
        esp_mqtt_client_disconnect(s_mqtt);
        esp_mqtt_client_stop(s_mqtt);
        esp_mqtt_client_destroy(s_mqtt);
        s_mqtt = NULL;
    }
}

static int p_mqtt_connect(void *ctx, const espadmin_mqtt_config_t *c)
{
    p_mqtt_disconnect(ctx);
    esp_mqtt_client_config_t cfg = {
        .broker.address.hostname = c->host,
        .broker.address.port = c->port,
        .broker.address.transport = c->tls ? MQTT_TRANSPORT_OVER_SSL : MQTT_TRANSPORT_OVER_TCP,
        .credentials.client_id = c->client_id,
        .credentials.username = c->username,
        .credentials.authentication.password = c->password,
        .session.last_will.topic = c->will_topic,
        .session.last_will.msg = c->will_payload,
        .session.last_will.msg_len = (int)c->will_len,
        .session.last_will.qos = c->will_qos,
        .session.last_will.retain = c->will_retain,
        .session.keepalive = c->keepalive_s,
        .network.disable_auto_reconnect = true, /* the core reconnects with backoff */
        .buffer.size = 4096,
    };
    if (c->tls) {
        if (c->ca_pem && c->ca_pem[0]) {
            cfg.broker.verification.certificate = c->ca_pem;
        } else {
            cfg.broker.verification.crt_bundle_attach = esp_crt_bundle_attach;
        }
    }
    s_mqtt = esp_mqtt_client_init(&cfg);
    if (s_mqtt == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    esp_mqtt_client_register_event(s_mqtt, ESP_EVENT_ANY_ID, mqtt_event, NULL);
    return esp_mqtt_client_start(s_mqtt) == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int p_mqtt_subscribe(void *ctx, const char *filter, int qos)
{
    (void)ctx;
    return s_mqtt ? esp_mqtt_client_subscribe(s_mqtt, filter, qos) : -1;
}

static int p_mqtt_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
    (void)ctx;
    if (s_mqtt == NULL) {
        return -1;
    }
    int id = esp_mqtt_client_enqueue(s_mqtt, topic, payload, (int)len, qos, retain, true);
    return id < 0 ? -1 : (qos ? id : 0);
}

/* ---- OTA: esp_ota_* with app rollback (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE) ---- */

static int p_ota_begin(void *ctx, int64_t size)
{
    (void)ctx;
    s_ota_part = esp_ota_get_next_update_partition(NULL);
    if (s_ota_part == NULL || (int64_t)s_ota_part->size < size) {
        return ESPADMIN_PLATFORM_ERR;
    }
    return esp_ota_begin(s_ota_part, OTA_WITH_SEQUENTIAL_WRITES, &s_ota) == ESP_OK ? ESPADMIN_PLATFORM_OK
                                                                                 : ESPADMIN_PLATFORM_ERR;
}

static int p_ota_write(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    return esp_ota_write(s_ota, data, len) == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int p_ota_finish(void *ctx)
{
    (void)ctx;
    esp_err_t err = esp_ota_end(s_ota); /* validates the image */
    s_ota = 0;
    return err == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static void p_ota_abort(void *ctx)
{
    (void)ctx;
    if (s_ota) {
        esp_ota_abort(s_ota);
        s_ota = 0;
    }
}

static int p_ota_set_boot(void *ctx, const char *version)
{
    (void)ctx;
    (void)version; /* the image carries its own esp_app_desc_t version */
    return esp_ota_set_boot_partition(s_ota_part) == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int p_ota_mark_valid(void *ctx)
{
    (void)ctx;
    return esp_ota_mark_app_valid_cancel_rollback() == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static void p_ota_rollback(void *ctx)
{
    (void)ctx;
    esp_ota_mark_app_invalid_rollback_and_reboot(); /* returns only on failure */
    ESP_LOGE(TAG, "rollback impossible (no valid previous image)");
}

static void p_running_version(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "%s", esp_app_get_description()->version);
}

static espadmin_boot_state_t p_boot_state(void *ctx)
{
    (void)ctx;
    esp_ota_img_states_t st;
    if (esp_ota_get_state_partition(esp_ota_get_running_partition(), &st) == ESP_OK &&
        st == ESP_OTA_IMG_PENDING_VERIFY) {
        return ESPADMIN_BOOT_PENDING_VERIFY;
    }
    return ESPADMIN_BOOT_VALID;
}

/* ---- HTTP (esp_http_client, streamed) ---- */

static void p_http_close(void *ctx)
{
    (void)ctx;
    if (s_http) {
        esp_http_client_close(s_http);
        esp_http_client_cleanup(s_http);
        s_http = NULL;
    }
}

static int p_http_open(void *ctx, const char *url)
{
    p_http_close(ctx);
    esp_http_client_config_t cfg = {
        .url = url,
        .crt_bundle_attach = esp_crt_bundle_attach,
        .timeout_ms = 20000,
        .keep_alive_enable = true,
    };
    s_http = esp_http_client_init(&cfg);
    if (s_http == NULL || esp_http_client_open(s_http, 0) != ESP_OK ||
        esp_http_client_fetch_headers(s_http) < 0 || esp_http_client_get_status_code(s_http) != 200) {
        p_http_close(ctx);
        return ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int p_http_read(void *ctx, void *buf, size_t cap)
{
    (void)ctx;
    if (s_http == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    /* blocking read in the agent task; esp-mqtt keeps its own task alive meanwhile */
    unlock();
    int n = esp_http_client_read(s_http, buf, (int)cap);
    lock();
    if (n < 0) {
        return ESPADMIN_PLATFORM_ERR;
    }
    if (n == 0) {
        return esp_http_client_is_complete_data_received(s_http) ? 0 : ESPADMIN_PLATFORM_ERR;
    }
    return n;
}

/* ---- system ---- */

static void p_restart(void *ctx) { (void)ctx; esp_restart(); }

static const char *p_reset_reason(void *ctx)
{
    (void)ctx;
    switch (esp_reset_reason()) {
    case ESP_RST_POWERON: return "poweron";
    case ESP_RST_EXT: return "ext";
    case ESP_RST_SW: return "sw";
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
    const esp_app_desc_t *app = esp_app_get_description();
    snprintf(si->chip_model, sizeof(si->chip_model), "%s", CONFIG_IDF_TARGET);
    si->chip_revision = chip.revision;
    snprintf(si->idf_version, sizeof(si->idf_version), "%s", esp_get_idf_version());
    snprintf(si->project, sizeof(si->project), "%s", app->project_name);
    uint8_t mac[6] = {0};
    esp_read_mac(mac, ESP_MAC_WIFI_STA);
    snprintf(si->mac, sizeof(si->mac), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    esp_netif_ip_info_t ip;
    esp_netif_t *netif = esp_netif_get_handle_from_ifkey("WIFI_STA_DEF");
    if (netif && esp_netif_get_ip_info(netif, &ip) == ESP_OK) {
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

static void p_log(void *ctx, espadmin_level_t level, const char *tag, const char *msg)
{
    (void)ctx;
    static const esp_log_level_t map[] = {ESP_LOG_ERROR, ESP_LOG_WARN, ESP_LOG_INFO, ESP_LOG_DEBUG, ESP_LOG_VERBOSE};
    ESP_LOG_LEVEL_LOCAL(map[level <= ESPADMIN_LEVEL_VERBOSE ? level : 2], tag, "%s", msg);
}

/* The vprintf hook: always passes the line on to the previous hook, and feeds it to the agent
 * when this task is not already inside the hook and the agent lock is free right now. */
static int log_hook(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    int r = s_prev_vprintf ? s_prev_vprintf(fmt, ap) : vprintf(fmt, ap);
    if (!s_in_hook && s_agent && xSemaphoreTakeRecursive(s_lock, 0) == pdTRUE) {
        s_in_hook = true;
        char line[600];
        vsnprintf(line, sizeof(line), fmt, copy);
        /* "I (1234) tag: message" possibly wrapped in colour codes */
        const char *p = line;
        if (p[0] == '\x1b') {
            p = strchr(p, 'm') ? strchr(p, 'm') + 1 : p;
        }
        espadmin_level_t lvl = ESPADMIN_LEVEL_INFO;
        switch (p[0]) {
        case 'E': lvl = ESPADMIN_LEVEL_ERROR; break;
        case 'W': lvl = ESPADMIN_LEVEL_WARN; break;
        case 'D': lvl = ESPADMIN_LEVEL_DEBUG; break;
        case 'V': lvl = ESPADMIN_LEVEL_VERBOSE; break;
        default: break;
        }
        char tag[33] = "";
        const char *close = strstr(p, ") ");
        const char *colon = close ? strstr(close + 2, ": ") : NULL;
        const char *msg = p;
        if (close && colon && colon - (close + 2) < (int)sizeof(tag)) {
            memcpy(tag, close + 2, (size_t)(colon - (close + 2)));
            tag[colon - (close + 2)] = '\0';
            msg = colon + 2;
        }
        espadmin_log_capture(s_agent, lvl, tag[0] ? tag : NULL, msg, strlen(msg));
        s_in_hook = false;
        xSemaphoreGiveRecursive(s_lock);
    }
    va_end(copy);
    return r;
}

static void p_log_lock(void *ctx, bool take)
{
    (void)ctx;
    if (take) {
        lock();
    } else {
        unlock();
    }
}

/* ---- crypto ---- */

static void *p_sha_begin(void *ctx)
{
    (void)ctx;
    mbedtls_sha256_context *c = malloc(sizeof(*c));
    if (c) {
        mbedtls_sha256_init(c);
        mbedtls_sha256_starts(c, 0);
    }
    return c;
}

static void p_sha_update(void *ctx, void *h, const void *data, size_t len)
{
    (void)ctx;
    mbedtls_sha256_update(h, data, len);
}

static void p_sha_finish(void *ctx, void *h, uint8_t out[32])
{
    (void)ctx;
    uint8_t tmp[32];
    mbedtls_sha256_finish(h, tmp);
    if (out) {
        memcpy(out, tmp, 32);
    }
    mbedtls_sha256_free(h);
    free(h);
}

static bool p_ed25519_verify(void *ctx, const uint8_t pub[32], const void *msg, size_t len, const uint8_t sig[64])
{
    (void)ctx;
    return crypto_sign_ed25519_verify_detached(sig, msg, len, pub) == 0;
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

/* ---- the agent task ---- */

static const espadmin_platform_t s_platform = {
    .now_ms = p_now,
    .wall_ms = p_wall,
    .random = p_random,
    .kv_get = p_kv_get,
    .kv_set = p_kv_set,
    .kv_erase = p_kv_erase,
    .kv_erase_all = p_kv_erase_all,
    .kv_commit = p_kv_commit,
    .mqtt_connect = p_mqtt_connect,
    .mqtt_disconnect = p_mqtt_disconnect,
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
    .http_open = p_http_open,
    .http_read = p_http_read,
    .http_close = p_http_close,
    .restart = p_restart,
    .reset_reason = p_reset_reason,
    .system_info = p_system_info,
    .log = p_log,
    .log_lock = p_log_lock,
    .sha256_begin = p_sha_begin,
    .sha256_update = p_sha_update,
    .sha256_finish = p_sha_finish,
    .ed25519_verify = p_ed25519_verify,
    .aes_gcm_decrypt = p_gcm_decrypt,
};

static void agent_task(void *arg)
{
    (void)arg;
    for (;;) {
        lock();
        espadmin_tick(s_agent, p_now(NULL));
        unlock();
        vTaskDelay(pdMS_TO_TICKS(CONFIG_ESPADMIN_TICK_MS));
    }
}

esp_err_t espadmin_esp_start(void)
{
    if (s_lock != NULL) {
        return ESP_ERR_INVALID_STATE;
    }
    if (sodium_init() < 0) {
        return ESP_FAIL;
    }
    s_lock = xSemaphoreCreateRecursiveMutex();
    if (s_lock == NULL) {
        return ESP_ERR_NO_MEM;
    }
    espadmin_options_t opt = {
        .ota_verify_timeout_ms = CONFIG_ESPADMIN_OTA_VERIFY_TIMEOUT_S * 1000u,
        .log_ring_bytes = CONFIG_ESPADMIN_LOG_RING_BYTES,
        .inbox_slots = CONFIG_ESPADMIN_INBOX_SLOTS,
    };
    lock();
    s_agent = espadmin_agent_init(&s_platform, &opt);
    unlock();
    if (s_agent == NULL) {
        ESP_LOGE(TAG, "agent not started: provisioning missing (NVS namespace \"espadmin\")");
        return ESP_ERR_INVALID_STATE;
    }
    s_prev_vprintf = esp_log_set_vprintf(log_hook);
    return xTaskCreate(agent_task, "espadmin", CONFIG_ESPADMIN_TASK_STACK, NULL, CONFIG_ESPADMIN_TASK_PRIORITY,
                       NULL) == pdPASS ? ESP_OK : ESP_ERR_NO_MEM;
}

void espadmin_esp_with_agent(void (*fn)(espadmin_agent_t *agent, void *arg), void *arg)
{
    if (s_lock == NULL || s_agent == NULL) {
        return;
    }
    lock();
    fn(s_agent, arg);
    unlock();
}
