/* ESP-IDF (v5.1 to v6.0) platform for the ESP Admin agent: esp-mqtt, NVS, esp_ota_* with app
 * rollback, esp_http_client, esp_log_set_vprintf (chained, re-entry guarded), esp_restart,
 * Mbed TLS (legacy API up to Mbed TLS 3, PSA Crypto from Mbed TLS 4 / ESP-IDF v6.0) and
 * libsodium (Ed25519).
 *
 * Threads. The core is single-threaded: only the agent task calls into it, with two
 * exceptions that touch nothing but the log ring under s_log_lock (espadmin_log_capture from
 * the vprintf hook). Other tasks reach the agent through s_events:
 *  - esp-mqtt's task runs mqtt_event while holding esp-mqtt's recursive API lock. The handler
 *    never blocks: it records connection changes in atomics and copies PUBACKs and message
 *    fragments into the bounded queue (xQueueSend with no wait; a full queue, or fragments
 *    over CONFIG_ESPADMIN_EVENT_QUEUE_BYTES, drop the event and count it). The agent task drains the queue and reassembles fragments in the core.
 *  - application tasks call espadmin_esp_with_agent, which posts the call to the same queue
 *    and waits until the agent task has run it between two ticks.
 *  - the OTA download runs in its own task (TLS handshake, redirects, Range resume), which
 *    hands data to the agent task through a bounded buffer; a slow server never stalls the
 *    agent task or esp-mqtt.
 * So no lock of ours is ever held across a call into esp-mqtt or esp_http_client, and nothing
 * esp-mqtt's task runs waits for the agent.
 *
 * Lifetimes. esp-mqtt reads the CA certificate (and, by its documented contract, may read any
 * config pointer) from its own task at connect time, and esp_http_client reads cert_pem during
 * the handshake: the port copies every string it hands to an SDK into memory it frees only
 * after the SDK object is destroyed. */
#include "espadmin_esp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "esp_app_desc.h"
#include "esp_chip_info.h"
#include "esp_core_dump.h"
#include "esp_crt_bundle.h"
#include "esp_http_client.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_mac.h"
#include "esp_netif.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_random.h"
#include "esp_system.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "mbedtls/version.h"
#include "mqtt_client.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sodium.h"

#if MBEDTLS_VERSION_MAJOR >= 4
/* Mbed TLS 4 (ESP-IDF v6.0) keeps only PSA Crypto public. */
#define ESPADMIN_PSA 1
#include "psa/crypto.h"
#else
#define ESPADMIN_PSA 0
#include "mbedtls/gcm.h"
#include "mbedtls/sha256.h"
#endif

static const char *TAG = "espadmin";

/* No 64-bit printf formats here: newlib-nano (the default on ESP32-C2) does not print them.
 * Image sizes and offsets fit an unsigned long (a partition is at most 16 MiB). */

/* Download buffer between the download task and the agent task, and the largest piece the
 * download task reads at once. */
#define DL_BUF 4096
#define DL_READ 1024
#define DL_MAX_ATTEMPTS 5
#define DL_MAX_REDIRECTS 5
/* The protocol allows 2,048-byte URLs (docs/protocol.md); the request line and headers must
 * fit esp_http_client's transmit buffer (512 bytes by default). */
#define DL_TX_BUFFER (2048 + 512)
/* A v2 log line arrives as several vprintf calls; this many tasks can be mid-line at once. */
#define LOG_SLOTS 3
#define LOG_LINE 256

#ifndef CONFIG_ESPADMIN_EVENT_QUEUE_LEN
#define CONFIG_ESPADMIN_EVENT_QUEUE_LEN 16
#endif
#ifndef CONFIG_ESPADMIN_EVENT_QUEUE_BYTES
#define CONFIG_ESPADMIN_EVENT_QUEUE_BYTES 20480
#endif
#ifndef CONFIG_ESPADMIN_DOWNLOAD_TASK_STACK
#define CONFIG_ESPADMIN_DOWNLOAD_TASK_STACK 8192
#endif
#ifndef CONFIG_ESPADMIN_PROVISION_RETRY_S
#define CONFIG_ESPADMIN_PROVISION_RETRY_S 30
#endif

typedef enum { EV_PUBLISHED, EV_DATA, EV_CALL } ev_kind_t;

typedef struct {
    void (*fn)(espadmin_agent_t *agent, void *arg);
    void *arg;
    SemaphoreHandle_t done;
    esp_err_t result;
} call_t;

typedef struct {
    ev_kind_t kind;
    uint32_t gen; /* the MQTT client the event came from */
    int msg_id;
    /* EV_DATA: one malloc'd block holding the topic then the data */
    char *frag;
    int topic_len;
    int total_len;
    int offset;
    int len;
    call_t *call;
} ev_t;

/* Strings handed to esp-mqtt, kept until the client is destroyed. */
typedef struct {
    char *host;
    char *client_id;
    char *username;
    char *password;
    char *will_topic;
    char *will_msg;
    char *ca_pem;
} mqtt_keep_t;

/* One download, shared by the agent task and its download task. The last of the two to let go
 * frees it (refs). */
typedef struct {
    char *url;
    char *ca_pem; /* NULL: the certificate bundle */
    SemaphoreHandle_t mu;
    int refs;
    bool cancel;
    bool done;
    bool failed;
    char why[80]; /* the last attempt's failure, for the report's message */
    uint8_t buf[DL_BUF];
    size_t head;
    size_t len;
    SemaphoreHandle_t space; /* given by the agent task when it took data */
} dl_t;

static QueueHandle_t s_events;
static SemaphoreHandle_t s_log_lock;
static TaskHandle_t s_agent_task;
static espadmin_agent_t *s_agent; /* written by the agent task; read by the log hook (atomic) */
static uint32_t s_dropped;        /* events dropped by the handler (atomic) */
static uint32_t s_queued_bytes;   /* fragment bytes waiting in s_events (atomic) */
static uint32_t s_dropped_reported;
static bool s_quiet;              /* agent task only: mute the core while provisioning is missing */

/* MQTT: agent task only, except the atomics the handler sets. */
static esp_mqtt_client_handle_t s_mqtt;
static mqtt_keep_t s_keep;
static uint32_t s_gen;           /* generation of s_mqtt (atomic) */
static uint32_t s_link_up_gen;   /* generation that reported CONNECTED (atomic) */
static uint32_t s_link_down_gen; /* generation that reported DISCONNECTED (atomic) */
static bool s_seen_up;
static bool s_seen_down;

/* OTA: agent task only. */
static esp_ota_handle_t s_ota;
static const esp_partition_t *s_ota_part;
static dl_t *s_dl;
static char s_err[80]; /* why the last ota_* or http_* call failed (last_error) */

/* Logs. */
static vprintf_like_t s_prev_vprintf;
static __thread bool s_in_hook;
typedef struct {
    TaskHandle_t owner;
    size_t len;
    char text[LOG_LINE];
} log_slot_t;
static log_slot_t s_log_slots[LOG_SLOTS]; /* under s_log_lock */

static espadmin_agent_t *agent_atomic(void) { return __atomic_load_n(&s_agent, __ATOMIC_ACQUIRE); }

static void count_drop(void) { __atomic_add_fetch(&s_dropped, 1, __ATOMIC_RELAXED); }

static char *dup_or_null(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

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

/* Reads a value that is not a blob: a string (its text, without the NUL) or an integer of
 * any width (its decimal text), so typed provisioning entries written by nvs_partition_gen
 * (mqtt_port u16, mqtt_tls u8) read like the strings the core parses. */
static esp_err_t get_as_text(nvs_handle_t h, const char *key, void *buf, size_t cap, size_t *n)
{
    size_t sz = 0;
    esp_err_t err = nvs_get_str(h, key, NULL, &sz);
    if (err == ESP_OK) {
        if (sz == 0) {
            *n = 0;
            return ESP_OK;
        }
        *n = sz - 1;
        if (buf == NULL) {
            return ESP_OK;
        }
        if (sz - 1 > cap) {
            return ESP_ERR_NVS_INVALID_LENGTH;
        }
        char *tmp = malloc(sz);
        if (tmp == NULL) {
            return ESP_ERR_NO_MEM;
        }
        err = nvs_get_str(h, key, tmp, &sz);
        if (err == ESP_OK) {
            memcpy(buf, tmp, sz - 1);
        }
        free(tmp);
        return err;
    }
    if (err != ESP_ERR_NVS_TYPE_MISMATCH) {
        return err;
    }
    char num[24];
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    int8_t i8;
    int16_t i16;
    int32_t i32;
    if ((err = nvs_get_u8(h, key, &u8)) == ESP_OK) {
        snprintf(num, sizeof(num), "%u", (unsigned)u8);
    } else if ((err = nvs_get_u16(h, key, &u16)) == ESP_OK) {
        snprintf(num, sizeof(num), "%u", (unsigned)u16);
    } else if ((err = nvs_get_i32(h, key, &i32)) == ESP_OK) {
        snprintf(num, sizeof(num), "%ld", (long)i32);
    } else if ((err = nvs_get_u32(h, key, &u32)) == ESP_OK) {
        snprintf(num, sizeof(num), "%lu", (unsigned long)u32);
    } else if ((err = nvs_get_i16(h, key, &i16)) == ESP_OK) {
        snprintf(num, sizeof(num), "%d", (int)i16);
    } else if ((err = nvs_get_i8(h, key, &i8)) == ESP_OK) {
        snprintf(num, sizeof(num), "%d", (int)i8);
    } else {
        return err;
    }
    *n = strlen(num);
    if (buf != NULL) {
        if (*n > cap) {
            return ESP_ERR_NVS_INVALID_LENGTH;
        }
        memcpy(buf, num, *n);
    }
    return ESP_OK;
}

static int p_kv_get(void *ctx, const char *ns, const char *key, void *buf, size_t *len)
{
    (void)ctx;
    nvs_handle_t h;
    if (nvs_open(ns, NVS_READONLY, &h) != ESP_OK) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    size_t n = buf ? *len : 0;
    esp_err_t err = nvs_get_blob(h, key, buf, &n);
    if (err == ESP_ERR_NVS_TYPE_MISMATCH) {
        err = get_as_text(h, key, buf, buf ? *len : 0, &n);
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

/* nvs_flash_init() initialises the default partition encrypted when CONFIG_NVS_ENCRYPTION is
 * set, with whichever key-protection scheme the project selected (the nvs_keys partition under
 * flash encryption, or from v5.2 on the HMAC peripheral). The partition is never erased here:
 * it holds the provisioning. */
esp_err_t espadmin_esp_nvs_init(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_LOGE(TAG, "NVS partition needs erasing (%s); not erased because it holds the provisioning: "
                      "reflash the provisioning NVS image", esp_err_to_name(err));
    } else if (err != ESP_OK) {
        ESP_LOGE(TAG, "NVS init failed: %s", esp_err_to_name(err));
    }
    return err;
}

/* ---- MQTT (esp-mqtt) ---- */

/* Runs in esp-mqtt's task with esp-mqtt's API lock held: copies and queues, never waits. */
static void mqtt_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)base;
    uint32_t gen = (uint32_t)(uintptr_t)arg;
    esp_mqtt_event_handle_t e = data;
    ev_t ev = {.gen = gen};
    switch ((esp_mqtt_event_id_t)id) {
    case MQTT_EVENT_CONNECTED:
        __atomic_store_n(&s_link_up_gen, gen, __ATOMIC_RELEASE);
        return;
    case MQTT_EVENT_DISCONNECTED:
        __atomic_store_n(&s_link_down_gen, gen, __ATOMIC_RELEASE);
        return;
    case MQTT_EVENT_PUBLISHED:
        ev.kind = EV_PUBLISHED;
        ev.msg_id = e->msg_id;
        break;
    case MQTT_EVENT_DATA: {
        if (e->data_len < 0 || e->topic_len < 0 || (e->current_data_offset == 0 && e->topic == NULL)) {
            count_drop();
            return;
        }
        int topic_len = e->current_data_offset == 0 ? e->topic_len : 0;
        uint32_t size = (uint32_t)topic_len + (uint32_t)e->data_len + 1;
        /* the copies waiting for the agent never exceed CONFIG_ESPADMIN_EVENT_QUEUE_BYTES */
        if (__atomic_add_fetch(&s_queued_bytes, size, __ATOMIC_ACQ_REL) > CONFIG_ESPADMIN_EVENT_QUEUE_BYTES) {
            __atomic_sub_fetch(&s_queued_bytes, size, __ATOMIC_ACQ_REL);
            count_drop();
            return;
        }
        ev.kind = EV_DATA;
        ev.frag = malloc(size);
        if (ev.frag == NULL) {
            __atomic_sub_fetch(&s_queued_bytes, size, __ATOMIC_ACQ_REL);
            count_drop();
            return;
        }
        if (topic_len) {
            memcpy(ev.frag, e->topic, (size_t)topic_len);
        }
        if (e->data_len) {
            memcpy(ev.frag + topic_len, e->data, (size_t)e->data_len);
        }
        ev.topic_len = topic_len;
        ev.total_len = e->total_data_len;
        ev.offset = e->current_data_offset;
        ev.len = e->data_len;
        break;
    }
    default:
        return;
    }
    if (xQueueSend(s_events, &ev, 0) != pdTRUE) {
        if (ev.frag) {
            free(ev.frag);
            __atomic_sub_fetch(&s_queued_bytes, (uint32_t)ev.topic_len + (uint32_t)ev.len + 1, __ATOMIC_ACQ_REL);
        }
        count_drop();
    }
}

static void keep_free(mqtt_keep_t *k)
{
    free(k->host);
    free(k->client_id);
    free(k->username);
    if (k->password) {
        memset(k->password, 0, strlen(k->password));
    }
    free(k->password);
    free(k->will_topic);
    free(k->will_msg);
    free(k->ca_pem);
    memset(k, 0, sizeof(*k));
}

static void p_mqtt_disconnect(void *ctx)
{
    (void)ctx;
    if (s_mqtt) {
        /* stop waits for esp-mqtt's task to end; the handler never waits for us */
        esp_mqtt_client_disconnect(s_mqtt);
        esp_mqtt_client_stop(s_mqtt);
        esp_mqtt_client_destroy(s_mqtt);
        s_mqtt = NULL;
    }
    keep_free(&s_keep); /* only now can nothing read them any more */
    s_seen_up = false;
    s_seen_down = false;
}

static int p_mqtt_connect(void *ctx, const espadmin_mqtt_config_t *c)
{
    p_mqtt_disconnect(ctx);
    mqtt_keep_t *k = &s_keep;
    k->host = dup_or_null(c->host);
    k->client_id = dup_or_null(c->client_id);
    k->username = dup_or_null(c->username);
    k->password = dup_or_null(c->password);
    k->will_topic = dup_or_null(c->will_topic);
    k->will_msg = malloc(c->will_len + 1);
    if (k->will_msg) {
        memcpy(k->will_msg, c->will_payload, c->will_len);
        k->will_msg[c->will_len] = '\0';
    }
    bool use_ca = c->tls && c->ca_pem && c->ca_pem[0];
    if (use_ca) {
        k->ca_pem = dup_or_null(c->ca_pem);
    }
    if (!k->host || !k->client_id || !k->username || !k->password || !k->will_topic || !k->will_msg ||
        (use_ca && !k->ca_pem)) {
        keep_free(k);
        ESP_LOGE(TAG, "out of memory for the MQTT configuration");
        return ESPADMIN_PLATFORM_ERR;
    }
    esp_mqtt_client_config_t cfg = {
        .broker.address.hostname = k->host,
        .broker.address.port = c->port,
        .broker.address.transport = c->tls ? MQTT_TRANSPORT_OVER_SSL : MQTT_TRANSPORT_OVER_TCP,
        .credentials.client_id = k->client_id,
        .credentials.username = k->username,
        .credentials.authentication.password = k->password,
        .session.last_will.topic = k->will_topic,
        .session.last_will.msg = k->will_msg,
        .session.last_will.msg_len = (int)c->will_len,
        .session.last_will.qos = c->will_qos,
        .session.last_will.retain = c->will_retain,
        .session.keepalive = c->keepalive_s,
        .network.disable_auto_reconnect = true, /* the core reconnects with backoff */
        .buffer.size = 4096,
    };
    if (c->tls) {
        if (use_ca) {
            cfg.broker.verification.certificate = k->ca_pem;
        } else {
            cfg.broker.verification.crt_bundle_attach = esp_crt_bundle_attach;
        }
    }
    s_mqtt = esp_mqtt_client_init(&cfg);
    if (s_mqtt == NULL) {
        keep_free(k);
        return ESPADMIN_PLATFORM_ERR;
    }
    uint32_t gen = __atomic_add_fetch(&s_gen, 1, __ATOMIC_ACQ_REL);
    esp_mqtt_client_register_event(s_mqtt, ESP_EVENT_ANY_ID, mqtt_event, (void *)(uintptr_t)gen);
    if (esp_mqtt_client_start(s_mqtt) != ESP_OK) {
        p_mqtt_disconnect(ctx);
        return ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int p_mqtt_subscribe(void *ctx, const char *filter, int qos)
{
    (void)ctx;
    return s_mqtt ? esp_mqtt_client_subscribe_single(s_mqtt, filter, qos) : -1;
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
    s_err[0] = '\0';
    s_ota_part = esp_ota_get_next_update_partition(NULL);
    if (s_ota_part == NULL) {
        ESP_LOGE(TAG, "no OTA partition to write to");
        snprintf(s_err, sizeof(s_err), "no OTA partition to write to");
        return ESPADMIN_PLATFORM_NO_SPACE;
    }
    if ((int64_t)s_ota_part->size < size) {
        ESP_LOGE(TAG, "image of %lu bytes does not fit partition %s", (unsigned long)size, s_ota_part->label);
        snprintf(s_err, sizeof(s_err), "image does not fit partition %s (%lu bytes)", s_ota_part->label,
                 (unsigned long)s_ota_part->size);
        return ESPADMIN_PLATFORM_NO_SPACE;
    }
    esp_err_t err = esp_ota_begin(s_ota_part, OTA_WITH_SEQUENTIAL_WRITES, &s_ota);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_begin: %s", esp_err_to_name(err));
        s_ota = 0;
        if (err == ESP_ERR_OTA_ROLLBACK_INVALID_STATE) {
            snprintf(s_err, sizeof(s_err), "the running image awaits confirmation (%s)", esp_err_to_name(err));
            return ESPADMIN_PLATFORM_PENDING_VERIFY;
        }
        snprintf(s_err, sizeof(s_err), "esp_ota_begin: %s", esp_err_to_name(err));
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
        snprintf(s_err, sizeof(s_err), "esp_ota_write: %s", esp_err_to_name(err));
        return err == ESP_ERR_OTA_VALIDATE_FAILED ? ESPADMIN_PLATFORM_INVALID_IMAGE
               : err == ESP_ERR_INVALID_SIZE      ? ESPADMIN_PLATFORM_NO_SPACE
                                                  : ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int p_ota_finish(void *ctx)
{
    (void)ctx;
    esp_err_t err = esp_ota_end(s_ota); /* validates the image */
    s_ota = 0;
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_end: %s", esp_err_to_name(err));
        snprintf(s_err, sizeof(s_err), "esp_ota_end: %s", esp_err_to_name(err));
        return ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
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
    esp_err_t err = esp_ota_set_boot_partition(s_ota_part);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_ota_set_boot_partition: %s", esp_err_to_name(err));
        return ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int p_ota_mark_valid(void *ctx)
{
    (void)ctx;
    return esp_ota_mark_app_valid_cancel_rollback() == ESP_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static void p_ota_rollback(void *ctx)
{
    (void)ctx;
    esp_err_t err = esp_ota_mark_app_invalid_rollback_and_reboot(); /* returns only on failure */
    ESP_LOGE(TAG, "rollback impossible: %s", esp_err_to_name(err));
}

static void p_running_version(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "%s", esp_app_get_description()->version);
}

/* The bootloader's own record decides: ESP_OTA_IMG_PENDING_VERIFY is the first boot of a new
 * image (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE), whatever version string it carries. */
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

/* ---- HTTP download in its own task ---- */

static void dl_release(dl_t *d)
{
    xSemaphoreTake(d->mu, portMAX_DELAY);
    int left = --d->refs;
    xSemaphoreGive(d->mu);
    if (left == 0) {
        vSemaphoreDelete(d->mu);
        vSemaphoreDelete(d->space);
        free(d->url);
        free(d->ca_pem);
        free(d);
    }
}

static bool dl_cancelled(dl_t *d)
{
    xSemaphoreTake(d->mu, portMAX_DELAY);
    bool c = d->cancel;
    xSemaphoreGive(d->mu);
    return c;
}

static void dl_end(dl_t *d, bool failed)
{
    xSemaphoreTake(d->mu, portMAX_DELAY);
    d->done = true;
    d->failed = failed;
    xSemaphoreGive(d->mu);
}

/* Records why the current attempt failed (the last one is reported when all attempts fail). */
static void dl_why(dl_t *d, const char *fmt, ...)
{
    va_list ap;
    xSemaphoreTake(d->mu, portMAX_DELAY);
    va_start(ap, fmt);
    vsnprintf(d->why, sizeof(d->why), fmt, ap);
    va_end(ap);
    xSemaphoreGive(d->mu);
}

/* Hands n bytes to the agent task, waiting while the buffer is full. */
static bool dl_push(dl_t *d, const uint8_t *p, size_t n)
{
    while (n > 0) {
        xSemaphoreTake(d->mu, portMAX_DELAY);
        if (d->cancel) {
            xSemaphoreGive(d->mu);
            return false;
        }
        size_t room = DL_BUF - d->len;
        size_t k = n < room ? n : room;
        for (size_t i = 0; i < k; i++) {
            d->buf[(d->head + d->len + i) % DL_BUF] = p[i];
        }
        d->len += k;
        xSemaphoreGive(d->mu);
        p += k;
        n -= k;
        if (n > 0) {
            xSemaphoreTake(d->space, pdMS_TO_TICKS(100));
        }
    }
    return true;
}

static bool is_redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* One request from offset: connects, follows redirects, and streams the body. Returns the
 * bytes delivered; *finished is set when the whole body arrived, *fatal when retrying cannot
 * help (a 4xx, a refused certificate is retried like a dropped link). */
static int64_t dl_attempt(dl_t *d, int64_t offset, uint8_t *tmp, bool *finished, bool *fatal)
{
    esp_http_client_config_t cfg = {
        .url = d->url,
        .timeout_ms = 20000,
        .buffer_size_tx = DL_TX_BUFFER,
        .keep_alive_enable = true,
    };
    if (d->ca_pem) {
        cfg.cert_pem = d->ca_pem;
    } else {
        cfg.crt_bundle_attach = esp_crt_bundle_attach;
    }
    esp_http_client_handle_t h = esp_http_client_init(&cfg);
    if (h == NULL) {
        ESP_LOGE(TAG, "download: esp_http_client_init failed");
        dl_why(d, "esp_http_client_init failed");
        *fatal = true;
        return 0;
    }
    char range[40];
    if (offset > 0) {
        snprintf(range, sizeof(range), "bytes=%lu-", (unsigned long)offset);
        esp_http_client_set_header(h, "Range", range);
    }
    int status = 0;
    int64_t got = 0;
    for (int redirects = 0;; redirects++) {
        esp_err_t err = esp_http_client_open(h, 0);
        if (err != ESP_OK) {
            ESP_LOGW(TAG, "download: connect failed: %s", esp_err_to_name(err));
            dl_why(d, "%s: %s", err == ESP_ERR_HTTP_EAGAIN ? "timed out" : "connect or TLS handshake failed",
                   esp_err_to_name(err));
            goto out;
        }
        if (esp_http_client_fetch_headers(h) < 0) {
            ESP_LOGW(TAG, "download: no response headers");
            dl_why(d, "no response headers (timed out or connection closed)");
            goto out;
        }
        status = esp_http_client_get_status_code(h);
        if (!is_redirect(status)) {
            break;
        }
        if (redirects >= DL_MAX_REDIRECTS) {
            ESP_LOGE(TAG, "download: more than %d redirects", DL_MAX_REDIRECTS);
            dl_why(d, "too many redirects (more than %d)", DL_MAX_REDIRECTS);
            *fatal = true;
            goto out;
        }
        int flushed = 0;
        esp_http_client_flush_response(h, &flushed);
        if (esp_http_client_set_redirection(h) != ESP_OK) {
            ESP_LOGE(TAG, "download: redirect %d without a usable Location", status);
            dl_why(d, "HTTP %d redirect without a usable Location", status);
            *fatal = true;
            goto out;
        }
    }
    int64_t skip = 0;
    if (status == 200 && offset > 0) {
        skip = offset; /* the server ignored Range: drop what we already have */
    } else if (!(status == 200 || (status == 206 && offset > 0))) {
        ESP_LOGE(TAG, "download: HTTP status %d", status);
        dl_why(d, "HTTP %d", status);
        *fatal = status >= 400 && status < 500;
        goto out;
    }
    for (;;) {
        if (dl_cancelled(d)) {
            *fatal = true;
            break;
        }
        int n = esp_http_client_read(h, (char *)tmp, DL_READ);
        if (n < 0) {
            ESP_LOGW(TAG, "download: read error after %lu bytes", (unsigned long)(offset + got));
            dl_why(d, "%s after %lu bytes", n == -ESP_ERR_HTTP_EAGAIN ? "timed out" : "read error",
                   (unsigned long)(offset + got));
            break;
        }
        if (n == 0) {
            if (esp_http_client_is_complete_data_received(h)) {
                *finished = true;
            } else {
                ESP_LOGW(TAG, "download: connection closed after %lu bytes", (unsigned long)(offset + got));
                dl_why(d, "connection closed after %lu bytes", (unsigned long)(offset + got));
            }
            break;
        }
        const uint8_t *p = tmp;
        if (skip > 0) {
            int64_t s = skip < n ? skip : n;
            skip -= s;
            p += s;
            n -= (int)s;
        }
        if (n > 0 && !dl_push(d, p, (size_t)n)) {
            *fatal = true;
            break;
        }
        got += n;
    }
out:
    esp_http_client_close(h);
    esp_http_client_cleanup(h);
    return got;
}

static void download_task(void *arg)
{
    dl_t *d = arg;
    uint8_t *tmp = malloc(DL_READ);
    int64_t offset = 0;
    bool finished = false;
    bool fatal = tmp == NULL;
    for (int failures = 0; !finished && !fatal && failures < DL_MAX_ATTEMPTS;) {
        int64_t got = dl_attempt(d, offset, tmp, &finished, &fatal);
        offset += got;
        if (finished || fatal) {
            break;
        }
        failures = got > 0 ? 1 : failures + 1;
        if (failures < DL_MAX_ATTEMPTS) {
            ESP_LOGI(TAG, "download: resuming at byte %lu", (unsigned long)offset);
            vTaskDelay(pdMS_TO_TICKS(500 * failures));
        }
    }
    free(tmp);
    dl_end(d, !finished);
    dl_release(d);
    vTaskDelete(NULL);
}

static void p_http_close(void *ctx)
{
    (void)ctx;
    dl_t *d = s_dl;
    if (d == NULL) {
        return;
    }
    s_dl = NULL;
    xSemaphoreTake(d->mu, portMAX_DELAY);
    d->cancel = true;
    xSemaphoreGive(d->mu);
    xSemaphoreGive(d->space);
    dl_release(d); /* the download task frees it when it ends */
}

/* Copies the string value of a config key (a platform-managed one) into ca. */
static bool config_string(const char *key, char *ca, size_t cap)
{
    espadmin_cfg_type_t type;
    return s_agent && espadmin_config_get(s_agent, key, &type, ca, cap) == ESPADMIN_PLATFORM_OK &&
           type == ESPADMIN_CFG_STRING && ca[0];
}

static bool nvs_string(const char *key, char *buf, size_t cap)
{
    size_t n = cap - 1;
    if (p_kv_get(NULL, ESPADMIN_NVS_NAMESPACE, key, buf, &n) == ESPADMIN_PLATFORM_OK && n > 0) {
        buf[n] = '\0';
        return true;
    }
    return false;
}

/* The CA for a download: config "_ota_ca", else provisioning "ota_ca"; for a URL on the
 * provisioned server_url, the broker's CA (config "_mqtt_ca", else provisioning "mqtt_ca"),
 * since a self-hosted server usually has one private CA for both; else NULL (the certificate
 * bundle). */
static char *download_ca(const char *url)
{
    size_t cap = ESPADMIN_MAX_CONFIG_VALUE_LEN + 1;
    char *ca = malloc(cap);
    if (ca == NULL) {
        return NULL;
    }
    if (config_string("_ota_ca", ca, cap) || nvs_string("ota_ca", ca, cap)) {
        return ca;
    }
    char server[258];
    size_t n = strlen(url);
    if (nvs_string("server_url", server, sizeof(server)) && strncmp(server, "https://", 8) == 0) {
        size_t k = strlen(server);
        while (k > 8 && server[k - 1] == '/') {
            k--;
        }
        bool same = n >= k && strncmp(url, server, k) == 0 && (url[k] == '/' || url[k] == '\0' || url[k] == '?');
        if (same && (config_string("_mqtt_ca", ca, cap) || nvs_string("mqtt_ca", ca, cap))) {
            return ca;
        }
    }
    free(ca);
    return NULL;
}

static int p_http_open(void *ctx, const char *url)
{
    p_http_close(ctx);
    s_err[0] = '\0';
    dl_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    d->refs = 2;
    d->url = dup_or_null(url);
    d->ca_pem = download_ca(url);
    d->mu = xSemaphoreCreateMutex();
    d->space = xSemaphoreCreateBinary();
    if (d->url == NULL || d->mu == NULL || d->space == NULL ||
        xTaskCreate(download_task, "espadmin_dl", CONFIG_ESPADMIN_DOWNLOAD_TASK_STACK, d,
                    CONFIG_ESPADMIN_TASK_PRIORITY, NULL) != pdPASS) {
        ESP_LOGE(TAG, "download: cannot start the download task");
        snprintf(s_err, sizeof(s_err), "cannot start the download task");
        if (d->mu) vSemaphoreDelete(d->mu);
        if (d->space) vSemaphoreDelete(d->space);
        free(d->url);
        free(d->ca_pem);
        free(d);
        return ESPADMIN_PLATFORM_ERR;
    }
    s_dl = d;
    return ESPADMIN_PLATFORM_OK;
}

static void p_last_error(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "%s", s_err);
    s_err[0] = '\0';
}

/* Never blocks: data, 0 at the end, AGAIN while the download task is connecting or waiting. */
static int p_http_read(void *ctx, void *buf, size_t cap)
{
    (void)ctx;
    dl_t *d = s_dl;
    if (d == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    xSemaphoreTake(d->mu, portMAX_DELAY);
    int rc;
    if (d->len > 0) {
        size_t k = cap < d->len ? cap : d->len;
        for (size_t i = 0; i < k; i++) {
            ((uint8_t *)buf)[i] = d->buf[(d->head + i) % DL_BUF];
        }
        d->head = (d->head + k) % DL_BUF;
        d->len -= k;
        rc = (int)k;
    } else if (d->done) {
        rc = d->failed ? ESPADMIN_PLATFORM_ERR : 0;
        if (d->failed) {
            snprintf(s_err, sizeof(s_err), "%s", d->why[0] ? d->why : "download failed");
        }
    } else {
        rc = ESPADMIN_PLATFORM_AGAIN;
    }
    xSemaphoreGive(d->mu);
    if (rc > 0) {
        xSemaphoreGive(d->space);
    }
    return rc;
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

/* ---- crash reports: the core dump summary in flash (espcoredump) ---- */

#if CONFIG_ESP_COREDUMP_ENABLE_TO_FLASH && CONFIG_ESP_COREDUMP_DATA_FORMAT_ELF
#define ESPADMIN_HAS_CORE_DUMP 1

#if CONFIG_IDF_TARGET_ARCH_XTENSA
/* EXCCAUSE values (Xtensa ISA, and ESP-IDF's panic_arch.c names). */
static const char *exc_cause_name(uint32_t c)
{
    static const char *const names[] = {
        [0] = "IllegalInstruction", [2] = "InstructionFetchError", [3] = "LoadStoreError",
        [6] = "IntegerDivideByZero", [9] = "LoadStoreAlignment", [20] = "InstFetchProhibited",
        [28] = "LoadProhibited", [29] = "StoreProhibited",
    };
    return c < sizeof(names) / sizeof(names[0]) && names[c] ? names[c] : "Exception";
}
#else
/* mcause values (RISC-V privileged spec, and ESP-IDF's panic_arch.c names). */
static const char *mcause_name(uint32_t c)
{
    static const char *const names[] = {
        [0] = "Instruction address misaligned", [1] = "Instruction access fault", [2] = "Illegal instruction",
        [3] = "Breakpoint", [4] = "Load address misaligned", [5] = "Load access fault",
        [6] = "Store address misaligned", [7] = "Store access fault",
    };
    return c < sizeof(names) / sizeof(names[0]) && names[c] ? names[c] : "Exception";
}
#endif

/* What the panic handler wrote to the coredump partition: esp_core_dump_get_summary gives the
 * task, the backtrace (Xtensa: up to 16 PCs walked on the device; RISC-V: MEPC and RA, the
 * rest is a raw stack dump) and the exception registers; esp_core_dump_get_panic_reason
 * (v5.3 and later) the panic handler's reason line. The summary is large on RISC-V (it holds
 * the stack dump), so it lives on the heap for this call only. */
static bool p_crash_info(void *ctx, espadmin_crash_t *out)
{
    (void)ctx;
    if (esp_core_dump_image_check() != ESP_OK) {
        return false;
    }
    esp_core_dump_summary_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return false;
    }
    if (esp_core_dump_get_summary(s) != ESP_OK) {
        free(s);
        return false;
    }
    snprintf(out->task, sizeof(out->task), "%.*s", (int)sizeof(s->exc_task), s->exc_task);
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 3, 0)
    if (esp_core_dump_get_panic_reason(out->reason, sizeof(out->reason)) != ESP_OK) {
        out->reason[0] = '\0';
    }
#endif
#if CONFIG_IDF_TARGET_ARCH_XTENSA
    if (out->reason[0] == '\0') {
        snprintf(out->reason, sizeof(out->reason), "%s", exc_cause_name(s->ex_info.exc_cause));
    }
    uint32_t depth = s->exc_bt_info.depth < 16 ? s->exc_bt_info.depth : 16;
    for (uint32_t i = 0; i < depth && i < ESPADMIN_MAX_CRASH_FRAMES; i++) {
        out->frames[i].pc = s->exc_bt_info.bt[i];
    }
    out->nframes = depth;
    out->frames[0].sp = s->ex_info.exc_a[1]; /* a1 is the stack pointer */
    out->corrupted = s->exc_bt_info.corrupted;
    snprintf(out->summary, sizeof(out->summary), "task %s, PC 0x%08" PRIx32 ", EXCCAUSE %" PRIu32 ", EXCVADDR 0x%08" PRIx32 "%s",
             out->task, s->exc_pc, s->ex_info.exc_cause, s->ex_info.exc_vaddr,
             s->exc_bt_info.corrupted ? ", backtrace corrupted" : "");
#else
    if (out->reason[0] == '\0') {
        snprintf(out->reason, sizeof(out->reason), "%s", mcause_name(s->ex_info.mcause));
    }
    out->frames[0] = (espadmin_frame_t){.pc = s->exc_pc, .sp = s->ex_info.sp};
    out->frames[1] = (espadmin_frame_t){.pc = s->ex_info.ra, .sp = 0};
    out->nframes = 2;
    snprintf(out->summary, sizeof(out->summary),
             "task %s, MEPC 0x%08" PRIx32 ", RA 0x%08" PRIx32 ", SP 0x%08" PRIx32 ", MCAUSE 0x%08" PRIx32 ", MTVAL 0x%08" PRIx32,
             out->task, s->exc_pc, s->ex_info.ra, s->ex_info.sp, s->ex_info.mcause, s->ex_info.mtval);
#endif
    free(s);
    size_t addr, dump_size;
    if (esp_core_dump_image_get(&addr, &dump_size) == ESP_OK) {
        out->size = (int64_t)dump_size; /* the whole core dump, for the server to ask for */
    }
    return true;
}

/* The whole core dump, uploaded from its own task (as downloads are): the agent task only
 * polls the outcome. The task reads the coredump partition in 1 KiB pieces and PUTs them with
 * esp_http_client, verifying the server as for a download from that URL. */
#define UP_CHUNK 1024
typedef struct {
    char *url;
    char *ca_pem;
    int state; /* atomic: 0 running, 1 stored (2xx), -1 failed */
    char why[80];
} up_t;
static up_t *s_up; /* agent task only */

static void upload_task(void *arg)
{
    up_t *u = arg;
    int result = -1;
    uint8_t *buf = malloc(UP_CHUNK);
    size_t addr = 0, size = 0, off = 0;
    const esp_partition_t *part = esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_DATA_COREDUMP, NULL);
    esp_http_client_handle_t c = NULL;
    esp_err_t err;
    if (buf == NULL || part == NULL || esp_core_dump_image_get(&addr, &size) != ESP_OK || size == 0 || size > part->size) {
        snprintf(u->why, sizeof(u->why), buf == NULL ? "out of memory" : "no core dump");
        goto out;
    }
    esp_http_client_config_t cfg = {
        .url = u->url,
        .method = HTTP_METHOD_PUT,
        .timeout_ms = 20000,
        .buffer_size_tx = DL_TX_BUFFER,
    };
    if (u->ca_pem) {
        cfg.cert_pem = u->ca_pem;
    } else {
        cfg.crt_bundle_attach = esp_crt_bundle_attach;
    }
    c = esp_http_client_init(&cfg);
    if (c == NULL) {
        snprintf(u->why, sizeof(u->why), "out of memory");
        goto out;
    }
    esp_http_client_set_header(c, "Content-Type", "application/octet-stream");
    if ((err = esp_http_client_open(c, (int)size)) != ESP_OK) {
        snprintf(u->why, sizeof(u->why), "connect or TLS handshake failed: %s", esp_err_to_name(err));
        goto out;
    }
    while (off < size) {
        size_t n = size - off < UP_CHUNK ? size - off : UP_CHUNK;
        if ((err = esp_partition_read(part, off, buf, n)) != ESP_OK) {
            snprintf(u->why, sizeof(u->why), "flash read: %s", esp_err_to_name(err));
            goto out;
        }
        int w = esp_http_client_write(c, (const char *)buf, (int)n);
        if (w <= 0) {
            snprintf(u->why, sizeof(u->why), "connection lost after %lu bytes", (unsigned long)off);
            goto out;
        }
        off += (size_t)w;
    }
    if (esp_http_client_fetch_headers(c) < 0) {
        snprintf(u->why, sizeof(u->why), "no answer after the upload");
        goto out;
    }
    int status = esp_http_client_get_status_code(c);
    if (status < 200 || status > 299) {
        snprintf(u->why, sizeof(u->why), "HTTP %d", status);
        goto out;
    }
    result = 1;
out:
    if (c) {
        esp_http_client_close(c);
        esp_http_client_cleanup(c);
    }
    free(buf);
    if (result > 0) {
        ESP_LOGI(TAG, "core dump uploaded (%lu bytes)", (unsigned long)size);
    } else {
        ESP_LOGW(TAG, "core dump upload failed: %s", u->why);
    }
    __atomic_store_n(&u->state, result, __ATOMIC_RELEASE); /* u belongs to the agent task now */
    vTaskDelete(NULL);
}

static int p_coredump_upload(void *ctx, const char *url)
{
    (void)ctx;
    size_t addr, size;
    if (s_up != NULL) {
        snprintf(s_err, sizeof(s_err), "busy");
        return ESPADMIN_PLATFORM_ERR;
    }
    if (esp_core_dump_image_check() != ESP_OK || esp_core_dump_image_get(&addr, &size) != ESP_OK) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    up_t *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->url = dup_or_null(url)) == NULL) {
        free(u);
        snprintf(s_err, sizeof(s_err), "out of memory");
        return ESPADMIN_PLATFORM_ERR;
    }
    u->ca_pem = download_ca(url); /* the same trust as a download from that URL */
    if (xTaskCreate(upload_task, "espadmin_cd", CONFIG_ESPADMIN_DOWNLOAD_TASK_STACK, u, CONFIG_ESPADMIN_TASK_PRIORITY,
                    NULL) != pdPASS) {
        free(u->url);
        free(u->ca_pem);
        free(u);
        snprintf(s_err, sizeof(s_err), "cannot start the upload task");
        return ESPADMIN_PLATFORM_ERR;
    }
    ESP_LOGI(TAG, "uploading the core dump (%lu bytes)", (unsigned long)size);
    s_up = u;
    return ESPADMIN_PLATFORM_OK;
}

static int p_coredump_poll(void *ctx)
{
    (void)ctx;
    up_t *u = s_up;
    if (u == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    int st = __atomic_load_n(&u->state, __ATOMIC_ACQUIRE);
    if (st == 0) {
        return ESPADMIN_PLATFORM_AGAIN;
    }
    snprintf(s_err, sizeof(s_err), "%s", u->why);
    s_up = NULL;
    free(u->url);
    free(u->ca_pem);
    free(u);
    return st > 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

/* The report is acknowledged: the partition is free for the next crash. */
static void p_crash_clear(void *ctx)
{
    (void)ctx;
    esp_err_t rc = esp_core_dump_image_erase();
    if (rc != ESP_OK) {
        ESP_LOGW(TAG, "cannot erase the core dump: %s", esp_err_to_name(rc));
    }
}
#endif

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
    if (s_quiet) {
        return;
    }
    esp_log_level_t l = map[level <= ESPADMIN_LEVEL_VERBOSE ? level : 2];
    ESP_LOG_LEVEL_LOCAL(l, tag, "%s", msg);
}

/* Parses one complete line, "I (1234) tag: message" or "I tag: message", possibly wrapped in
 * colour codes, and hands it to the core. Called with s_log_lock held. */
static void capture_line(espadmin_agent_t *a, char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        len--;
    }
    line[len] = '\0';
    char *reset = strstr(line, "\x1b[0m");
    if (reset) {
        *reset = '\0';
    }
    const char *p = line;
    if (p[0] == '\x1b') {
        const char *m = strchr(p, 'm');
        p = m ? m + 1 : p;
    }
    espadmin_level_t lvl;
    switch (p[0]) {
    case 'E': lvl = ESPADMIN_LEVEL_ERROR; break;
    case 'W': lvl = ESPADMIN_LEVEL_WARN; break;
    case 'I': lvl = ESPADMIN_LEVEL_INFO; break;
    case 'D': lvl = ESPADMIN_LEVEL_DEBUG; break;
    case 'V': lvl = ESPADMIN_LEVEL_VERBOSE; break;
    default:
        if (p[0]) {
            espadmin_log_capture(a, ESPADMIN_LEVEL_INFO, NULL, p, strlen(p)); /* a plain printf */
        }
        return;
    }
    const char *q = p + 1;
    if (*q == ' ') {
        q++;
    }
    if (*q == '(') {
        const char *close = strstr(q, ") ");
        q = close ? close + 2 : q;
    }
    char tag[33] = "";
    const char *msg = q;
    const char *colon = strstr(q, ": ");
    if (colon && colon - q < (ptrdiff_t)sizeof(tag) && memchr(q, ' ', (size_t)(colon - q)) == NULL) {
        memcpy(tag, q, (size_t)(colon - q));
        tag[colon - q] = '\0';
        msg = colon + 2;
    }
    espadmin_log_capture(a, lvl, tag[0] ? tag : NULL, msg, strlen(msg));
}

/* Collects the pieces of one line per task (CONFIG_LOG_VERSION_2 prints the prefix, the
 * message and the newline in separate vprintf calls) and captures each complete line. */
static void feed_log(espadmin_agent_t *a, const char *piece, size_t n)
{
    if (xSemaphoreTakeRecursive(s_log_lock, pdMS_TO_TICKS(20)) != pdTRUE) {
        return;
    }
    TaskHandle_t me = xTaskGetCurrentTaskHandle();
    log_slot_t *slot = NULL;
    for (int i = 0; i < LOG_SLOTS && slot == NULL; i++) {
        if (s_log_slots[i].owner == me) {
            slot = &s_log_slots[i];
        }
    }
    for (int i = 0; i < LOG_SLOTS && slot == NULL; i++) {
        if (s_log_slots[i].owner == NULL) {
            slot = &s_log_slots[i];
            slot->owner = me;
            slot->len = 0;
        }
    }
    if (slot != NULL) {
        while (n > 0) {
            const char *nl = memchr(piece, '\n', n);
            size_t k = nl ? (size_t)(nl - piece) + 1 : n;
            size_t room = sizeof(slot->text) - 1 - slot->len;
            size_t c = k < room ? k : room; /* an over-long line is cut */
            memcpy(slot->text + slot->len, piece, c);
            slot->len += c;
            piece += k;
            n -= k;
            if (nl) {
                capture_line(a, slot->text, slot->len);
                slot->len = 0;
            }
        }
        if (slot->len == 0) {
            slot->owner = NULL;
        }
    }
    xSemaphoreGiveRecursive(s_log_lock);
}

/* The vprintf hook: always passes the text on to the previous hook, and feeds it to the agent
 * unless this task is already inside the hook. */
static int log_hook(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    vprintf_like_t prev = __atomic_load_n(&s_prev_vprintf, __ATOMIC_ACQUIRE);
    int r = prev ? prev(fmt, ap) : vprintf(fmt, ap);
    espadmin_agent_t *a = agent_atomic();
    if (!s_in_hook && a != NULL) {
        s_in_hook = true;
        char piece[LOG_LINE];
        int n = vsnprintf(piece, sizeof(piece), fmt, copy);
        if (n > 0) {
            feed_log(a, piece, (size_t)n < sizeof(piece) ? (size_t)n : sizeof(piece) - 1);
        }
        s_in_hook = false;
    }
    va_end(copy);
    return r;
}

static void p_log_lock(void *ctx, bool take)
{
    (void)ctx;
    if (take) {
        xSemaphoreTakeRecursive(s_log_lock, portMAX_DELAY);
    } else {
        xSemaphoreGiveRecursive(s_log_lock);
    }
}

/* ---- crypto ---- */

#if ESPADMIN_PSA

static void *p_sha_begin(void *ctx)
{
    (void)ctx;
    psa_hash_operation_t *op = malloc(sizeof(*op));
    if (op) {
        *op = psa_hash_operation_init();
        if (psa_hash_setup(op, PSA_ALG_SHA_256) != PSA_SUCCESS) {
            free(op);
            op = NULL;
        }
    }
    return op;
}

static void p_sha_update(void *ctx, void *h, const void *data, size_t len)
{
    (void)ctx;
    psa_hash_update(h, data, len);
}

static void p_sha_finish(void *ctx, void *h, uint8_t out[32])
{
    (void)ctx;
    uint8_t tmp[32];
    size_t n = 0;
    if (psa_hash_finish(h, tmp, sizeof(tmp), &n) != PSA_SUCCESS) {
        memset(tmp, 0, sizeof(tmp));
    }
    if (out) {
        memcpy(out, tmp, 32);
    }
    psa_hash_abort(h);
    free(h);
}

static bool p_gcm_decrypt(void *ctx, const uint8_t key[32], const uint8_t nonce[12], const void *aad, size_t aad_len,
                          const void *ct, size_t ct_len, const uint8_t tag[16], void *out)
{
    (void)ctx;
    psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
    psa_set_key_type(&attr, PSA_KEY_TYPE_AES);
    psa_set_key_bits(&attr, 256);
    psa_set_key_usage_flags(&attr, PSA_KEY_USAGE_DECRYPT);
    psa_set_key_algorithm(&attr, PSA_ALG_GCM);
    psa_key_id_t id = 0;
    if (psa_import_key(&attr, key, 32, &id) != PSA_SUCCESS) {
        return false;
    }
    psa_aead_operation_t op = psa_aead_operation_init();
    size_t n = 0, m = 0;
    bool ok = psa_aead_decrypt_setup(&op, id, PSA_ALG_GCM) == PSA_SUCCESS &&
              psa_aead_set_nonce(&op, nonce, 12) == PSA_SUCCESS &&
              psa_aead_update_ad(&op, aad, aad_len) == PSA_SUCCESS &&
              psa_aead_update(&op, ct, ct_len, out, ct_len, &n) == PSA_SUCCESS &&
              psa_aead_verify(&op, (uint8_t *)out + n, ct_len - n, &m, tag, 16) == PSA_SUCCESS;
    psa_aead_abort(&op);
    psa_destroy_key(id);
    return ok;
}

#else

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

#endif

static bool p_ed25519_verify(void *ctx, const uint8_t pub[32], const void *msg, size_t len, const uint8_t sig[64])
{
    (void)ctx;
    return crypto_sign_ed25519_verify_detached(sig, msg, len, pub) == 0;
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
    .last_error = p_last_error,
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
#ifdef ESPADMIN_HAS_CORE_DUMP
    .crash_info = p_crash_info,
    .crash_clear = p_crash_clear,
    .coredump_upload = p_coredump_upload,
    .coredump_poll = p_coredump_poll,
#endif
};

static void handle_event(espadmin_agent_t *a, ev_t *ev)
{
    switch (ev->kind) {
    case EV_CALL:
        if (a) {
            ev->call->fn(a, ev->call->arg);
            ev->call->result = ESP_OK;
        } else {
            ev->call->result = ESP_ERR_INVALID_STATE; /* not provisioned yet */
        }
        xSemaphoreGive(ev->call->done);
        return;
    case EV_PUBLISHED:
        if (a && ev->gen == __atomic_load_n(&s_gen, __ATOMIC_ACQUIRE)) {
            espadmin_on_published(a, ev->msg_id);
        }
        return;
    case EV_DATA:
        if (a && ev->gen == __atomic_load_n(&s_gen, __ATOMIC_ACQUIRE)) {
            /* the core reassembles; a refused fragment is counted in the core */
            espadmin_on_message_fragment(a, ev->topic_len ? ev->frag : NULL, (size_t)ev->topic_len,
                                         (size_t)ev->total_len, (size_t)ev->offset,
                                         ev->frag + ev->topic_len, (size_t)ev->len);
        }
        free(ev->frag);
        __atomic_sub_fetch(&s_queued_bytes, (uint32_t)ev->topic_len + (uint32_t)ev->len + 1, __ATOMIC_ACQ_REL);
        return;
    }
}

/* Connection changes come through atomics (never dropped), in order: up, then down. */
static void follow_link(espadmin_agent_t *a)
{
    uint32_t gen = __atomic_load_n(&s_gen, __ATOMIC_ACQUIRE);
    if (s_mqtt == NULL) {
        return;
    }
    if (!s_seen_up && __atomic_load_n(&s_link_up_gen, __ATOMIC_ACQUIRE) == gen) {
        s_seen_up = true;
        espadmin_on_connected(a);
    }
    if (!s_seen_down && __atomic_load_n(&s_link_down_gen, __ATOMIC_ACQUIRE) == gen) {
        s_seen_down = true;
        espadmin_on_disconnected(a);
    }
}

static void drain(espadmin_agent_t *a, TickType_t wait)
{
    ev_t ev;
    while (xQueueReceive(s_events, &ev, wait) == pdTRUE) {
        handle_event(a, &ev);
        wait = 0;
    }
}

static void agent_task(void *arg)
{
    (void)arg;
    espadmin_options_t opt = {
        .ota_verify_timeout_ms = CONFIG_ESPADMIN_OTA_VERIFY_TIMEOUT_S * 1000u,
        .log_ring_bytes = CONFIG_ESPADMIN_LOG_RING_BYTES,
        .inbox_slots = CONFIG_ESPADMIN_INBOX_SLOTS,
    };
    espadmin_agent_t *a = NULL;
    bool told = false;
    for (;;) {
        a = espadmin_agent_init(&s_platform, &opt);
        s_quiet = false;
        if (a != NULL) {
            break;
        }
        if (!told) {
            ESP_LOGW(TAG, "not provisioned (NVS namespace \"%s\", see docs/provisioning.md): "
                          "waiting, checking again every %d s", ESPADMIN_NVS_NAMESPACE,
                     CONFIG_ESPADMIN_PROVISION_RETRY_S);
            told = true;
        }
        s_quiet = true; /* the core says why once; not again at every check */
        int64_t until = p_now(NULL) + CONFIG_ESPADMIN_PROVISION_RETRY_S * 1000LL;
        while (p_now(NULL) < until) {
            drain(NULL, pdMS_TO_TICKS(100));
        }
    }
    if (told) {
        ESP_LOGI(TAG, "provisioning found: starting");
    }
    __atomic_store_n(&s_agent, a, __ATOMIC_RELEASE);
    /* until the store below, the hook falls back to vprintf (ESP-IDF's default) */
    __atomic_store_n(&s_prev_vprintf, esp_log_set_vprintf(log_hook), __ATOMIC_RELEASE);
    for (;;) {
        drain(a, pdMS_TO_TICKS(CONFIG_ESPADMIN_TICK_MS));
        follow_link(a);
        uint32_t dropped = __atomic_load_n(&s_dropped, __ATOMIC_RELAXED);
        if (dropped != s_dropped_reported) {
            ESP_LOGW(TAG, "%" PRIu32 " MQTT events dropped (queue of %d full)", dropped - s_dropped_reported,
                     CONFIG_ESPADMIN_EVENT_QUEUE_LEN);
            s_dropped_reported = dropped;
        }
        espadmin_tick(a, p_now(NULL));
    }
}

esp_err_t espadmin_esp_start(void)
{
    if (s_events != NULL) {
        return ESP_ERR_INVALID_STATE;
    }
    if (sodium_init() < 0) {
        return ESP_FAIL;
    }
#if ESPADMIN_PSA
    if (psa_crypto_init() != PSA_SUCCESS) {
        return ESP_FAIL;
    }
#endif
    s_log_lock = xSemaphoreCreateRecursiveMutex();
    s_events = xQueueCreate(CONFIG_ESPADMIN_EVENT_QUEUE_LEN, sizeof(ev_t));
    if (s_log_lock == NULL || s_events == NULL) {
        return ESP_ERR_NO_MEM;
    }
    /* An unprovisioned board does not fail here: the agent task waits for the provisioning
     * and says so in the log, instead of a reboot loop. */
    return xTaskCreate(agent_task, "espadmin", CONFIG_ESPADMIN_TASK_STACK, NULL, CONFIG_ESPADMIN_TASK_PRIORITY,
                       &s_agent_task) == pdPASS ? ESP_OK : ESP_ERR_NO_MEM;
}

esp_err_t espadmin_esp_with_agent(void (*fn)(espadmin_agent_t *agent, void *arg), void *arg)
{
    if (s_events == NULL) {
        return ESP_ERR_INVALID_STATE;
    }
    if (xTaskGetCurrentTaskHandle() == s_agent_task) {
        espadmin_agent_t *a = agent_atomic();
        if (a == NULL) {
            return ESP_ERR_INVALID_STATE;
        }
        fn(a, arg);
        return ESP_OK;
    }
    call_t call = {.fn = fn, .arg = arg, .done = xSemaphoreCreateBinary(), .result = ESP_FAIL};
    if (call.done == NULL) {
        return ESP_ERR_NO_MEM;
    }
    ev_t ev = {.kind = EV_CALL, .call = &call};
    xQueueSend(s_events, &ev, portMAX_DELAY); /* an application task may wait; the handler never does */
    xSemaphoreTake(call.done, portMAX_DELAY);
    vSemaphoreDelete(call.done);
    return call.result;
}

uint32_t espadmin_esp_dropped_events(void) { return __atomic_load_n(&s_dropped, __ATOMIC_RELAXED); }
