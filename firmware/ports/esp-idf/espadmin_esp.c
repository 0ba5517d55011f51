/* ESP-IDF (v5.1 to v6.0) platform for the ESP Admin agent: esp-mqtt, NVS, esp_ota_* with app
 * rollback, esp_http_client, esp_log_set_vprintf (chained, re-entry guarded), esp_restart,
 * Mbed TLS (legacy API up to Mbed TLS 3, PSA Crypto from Mbed TLS 4 / ESP-IDF v6.0) and
 * libsodium (Ed25519); the crypto and the other SDK-independent parts in ports/esp-common.
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
 * after the SDK object is destroyed.
 *
 * What ESP8266_RTOS_SDK v3.4 shares with this port (NVS, the esp-mqtt handler and its event
 * queue, the download task, log lines, the agent task) is in ports/esp-common; this file holds
 * what is ESP-IDF's own: the nested esp-mqtt configuration, OTA with the bootloader's app
 * rollback, the address, crash reports and the vprintf log hook. */
#include "espadmin_esp.h"
#include "espadmin_common.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "esp_app_desc.h"
#include "esp_core_dump.h"
#include "esp_crt_bundle.h"
#include "esp_http_client.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "mqtt_client.h"
#include "nvs.h"
#include "nvs_flash.h"


static const char *TAG = "espadmin";

/* Logs: the previous vprintf hook, and the per-task re-entry guard. */
static vprintf_like_t s_prev_vprintf;
static __thread bool s_in_hook;

/* ---- MQTT (esp-mqtt, ESP-IDF v5's nested configuration) ---- */

static int p_mqtt_connect(void *ctx, const espadmin_mqtt_config_t *c)
{
    (void)ctx;
    const espc_mqtt_keep_t *k = espc_mqtt_keep(c);
    if (k == NULL) {
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
        if (k->ca_pem) {
            cfg.broker.verification.certificate = k->ca_pem;
        } else {
            cfg.broker.verification.crt_bundle_attach = esp_crt_bundle_attach;
        }
    }
    return espc_mqtt_start(esp_mqtt_client_init(&cfg));
}

static int p_mqtt_subscribe(void *ctx, const char *filter, int qos)
{
    (void)ctx;
    esp_mqtt_client_handle_t m = espc_mqtt_client();
    return m ? esp_mqtt_client_subscribe_single(m, filter, qos) : -1;
}

static int p_mqtt_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
    (void)ctx;
    esp_mqtt_client_handle_t m = espc_mqtt_client();
    if (m == NULL) {
        return -1;
    }
    int id = esp_mqtt_client_enqueue(m, topic, payload, (int)len, qos, retain, true);
    return id < 0 ? -1 : (qos ? id : 0);
}

/* ---- OTA: esp_ota_* with app rollback (CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE) ---- */

static int p_ota_begin(void *ctx, int64_t size)
{
    (void)ctx;
    int rc = espc_ota_pick(size);
    if (rc != ESPADMIN_PLATFORM_OK) {
        return rc;
    }
    esp_err_t err = esp_ota_begin(espc_ota_part, OTA_WITH_SEQUENTIAL_WRITES, &espc_ota);
    if (err == ESP_ERR_OTA_ROLLBACK_INVALID_STATE) {
        ESP_LOGE(TAG, "esp_ota_begin: %s", esp_err_to_name(err));
        espc_ota = 0;
        snprintf(espc_err, sizeof(espc_err), "the running image awaits confirmation (%s)", esp_err_to_name(err));
        return ESPADMIN_PLATFORM_PENDING_VERIFY;
    }
    return err == ESP_OK ? ESPADMIN_PLATFORM_OK : espc_ota_begin_failed(err);
}

static void p_ota_abort(void *ctx)
{
    (void)ctx;
    if (espc_ota) {
        esp_ota_abort(espc_ota);
        espc_ota = 0;
    }
}

static int p_ota_set_boot(void *ctx, const char *version)
{
    (void)ctx;
    (void)version; /* the image carries its own esp_app_desc_t version */
    esp_err_t err = esp_ota_set_boot_partition(espc_ota_part);
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
        .buffer_size_tx = ESPC_HTTP_TX_BUFFER,
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
        snprintf(espc_err, sizeof(espc_err), "busy");
        return ESPADMIN_PLATFORM_ERR;
    }
    if (esp_core_dump_image_check() != ESP_OK || esp_core_dump_image_get(&addr, &size) != ESP_OK) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    up_t *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->url = espc_strdup(url)) == NULL) {
        free(u);
        snprintf(espc_err, sizeof(espc_err), "out of memory");
        return ESPADMIN_PLATFORM_ERR;
    }
    u->ca_pem = espc_download_ca(url); /* the same trust as a download from that URL */
    if (xTaskCreate(upload_task, "espadmin_cd", CONFIG_ESPADMIN_DOWNLOAD_TASK_STACK, u, CONFIG_ESPADMIN_TASK_PRIORITY,
                    NULL) != pdPASS) {
        free(u->url);
        free(u->ca_pem);
        free(u);
        snprintf(espc_err, sizeof(espc_err), "cannot start the upload task");
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
    snprintf(espc_err, sizeof(espc_err), "%s", u->why);
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
    espc_system_info(si);
    snprintf(si->project, sizeof(si->project), "%s", esp_app_get_description()->project_name);
    esp_netif_ip_info_t ip;
    esp_netif_t *netif = esp_netif_get_handle_from_ifkey("WIFI_STA_DEF");
    if (netif && esp_netif_get_ip_info(netif, &ip) == ESP_OK) {
        snprintf(si->ip, sizeof(si->ip), IPSTR, IP2STR(&ip.ip));
    }
}

/* The vprintf hook: always passes the text on to the previous hook, and feeds it to the agent
 * unless this task is already inside the hook. */
static int log_hook(const char *fmt, va_list ap)
{
    va_list copy;
    va_copy(copy, ap);
    vprintf_like_t prev = __atomic_load_n(&s_prev_vprintf, __ATOMIC_ACQUIRE);
    int r = prev ? prev(fmt, ap) : vprintf(fmt, ap);
    if (!s_in_hook && espc_agent() != NULL) {
        s_in_hook = true;
        char piece[256]; /* a longer piece is cut, as a longer line is */
        int n = vsnprintf(piece, sizeof(piece), fmt, copy);
        if (n > 0) {
            espc_feed_log(piece, (size_t)n < sizeof(piece) ? (size_t)n : sizeof(piece) - 1);
        }
        s_in_hook = false;
    }
    va_end(copy);
    return r;
}

void espc_port_install_log_hook(void)
{
    /* until the store, the hook falls back to vprintf (ESP-IDF's default) */
    __atomic_store_n(&s_prev_vprintf, esp_log_set_vprintf(log_hook), __ATOMIC_RELEASE);
}

static espadmin_platform_t s_platform;


esp_err_t espadmin_esp_nvs_init(void) { return espc_nvs_flash_init(); }

esp_err_t espadmin_esp_start(void)
{
    esp_err_t err = espc_crypto_init();
    if (err != ESP_OK) {
        return err;
    }
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
#ifdef ESPADMIN_HAS_CORE_DUMP
    s_platform.crash_info = p_crash_info;
    s_platform.crash_clear = p_crash_clear;
    s_platform.coredump_upload = p_coredump_upload;
    s_platform.coredump_poll = p_coredump_poll;
#endif
    return espc_start(&s_platform);
}
