/* The agent core: connection management, boot publications, command dispatch, config apply,
 * the OTA state machine, debug log streaming and error reports. No platform call except
 * through espadmin_platform_t.
 *
 * Memory: the agent keeps only its own state and one publish buffer at all times (about
 * 20 KB on a 32-bit target, plus the provisioned CA). Everything large is allocated while it
 * is needed and freed afterwards: a received message (its exact size, in the inbox until the
 * tick handles it), a fragmented message's reassembly buffer (while in flight), the decoded
 * command (during its dispatch), the log ring (while debug is on) and the download chunk
 * (while an update downloads). All of it goes through espadmin_malloc (util.h). */
#include "espadmin/agent.h"
#include "crash.h"

#include "espadmin/json.h"
#include "espadmin/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The core formats no int64_t with printf (newlib-nano has no 64-bit formats): I64(v) is its
 * decimal text, for a "%s", valid until the end of the enclosing full expression. */
typedef struct {
    char s[ESPADMIN_I64_TEXT_MAX];
} i64_text_t;
static i64_text_t i64_text(int64_t v)
{
    i64_text_t t;
    espadmin_fmt_i64(t.s, v);
    return t;
}
#define I64(v) (i64_text(v).s)

#define TAG "espadmin"
#define STRING_OF_(x) #x
#define STRING_OF(x) STRING_OF_(x)
#define NS ESPADMIN_NVS_NAMESPACE
/* sizes of the profile (include/espadmin/profile.h) */
#define RECENT_IDS ESPADMIN_RECENT_IDS
#define MAX_PENDING_ERRORS ESPADMIN_PENDING_ERRORS
#define CHUNK ESPADMIN_DOWNLOAD_CHUNK
#define PUB_BUF ESPADMIN_PUB_BUF
#define LOG_BATCH_BYTES ESPADMIN_LOG_BATCH_BYTES
/* "{root}/{id}/up/config_req" and its NUL */
#define TOPIC_BUF (ESPADMIN_MAX_ROOT_LEN + ESPADMIN_MAX_ID_LEN + 16)
#define LOG_FLUSH_MS 250
#define OTA_REPORT_MS 2000

typedef enum { CONN_IDLE, CONN_CONNECTING, CONN_UP } conn_state_t;
typedef enum { OTA_IDLE, OTA_DOWNLOADING, OTA_REBOOTING, OTA_VERIFYING } ota_phase_t;

typedef struct {
    char id[ESPADMIN_MAX_ID_LEN + 1];
    char result[10];
    char message[ESPADMIN_MAX_MESSAGE_LEN + 1];
    int64_t config_version;
} recent_t;

typedef struct {
    char type[65];
    char code[65];
    char message[257];
    char reset_reason[16];
    char version[33]; /* the firmware the error happened in; "" means the running one */
} pending_error_t;

typedef struct {
    char *data; /* allocated for the message it holds (exactly its size), NULL when empty */
    size_t len;
    bool full;
    char topic[ESPADMIN_MAX_TOPIC_LEN + 1];
} slot_t;

struct espadmin_agent {
    const espadmin_platform_t *p;
    espadmin_options_t opt;
    int64_t now;

    /* provisioning */
    char device_id[ESPADMIN_MAX_ID_LEN + 1];
    char secret[129];
    uint8_t device_key[32];
    char mqtt_host[129];
    uint16_t mqtt_port;
    bool mqtt_tls;
    char *mqtt_ca;
    char root[ESPADMIN_MAX_ROOT_LEN + 1];
    char server_url[257];
    uint8_t ota_pubkey[32];
    bool has_pubkey;

    char version[33];
    const char *reset_reason;
    char topics[ESPADMIN_KIND_COUNT][TOPIC_BUF];
    char filter[TOPIC_BUF];

    /* connection */
    conn_state_t conn;
    int64_t next_connect_at;
    int64_t connect_started;
    espadmin_backoff_t backoff;
    bool session_start; /* connected; boot publications still to do */
    int status_mid;
    bool reached_server;
    bool greeted; /* boot publications done in this session */

    /* config */
    char cfg_active; /* 'a', 'b' or 0 */
    int64_t cfg_version;
    char cfg_hash[65];

    /* commands (each decoded into a block allocated for its dispatch) */
    recent_t recent[RECENT_IDS];
    size_t recent_next;
    char last_restart[ESPADMIN_MAX_ID_LEN + 1];
    char last_update[ESPADMIN_MAX_ID_LEN + 1];
    bool restart_pending;
    int restart_mid;
    int64_t restart_at;

    /* inbox */
    espadmin_reasm_t reasm;
    slot_t *slots;
    size_t nslots;
    uint32_t inbox_dropped;
    uint32_t commands_refused;
    uint32_t json_too_large;
    uint32_t no_memory;
    uint32_t uplinks_dropped;

    /* debug logs */
    bool debug_on;
    espadmin_level_t debug_level;
    int64_t debug_until;
    int64_t last_flush;
    uint64_t next_expected_seq;
    espadmin_logring_t ring; /* its buffer is allocated while debug is on */
    bool in_capture;

    /* errors */
    pending_error_t errors[MAX_PENDING_ERRORS];
    size_t nerrors;
    espadmin_crash_t *crash; /* what the last panic left, until its report is acknowledged */
    int crash_mid;
    espadmin_coredump_upload_t coredump;

    /* OTA */
    ota_phase_t ota;
    char ota_id[ESPADMIN_MAX_ID_LEN + 1];
    char ota_version[33];
    char rolled_back_from[33]; /* the update this boot rolled back, whose crash caused it */
    char ota_from[33];
    uint8_t ota_sha[32];
    int64_t ota_size;
    int64_t ota_received;
    void *ota_hash;
    int ota_last_pct;
    int64_t ota_last_report;
    int64_t ota_last_data;
    int ota_reboot_mid;
    int64_t ota_reboot_at;
    int64_t ota_verify_deadline;
    /* an outcome to report when connected: state "succeeded" or "failed" + reason */
    bool ota_report_pending;
    char ota_report_state[16];
    char ota_report_reason[32];
    uint8_t *chunk; /* CHUNK bytes while downloading */

    char pub[PUB_BUF];
};

/* ---- small helpers ---- */

static void logf_(espadmin_agent_t *a, espadmin_level_t level, const char *fmt, ...)
{
    if (a->p->log == NULL) {
        return;
    }
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    a->p->log(a->p->ctx, level, TAG, msg);
}

static void lock_logs(espadmin_agent_t *a, bool lock)
{
    if (a->p->log_lock) {
        a->p->log_lock(a->p->ctx, lock);
    }
}

/* The log ring on buf (NULL: none); sequence numbers continue across debug sessions. */
static void ring_reset(espadmin_agent_t *a, uint8_t *buf, size_t cap)
{
    uint64_t seq = a->ring.next_seq;
    espadmin_logring_init(&a->ring, buf, cap);
    a->ring.next_seq = seq;
}

static int64_t wall_of(espadmin_agent_t *a)
{
    return a->p->wall_ms ? a->p->wall_ms(a->p->ctx) : 0;
}

static int64_t now_of(espadmin_agent_t *a)
{
    int64_t t = a->p->now_ms ? a->p->now_ms(a->p->ctx) : a->now;
    if (t > a->now) {
        a->now = t;
    }
    return a->now;
}

static uint32_t rand32(espadmin_agent_t *a)
{
    uint32_t r = 0;
    if (a->p->random) {
        a->p->random(a->p->ctx, &r, sizeof(r));
    }
    return r;
}

/* Reads a string value; returns false when absent. */
static bool kv_str(espadmin_agent_t *a, const char *ns, const char *key, char *buf, size_t cap)
{
    size_t len = cap - 1;
    if (a->p->kv_get(a->p->ctx, ns, key, buf, &len) != ESPADMIN_PLATFORM_OK || len >= cap) {
        buf[0] = '\0';
        return false;
    }
    buf[len] = '\0';
    /* values written by nvs_partition_gen as strings may carry their NUL */
    buf[strlen(buf)] = '\0';
    return true;
}

static int kv_put_str(espadmin_agent_t *a, const char *ns, const char *key, const char *s)
{
    return a->p->kv_set(a->p->ctx, ns, key, s, strlen(s));
}

static bool hex_decode(const char *hex, uint8_t *out, size_t n)
{
    if (strlen(hex) != n * 2) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[i * 2 + k];
            v <<= 4;
            if (c >= '0' && c <= '9') {
                v |= (unsigned)(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                v |= (unsigned)(c - 'a' + 10);
            } else {
                return false;
            }
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

static const char *cfg_ns(char which)
{
    return which == 'b' ? "espadmin_cfg_b" : "espadmin_cfg_a";
}

/* ---- publishing ---- */

static int publish(espadmin_agent_t *a, espadmin_kind_t kind, const char *payload, int len)
{
    if (len < 0) {
        a->uplinks_dropped++; /* did not encode (or its self-check found no memory) */
        return -1;
    }
    if (a->conn != CONN_UP) {
        return -1;
    }
    int qos = kind == ESPADMIN_KIND_LOG ? 0 : 1;
    bool retain = kind == ESPADMIN_KIND_STATUS;
    return a->p->mqtt_publish(a->p->ctx, a->topics[kind], payload, (size_t)len, qos, retain);
}

static int send_ack(espadmin_agent_t *a, const char *id, const char *result, const char *message,
                    int64_t config_version, bool remember)
{
    if (remember) {
        recent_t *r = &a->recent[a->recent_next];
        a->recent_next = (a->recent_next + 1) % RECENT_IDS;
        espadmin_copy(r->id, sizeof(r->id), id);
        espadmin_copy(r->result, sizeof(r->result), result);
        espadmin_copy(r->message, sizeof(r->message), message);
        r->config_version = config_version;
    }
    int n = espadmin_encode_ack(a->pub, sizeof(a->pub), id, result, message, config_version);
    return publish(a, ESPADMIN_KIND_ACK, a->pub, n);
}

/* an ack outside a config (no config version), remembered against redelivery */
static int ack(espadmin_agent_t *a, const char *id, const char *result, const char *message)
{
    return send_ack(a, id, result, message, -1, true);
}

static int send_ota(espadmin_agent_t *a, const char *id, const char *version, const char *state,
                    int progress, const char *reason, const char *message)
{
    int n = espadmin_encode_ota(a->pub, sizeof(a->pub), id, version, state, progress, reason, message);
    return publish(a, ESPADMIN_KIND_OTA, a->pub, n);
}

/* an ota message about the update in flight */
static int ota_send(espadmin_agent_t *a, const char *state, int progress, const char *reason,
                    const char *message)
{
    return send_ota(a, a->ota_id, a->ota_version, state, progress, reason, message);
}

/* ---- provisioning and state ---- */

static bool unprovisioned(espadmin_agent_t *a, const char *why)
{
    logf_(a, ESPADMIN_LEVEL_ERROR, "not provisioned: %s", why);
    return false;
}

static bool load_provisioning(espadmin_agent_t *a)
{
    char tmp[128];
    if (!kv_str(a, NS, "device_id", a->device_id, sizeof(a->device_id)) ||
        !espadmin_valid_device_id(a->device_id)) {
        return unprovisioned(a, "device_id missing or invalid");
    }
    if (!kv_str(a, NS, "secret", a->secret, sizeof(a->secret)) || a->secret[0] == '\0') {
        return unprovisioned(a, "secret missing");
    }
    if (!kv_str(a, NS, "device_key", tmp, sizeof(tmp)) ||
        espadmin_base64_decode(tmp, strlen(tmp), a->device_key, sizeof(a->device_key)) != 32) {
        return unprovisioned(a, "device_key must be base64 of 32 bytes");
    }
    if (!kv_str(a, NS, "mqtt_host", a->mqtt_host, sizeof(a->mqtt_host)) || a->mqtt_host[0] == '\0') {
        return unprovisioned(a, "mqtt_host missing");
    }
    a->mqtt_port = 1883;
    if (kv_str(a, NS, "mqtt_port", tmp, sizeof(tmp)) && tmp[0]) {
        long port = strtol(tmp, NULL, 10);
        if (port < 1 || port > 65535) {
            return unprovisioned(a, "mqtt_port out of range");
        }
        a->mqtt_port = (uint16_t)port;
    }
    a->mqtt_tls = kv_str(a, NS, "mqtt_tls", tmp, sizeof(tmp)) &&
                  (strcmp(tmp, "1") == 0 || strcmp(tmp, "true") == 0);
    size_t ca_len = 0;
    if (a->p->kv_get(a->p->ctx, NS, "mqtt_ca", NULL, &ca_len) != ESPADMIN_PLATFORM_NOT_FOUND &&
        ca_len > 0 && ca_len < 16384) {
        a->mqtt_ca = espadmin_calloc(1, ca_len + 1);
        if (a->mqtt_ca) {
            kv_str(a, NS, "mqtt_ca", a->mqtt_ca, ca_len + 1);
        }
    }
    if (!kv_str(a, NS, "topic_root", a->root, sizeof(a->root)) || a->root[0] == '\0') {
        espadmin_copy(a->root, sizeof(a->root), "espadmin");
    }
    if (!espadmin_valid_root(a->root)) {
        return unprovisioned(a, "invalid topic_root");
    }
    kv_str(a, NS, "server_url", a->server_url, sizeof(a->server_url));
    a->has_pubkey = false;
    if (kv_str(a, NS, "ota_pubkey", tmp, sizeof(tmp)) && tmp[0]) {
        if (espadmin_base64_decode(tmp, strlen(tmp), a->ota_pubkey, sizeof(a->ota_pubkey)) != 32) {
            return unprovisioned(a, "ota_pubkey must be base64 of 32 bytes");
        }
        a->has_pubkey = true;
    }
    return true;
}

static void save_ota_pending(espadmin_agent_t *a, const char *state)
{
    char buf[256];
    ej_writer_t w;
    ejw_init(&w, buf, sizeof(buf));
    ejw_obj_begin(&w);
    ejw_kstring(&w, "id", a->ota_id);
    ejw_kstring(&w, "version", a->ota_version);
    ejw_kstring(&w, "from", a->ota_from);
    ejw_kstring(&w, "state", state);
    ejw_obj_end(&w);
    int n = ejw_finish(&w);
    if (n > 0) {
        a->p->kv_set(a->p->ctx, NS, "ota_pending", buf, (size_t)n);
        a->p->kv_commit(a->p->ctx, NS);
    }
}

static void clear_ota_pending(espadmin_agent_t *a)
{
    a->p->kv_erase(a->p->ctx, NS, "ota_pending");
    a->p->kv_commit(a->p->ctx, NS);
}

static void queue_ota_report(espadmin_agent_t *a, const char *state, const char *reason)
{
    a->ota_report_pending = true;
    espadmin_copy(a->ota_report_state, sizeof(a->ota_report_state), state);
    espadmin_copy(a->ota_report_reason, sizeof(a->ota_report_reason), reason);
}

/* What does this boot mean for an update in flight? The bootloader's image state decides
 * whether this is the first boot of a new image (pending verify); the NVS record only names
 * the update to report, and the running version is compared only to tell a rolled-back boot
 * from a completed one when the image is no longer pending. */
static void load_ota_state(espadmin_agent_t *a)
{
    char buf[256];
    bool pending = a->p->boot_state(a->p->ctx) == ESPADMIN_BOOT_PENDING_VERIFY;
    bool have = kv_str(a, NS, "ota_pending", buf, sizeof(buf));
    bool ok = false;
    ej_doc_t doc;
    if (have && ej_parse(&doc, buf, strlen(buf)) == EJ_OK) {
        /* the record save_ota_pending writes: four strings */
        static const char *const keys[] = {"id", "version", "from", "state"};
        const ej_node_t *f[4];
        ok = true;
        for (int i = 0; i < 4; i++) {
            f[i] = ej_get(doc.root, keys[i]);
            ok = ok && f[i] && f[i]->type == EJ_STRING;
        }
        if (ok) {
            espadmin_copy(a->ota_id, sizeof(a->ota_id), f[0]->str);
            espadmin_copy(a->ota_version, sizeof(a->ota_version), f[1]->str);
            espadmin_copy(a->ota_from, sizeof(a->ota_from), f[2]->str);
            ok = strcmp(f[3]->str, "rebooting") == 0;
        }
        ej_free(&doc);
    }
    if (pending) {
        a->ota = OTA_VERIFYING;
        a->ota_verify_deadline = a->now + a->opt.ota_verify_timeout_ms;
        if (!ok) {
            a->ota_id[0] = '\0'; /* nothing to report, but the image is still confirmed */
        }
        logf_(a, ESPADMIN_LEVEL_INFO, "running new image %s: confirming once the server is reached",
              a->version);
        return;
    }
    if (!have) {
        return;
    }
    if (!ok) {
        /* a download interrupted by a reset: the old image keeps running */
        if (a->ota_id[0] && espadmin_valid_release_version(a->ota_version)) {
            queue_ota_report(a, "failed", "download_error");
        }
        clear_ota_pending(a);
        return;
    }
    if (strcmp(a->version, a->ota_from) != 0 || strcmp(a->version, a->ota_version) == 0) {
        queue_ota_report(a, "succeeded", NULL);
    } else {
        logf_(a, ESPADMIN_LEVEL_WARN, "update to %s was rolled back; running %s", a->ota_version,
              a->version);
        queue_ota_report(a, "failed", "boot_failed_rolled_back");
        /* a crash that caused this rollback happened in the new image, not this one */
        espadmin_copy(a->rolled_back_from, sizeof(a->rolled_back_from), a->ota_version);
    }
    clear_ota_pending(a);
}

static void load_config_state(espadmin_agent_t *a)
{
    char tmp[80];
    a->cfg_active = 0;
    a->cfg_version = 0;
    a->cfg_hash[0] = '\0';
    if (kv_str(a, NS, "cfg_active", tmp, sizeof(tmp)) && (tmp[0] == 'a' || tmp[0] == 'b')) {
        a->cfg_active = tmp[0];
        char key[16];
        snprintf(key, sizeof(key), "cfg_%c_ver", a->cfg_active);
        if (kv_str(a, NS, key, tmp, sizeof(tmp))) {
            a->cfg_version = strtoll(tmp, NULL, 10);
        }
        snprintf(key, sizeof(key), "cfg_%c_hash", a->cfg_active);
        kv_str(a, NS, key, a->cfg_hash, sizeof(a->cfg_hash));
    }
}

static bool is_crash_reason(const char *r)
{
    static const char *const crashes[] = {"panic", "int_wdt", "task_wdt", "wdt", "brownout", "cpu_lockup", NULL};
    for (int i = 0; crashes[i]; i++) {
        if (strcmp(r, crashes[i]) == 0) {
            return true;
        }
    }
    return false;
}

espadmin_agent_t *espadmin_agent_init(const espadmin_platform_t *platform,
                                      const espadmin_options_t *options)
{
    espadmin_agent_t *a = espadmin_calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->p = platform;
    if (options) {
        a->opt = *options;
    }
    if (!a->opt.ota_verify_timeout_ms) a->opt.ota_verify_timeout_ms = 120000;
    if (!a->opt.backoff_base_ms) a->opt.backoff_base_ms = 1000;
    if (!a->opt.backoff_max_ms) a->opt.backoff_max_ms = 60000;
    if (!a->opt.connect_timeout_ms) a->opt.connect_timeout_ms = 30000;
    if (!a->opt.download_timeout_ms) a->opt.download_timeout_ms = 60000;
    if (!a->opt.puback_wait_ms) a->opt.puback_wait_ms = 2000;
    if (!a->opt.log_ring_bytes) a->opt.log_ring_bytes = ESPADMIN_DEFAULT_LOG_RING;
    if (!a->opt.inbox_slots) a->opt.inbox_slots = ESPADMIN_DEFAULT_INBOX_SLOTS;
    a->now = platform->now_ms ? platform->now_ms(platform->ctx) : 0;

    espadmin_reasm_init(&a->reasm, ESPADMIN_DEVICE_MAX_COMMAND);
    espadmin_logring_init(&a->ring, NULL, 0);
    a->slots = espadmin_calloc(a->opt.inbox_slots, sizeof(slot_t));
    a->nslots = a->opt.inbox_slots;
    if (a->slots == NULL || !load_provisioning(a)) {
        espadmin_agent_free(a);
        return NULL;
    }
    espadmin_backoff_init(&a->backoff, a->opt.backoff_base_ms, a->opt.backoff_max_ms);
    for (int k = 0; k < ESPADMIN_KIND_COUNT; k++) {
        if (espadmin_topic(a->topics[k], sizeof(a->topics[k]), a->root, a->device_id,
                           (espadmin_kind_t)k) < 0) {
            espadmin_agent_free(a);
            return NULL;
        }
    }
    espadmin_downlink_filter(a->filter, sizeof(a->filter), a->root, a->device_id);

    platform->running_version(platform->ctx, a->version, sizeof(a->version));
    if (a->version[0] == '\0') {
        espadmin_copy(a->version, sizeof(a->version), "unknown");
    }
    a->reset_reason = platform->reset_reason ? platform->reset_reason(platform->ctx) : "unknown";
    if (a->reset_reason == NULL) {
        a->reset_reason = "unknown";
    }
    kv_str(a, NS, "last_restart", a->last_restart, sizeof(a->last_restart));
    kv_str(a, NS, "last_update", a->last_update, sizeof(a->last_update));
    load_config_state(a);
    load_ota_state(a);
    if (is_crash_reason(a->reset_reason)) {
        pending_error_t *e = &a->errors[a->nerrors++];
        espadmin_copy(e->type, sizeof(e->type), a->reset_reason); /* "panic", "int_wdt", ... */
        a->crash = espadmin_crash_load(platform);
        espadmin_crash_message(a->crash, a->reset_reason, e->message, sizeof(e->message));
        espadmin_copy(e->reset_reason, sizeof(e->reset_reason), a->reset_reason);
        espadmin_copy(e->version, sizeof(e->version), a->rolled_back_from);
    }
    a->conn = CONN_IDLE;
    a->next_connect_at = a->now;
    logf_(a, ESPADMIN_LEVEL_INFO, "agent for device %s, firmware %s, reset reason %s, config version %s",
          a->device_id, a->version, a->reset_reason, I64(a->cfg_version));
    return a;
}

void espadmin_agent_free(espadmin_agent_t *a)
{
    if (a == NULL) {
        return;
    }
    if (a->ota_hash && a->p->sha256_finish) {
        a->p->sha256_finish(a->p->ctx, a->ota_hash, NULL);
    }
    if (a->slots) {
        for (size_t i = 0; i < a->nslots; i++) {
            espadmin_free(a->slots[i].data);
        }
    }
    espadmin_free(a->slots);
    espadmin_reasm_free(&a->reasm);
    espadmin_free(a->ring.buf);
    espadmin_free(a->chunk);
    espadmin_free(a->mqtt_ca);
    espadmin_free(a->crash);
    memset(a->device_key, 0, sizeof(a->device_key));
    espadmin_free(a);
}

/* ---- connection ---- */

/* A platform-managed config value overrides the provisioning when present. */
static bool managed(espadmin_agent_t *a, const char *key, char *buf, size_t cap)
{
    espadmin_cfg_type_t t;
    return espadmin_config_get(a, key, &t, buf, cap) == ESPADMIN_PLATFORM_OK && buf[0] != '\0';
}

static void start_connect(espadmin_agent_t *a)
{
    static const char will[] = "{\"v\":1,\"online\":false}";
    char host[129], port_s[16], password[129];
    char *ca = a->mqtt_ca;
    char *ca_override = NULL;
    if (!managed(a, "_mqtt_host", host, sizeof(host))) {
        espadmin_copy(host, sizeof(host), a->mqtt_host);
    }
    uint16_t port = a->mqtt_port;
    if (managed(a, "_mqtt_port", port_s, sizeof(port_s))) {
        long v = strtol(port_s, NULL, 10);
        if (v > 0 && v < 65536) {
            port = (uint16_t)v;
        }
    }
    if (!managed(a, "_mqtt_secret", password, sizeof(password))) {
        espadmin_copy(password, sizeof(password), a->secret);
    }
    ca_override = espadmin_malloc(ESPADMIN_MAX_CONFIG_VALUE_LEN + 1);
    if (ca_override && managed(a, "_mqtt_ca", ca_override, ESPADMIN_MAX_CONFIG_VALUE_LEN + 1)) {
        ca = ca_override;
    }
    espadmin_mqtt_config_t cfg = {
        .host = host,
        .port = port,
        .tls = a->mqtt_tls,
        .ca_pem = ca ? ca : "",
        .client_id = a->device_id,
        .username = a->device_id,
        .password = password,
        .will_topic = a->topics[ESPADMIN_KIND_STATUS],
        .will_payload = will,
        .will_len = sizeof(will) - 1,
        .will_qos = 1,
        .will_retain = true,
        .keepalive_s = 30,
    };
    a->connect_started = a->now;
    a->conn = CONN_CONNECTING;
    logf_(a, ESPADMIN_LEVEL_INFO, "connecting to %s:%u", host, (unsigned)port);
    int rc = a->p->mqtt_connect(a->p->ctx, &cfg);
    espadmin_free(ca_override);
    memset(password, 0, sizeof(password));
    if (rc != ESPADMIN_PLATFORM_OK && a->conn == CONN_CONNECTING) {
        uint32_t d = espadmin_backoff_next(&a->backoff, rand32(a));
        a->conn = CONN_IDLE;
        a->next_connect_at = a->now + d;
        logf_(a, ESPADMIN_LEVEL_WARN, "connect failed; retrying in %" PRIu32 " ms", d);
    }
}

void espadmin_on_connected(espadmin_agent_t *a)
{
    now_of(a);
    a->conn = CONN_UP;
    a->session_start = true;
    a->greeted = false;
    a->status_mid = -1;
    espadmin_backoff_reset(&a->backoff);
}

void espadmin_on_disconnected(espadmin_agent_t *a)
{
    now_of(a);
    bool was = a->conn != CONN_IDLE;
    a->conn = CONN_IDLE;
    a->session_start = false;
    a->greeted = false;
    if (was) {
        uint32_t d = espadmin_backoff_next(&a->backoff, rand32(a));
        a->next_connect_at = a->now + d;
        logf_(a, ESPADMIN_LEVEL_WARN, "disconnected; reconnecting in %" PRIu32 " ms", d);
    }
}

static void reached_server(espadmin_agent_t *a)
{
    a->reached_server = true;
    if (a->ota == OTA_VERIFYING) {
        if (a->p->ota_mark_valid(a->p->ctx) == ESPADMIN_PLATFORM_OK) {
            logf_(a, ESPADMIN_LEVEL_INFO, "new image %s confirmed", a->version);
            ota_send(a, "succeeded", 100, NULL, NULL);
            clear_ota_pending(a);
            a->ota = OTA_IDLE;
        } else {
            logf_(a, ESPADMIN_LEVEL_ERROR, "cannot mark the image valid");
        }
    }
}

void espadmin_on_published(espadmin_agent_t *a, int msg_id)
{
    now_of(a);
    if (msg_id <= 0) {
        return;
    }
    if (msg_id == a->status_mid) {
        a->status_mid = -1;
        reached_server(a);
    }
    if (a->restart_pending && msg_id == a->restart_mid) {
        a->restart_at = a->now; /* the ack is out: restart now */
    }
    if (a->ota == OTA_REBOOTING && msg_id == a->ota_reboot_mid) {
        a->ota_reboot_at = a->now;
    }
    if (a->crash && msg_id == a->crash_mid) {
        espadmin_crash_done(a->p, &a->crash);
    }
}

/* ---- inbox ---- */

/* Queues a complete message for the tick. owned, when not NULL, is an allocated buffer holding
 * data that the inbox takes over (a reassembled message); otherwise data is copied into a
 * buffer of its exact size. */
static int enqueue(espadmin_agent_t *a, const char *topic, const void *data, size_t len, char *owned)
{
    if (len > ESPADMIN_DEVICE_MAX_COMMAND || strlen(topic) > ESPADMIN_MAX_TOPIC_LEN) {
        espadmin_free(owned);
        a->inbox_dropped++;
        return -1;
    }
    for (size_t i = 0; i < a->nslots; i++) {
        slot_t *s = &a->slots[i];
        if (!s->full) {
            if (owned == NULL && (owned = espadmin_malloc(len ? len : 1)) != NULL) {
                memcpy(owned, data, len);
            }
            if (owned == NULL) {
                a->no_memory++;
                break;
            }
            s->data = owned;
            s->len = len;
            espadmin_copy(s->topic, sizeof(s->topic), topic);
            s->full = true;
            return 0;
        }
    }
    espadmin_free(owned);
    a->inbox_dropped++;
    return -1;
}

int espadmin_on_message(espadmin_agent_t *a, const char *topic, const void *payload, size_t len)
{
    return espadmin_on_message_fragment(a, topic, strlen(topic), len, 0, payload, len);
}

int espadmin_on_message_fragment(espadmin_agent_t *a, const char *topic, size_t topic_len,
                                 size_t total_len, size_t offset, const void *data, size_t len)
{
    espadmin_reasm_result_t r =
        espadmin_reasm_feed(&a->reasm, topic, topic_len, total_len, offset, data, len);
    if (r == ESPADMIN_REASM_REFUSED) {
        a->inbox_dropped++;
        return -1;
    }
    if (r == ESPADMIN_REASM_PENDING) {
        return 0;
    }
    return enqueue(a, a->reasm.topic, a->reasm.data, a->reasm.received,
                   espadmin_reasm_take(&a->reasm));
}

/* ---- config ---- */

int64_t espadmin_config_version(const espadmin_agent_t *a) { return a->cfg_version; }

int espadmin_config_get(espadmin_agent_t *a, const char *key, espadmin_cfg_type_t *type,
                        char *buf, size_t cap)
{
    if (a->cfg_active == 0 || cap == 0) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    char *tmp = espadmin_malloc(cap + 1);
    if (tmp == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    size_t len = cap;
    int rc = a->p->kv_get(a->p->ctx, cfg_ns(a->cfg_active), key, tmp, &len);
    if (rc == ESPADMIN_PLATFORM_OK && (len < 1 || len > cap)) {
        rc = len < 1 ? ESPADMIN_PLATFORM_ERR : ESPADMIN_PLATFORM_TOO_SMALL;
    }
    if (rc == ESPADMIN_PLATFORM_OK) {
        if (type) {
            *type = (espadmin_cfg_type_t)(tmp[0] - '0');
        }
        memcpy(buf, tmp + 1, len - 1);
        buf[len - 1] = '\0';
    }
    espadmin_free(tmp);
    return rc;
}

/* Checks a (decrypted or plain) value against its type and produces the stored form: the
 * type digit followed by a string's text or the value's compact JSON. */
static bool stored_form(const ej_node_t *v, espadmin_cfg_type_t type, char *out, size_t cap,
                        size_t *out_len)
{
    const char *text = v->str; /* copied as is, when not NULL */
    size_t n = v->str_len;
    switch (type) {
    case ESPADMIN_CFG_STRING:
        if (v->type != EJ_STRING || v->str_len > ESPADMIN_MAX_CONFIG_VALUE_LEN) {
            return false;
        }
        break;
    case ESPADMIN_CFG_INT: {
        int64_t i;
        if (!ej_int(v, &i, NULL) || i < -ESPADMIN_MAX_SAFE_INTEGER || i > ESPADMIN_MAX_SAFE_INTEGER) {
            return false;
        }
        if (cap < 1 + ESPADMIN_I64_TEXT_MAX) {
            return false;
        }
        n = espadmin_fmt_i64(out + 1, i);
        text = NULL;
        break;
    }
    case ESPADMIN_CFG_FLOAT:
        if (v->type != EJ_NUMBER || !isfinite(strtod(v->str, NULL))) {
            return false;
        }
        break;
    case ESPADMIN_CFG_BOOL:
        if (v->type != EJ_TRUE && v->type != EJ_FALSE) {
            return false;
        }
        text = v->raw; /* "true" or "false" */
        n = v->raw_len;
        break;
    case ESPADMIN_CFG_JSON:
        n = ej_compact(v, out + 1, cap - 1);
        if (n > ESPADMIN_MAX_CONFIG_VALUE_LEN || n + 1 > cap) {
            return false;
        }
        text = NULL;
        break;
    }
    if (text != NULL) {
        if (n + 1 > cap) {
            return false;
        }
        memcpy(out + 1, text, n);
    }
    out[0] = (char)('0' + (int)type);
    *out_len = n + 1;
    return true;
}

/* Parses a bare JSON value by wrapping it in an object. Returns the wrapper, which the
 * tree points into (free it after ej_free), or NULL. */
static char *parse_bare(ej_doc_t *doc, const char *text, size_t len, const ej_node_t **v)
{
    char *wrapped = espadmin_malloc(len + 8);
    if (wrapped == NULL) {
        return NULL;
    }
    memcpy(wrapped, "{\"x\":", 5);
    memcpy(wrapped + 5, text, len);
    wrapped[5 + len] = '}';
    /* only the value itself is stored: a container's compact form comes from its text */
    if (ej_parse_partial(doc, wrapped, len + 6, 1, 2) != EJ_OK || (*v = ej_get(doc->root, "x")) == NULL) {
        ej_free(doc);
        espadmin_free(wrapped);
        return NULL;
    }
    return wrapped;
}

static bool managed_key_ok(const char *key, espadmin_cfg_type_t t, const char *stored)
{
    if (strcmp(key, "_mqtt_host") == 0 || strcmp(key, "_mqtt_ca") == 0 || strcmp(key, "_mqtt_secret") == 0) {
        return t == ESPADMIN_CFG_STRING;
    }
    if (strcmp(key, "_mqtt_port") == 0) {
        long v = strtol(stored + 1, NULL, 10);
        return t == ESPADMIN_CFG_INT && v > 0 && v < 65536;
    }
    return true;
}

/* Validates, decrypts and writes every entry into the inactive config namespace, then flips
 * the active pointer: either the whole config is applied or nothing changes. */
static void apply_config(espadmin_agent_t *a, const espadmin_command_t *c)
{
    char msg[ESPADMIN_MAX_MESSAGE_LEN + 1];
    /* why it is refused: a format given the current entry's key and type name */
    const char *why = NULL;
    const espadmin_cfg_entry_t *e = NULL;
    char staging = a->cfg_active == 'a' ? 'b' : 'a';
    const char *ns = cfg_ns(staging);
    /* every buffer below holds at most one value's text (or less: its decoded or decrypted
     * form), so they are sized by the largest value of this config, not by the protocol */
    size_t cap = 1 + ESPADMIN_I64_TEXT_MAX + 8;
    for (size_t i = 0; i < c->config.count; i++) {
        if ((size_t)c->config.entries[i].value_len + 8 > cap) {
            cap = (size_t)c->config.entries[i].value_len + 8;
        }
    }
    size_t total = 0;
    char *val = espadmin_malloc(cap);
    uint8_t *sealed = espadmin_malloc(cap);
    char *plain = espadmin_malloc(cap);
    bool ok = val && sealed && plain;
    if (!ok) {
        why = "out of memory";
    }
    if (ok && a->p->kv_erase_all(a->p->ctx, ns) != ESPADMIN_PLATFORM_OK) {
        why = "storage: cannot clear the config namespace";
        ok = false;
    }
    for (size_t i = 0; ok && i < c->config.count; i++) {
        e = &c->config.entries[i];
        const char *text = c->value_text + e->value_off;
        size_t text_len = e->value_len;
        size_t stored_len = 0;
        ej_doc_t doc = {0};
        const ej_node_t *v = NULL;
        char *wrapper = NULL;
#ifdef ESPADMIN_PROFILE_SMALL
        if (e->secret) {
            /* the sealed value's JSON text: its string is decoded into val first */
            const ej_node_t *s = NULL;
            char *w = parse_bare(&doc, text, e->value_len, &s);
            ok = w != NULL && s->type == EJ_STRING && s->str_len + 1 <= cap;
            if (ok) {
                memcpy(val + 1, s->str, s->str_len);
                text = val + 1;
                text_len = s->str_len;
            }
            if (w != NULL) {
                ej_free(&doc);
                espadmin_free(w);
            }
            if (!ok) {
                /* the decoder checked it is a JSON string: only memory can be short */
                why = "out of memory";
                break;
            }
        }
#endif
        if (e->secret) {
            int n = espadmin_base64_decode(text, text_len, sealed, cap);
            char aad[160];
            int aad_len = espadmin_secret_aad(a->device_id, e->key, c->config.version, aad, sizeof(aad));
            size_t ct_len = n >= 29 ? (size_t)n - 12 - 16 : 0;
            if (n < 29 || aad_len < 0 ||
                !a->p->aes_gcm_decrypt(a->p->ctx, a->device_key, sealed, aad, (size_t)aad_len,
                                       sealed + 12, ct_len, sealed + 12 + ct_len, plain)) {
                why = "secret %s: cannot decrypt";
                ok = false;
                break;
            }
            if (!ej_utf8_valid(plain, ct_len) ||
                (wrapper = parse_bare(&doc, plain, ct_len, &v)) == NULL) {
                why = "secret %s: decrypted value is not JSON";
                ok = false;
                break;
            }
#ifndef ESPADMIN_PROFILE_SMALL
        } else if (e->type == ESPADMIN_CFG_STRING) {
            /* the decoder already unescaped it: store the text as is */
            if (text_len + 1 > cap) {
                ok = false;
            } else {
                val[0] = (char)('0' + ESPADMIN_CFG_STRING);
                memcpy(val + 1, text, text_len);
                stored_len = text_len + 1;
            }
#endif
        } else if ((wrapper = parse_bare(&doc, text, e->value_len, &v)) == NULL) {
            ok = false;
        }
        if (ok && v != NULL && !stored_form(v, e->type, val, cap, &stored_len)) {
            ok = false;
        }
        if (wrapper != NULL) {
            ej_free(&doc);
            espadmin_free(wrapper);
        }
        if (!ok) {
            why = "%s: value does not match type %s";
            break;
        }
        val[stored_len] = '\0';
        total += strlen(e->key) + stored_len - 1;
        if (total > ESPADMIN_DEVICE_MAX_CONFIG) {
            why = "config exceeds the device's limit of " STRING_OF(ESPADMIN_DEVICE_MAX_CONFIG) " bytes";
            ok = false;
            break;
        }
        if (!managed_key_ok(e->key, e->type, val)) {
            why = "%s: invalid platform-managed value";
            ok = false;
            break;
        }
        if (a->p->kv_set(a->p->ctx, ns, e->key, val, stored_len) != ESPADMIN_PLATFORM_OK) {
            why = "storage: cannot write %s";
            ok = false;
            break;
        }
    }
    if (ok && a->p->kv_commit(a->p->ctx, ns) != ESPADMIN_PLATFORM_OK) {
        why = "storage: commit failed";
        ok = false;
    }
    if (ok) {
        char key[16], num[24];
        snprintf(key, sizeof(key), "cfg_%c_ver", staging);
        espadmin_fmt_i64(num, c->config.version);
        ok = kv_put_str(a, NS, key, num) == ESPADMIN_PLATFORM_OK;
        snprintf(key, sizeof(key), "cfg_%c_hash", staging);
        ok = ok && kv_put_str(a, NS, key, c->config.hash) == ESPADMIN_PLATFORM_OK;
        char flag[2] = {staging, '\0'};
        ok = ok && kv_put_str(a, NS, "cfg_active", flag) == ESPADMIN_PLATFORM_OK;
        ok = ok && a->p->kv_commit(a->p->ctx, NS) == ESPADMIN_PLATFORM_OK;
        if (!ok) {
            why = "storage: cannot switch to the new config";
        }
    }
    if (!ok) {
        snprintf(msg, sizeof(msg), why, e ? e->key : "", e ? espadmin_cfg_type_name(e->type) : "");
        if (val && sealed && plain) {
            a->p->kv_erase_all(a->p->ctx, ns);
            a->p->kv_commit(a->p->ctx, ns);
        }
        logf_(a, ESPADMIN_LEVEL_WARN, "config %s refused: %s", I64(c->config.version), msg);
        ack(a, c->id, "error", msg);
    } else {
        load_config_state(a);
        logf_(a, ESPADMIN_LEVEL_INFO, "config %s applied (%u entries)", I64(c->config.version),
              (unsigned)c->config.count);
        send_ack(a, c->id, "ok", NULL, c->config.version, true);
    }
    espadmin_free(val);
    espadmin_free(sealed);
    espadmin_free(plain);
}

/* ---- OTA ---- */

/* The protocol's reason for an ota_begin or ota_write refusal. */
static const char *slot_reason(int rc)
{
    switch (rc) {
    case ESPADMIN_PLATFORM_NO_SPACE:
        return "no_space";
    case ESPADMIN_PLATFORM_PENDING_VERIFY:
        return "busy"; /* the previous update is still being verified */
    case ESPADMIN_PLATFORM_INVALID_IMAGE:
        return "invalid_image";
    default:
        return "internal";
    }
}

static void ota_fail(espadmin_agent_t *a, const char *reason, const char *message)
{
    logf_(a, ESPADMIN_LEVEL_ERROR, "update to %s failed: %s%s%s", a->ota_version, reason,
          message && *message ? " " : "", message ? message : "");
    if (a->ota == OTA_DOWNLOADING) {
        a->p->http_close(a->p->ctx);
        a->p->ota_abort(a->p->ctx);
        if (a->ota_hash) {
            a->p->sha256_finish(a->p->ctx, a->ota_hash, NULL);
            a->ota_hash = NULL;
        }
    }
    a->ota = OTA_IDLE;
    clear_ota_pending(a);
    int pct = a->ota_size > 0 ? (int)(a->ota_received * 100 / a->ota_size) : 0;
    ota_send(a, "failed", pct > 100 ? 100 : pct, reason, message);
}

static void reject_update(espadmin_agent_t *a, const espadmin_command_t *c, const char *reason)
{
    logf_(a, ESPADMIN_LEVEL_WARN, "update %s refused: %s", c->update.version, reason);
    ack(a, c->id, "rejected", reason);
    send_ota(a, c->id, c->update.version, "failed", 0, reason, NULL);
}

static void start_update(espadmin_agent_t *a, const espadmin_command_t *c)
{
    const espadmin_update_params_t *u = &c->update;
    if (a->ota != OTA_IDLE) {
        reject_update(a, c, "busy");
        return;
    }
    if (a->has_pubkey) {
        /* the signing string (up to 2.3 KB with the longest URL) is kept off the stack */
        uint8_t sig[66];
        char *canon = espadmin_malloc(ESPADMIN_MAX_URL_LEN + 256);
        if (canon == NULL) {
            a->no_memory++;
            reject_update(a, c, "internal");
            return;
        }
        int n = espadmin_ota_signing_string(u, canon, ESPADMIN_MAX_URL_LEN + 256);
        bool good = u->signature[0] != '\0' && n >= 0 &&
                    espadmin_base64_decode(u->signature, strlen(u->signature), sig, sizeof(sig)) == 64 &&
                    a->p->ed25519_verify(a->p->ctx, a->ota_pubkey, canon, (size_t)n, sig);
        espadmin_free(canon);
        if (!good) {
            reject_update(a, c, "bad_signature");
            return;
        }
    }
    if (strcmp(u->version, a->version) == 0) {
        reject_update(a, c, "already_running");
        return;
    }
    int64_t wall = wall_of(a);
    if (wall > 0 && u->url_expires_at != 0 && wall >= u->url_expires_at) {
        reject_update(a, c, "expired");
        return;
    }
    espadmin_copy(a->ota_id, sizeof(a->ota_id), c->id);
    espadmin_copy(a->ota_version, sizeof(a->ota_version), u->version);
    espadmin_copy(a->ota_from, sizeof(a->ota_from), a->version);
    hex_decode(u->sha256, a->ota_sha, sizeof(a->ota_sha));
    a->ota_size = u->size;
    a->ota_received = 0;
    a->ota_last_pct = 0;
    a->ota_last_report = a->now;
    a->ota_last_data = a->now;

    espadmin_copy(a->last_update, sizeof(a->last_update), c->id);
    kv_put_str(a, NS, "last_update", c->id);
    ack(a, c->id, "ok", NULL);
    save_ota_pending(a, "downloading");

    a->ota = OTA_DOWNLOADING;
    char why[96];
    int rc = a->p->ota_begin(a->p->ctx, u->size);
    if (rc != ESPADMIN_PLATFORM_OK) {
        const char *msg = espadmin_platform_error(a->p, why, sizeof(why),
                                         rc == ESPADMIN_PLATFORM_PENDING_VERIFY ? "the running image awaits confirmation"
                                                                                : "cannot open the update slot");
        a->ota = OTA_IDLE; /* nothing to close yet */
        ota_fail(a, slot_reason(rc), msg);
        return;
    }
    a->ota_hash = a->p->sha256_begin(a->p->ctx);
    if (a->ota_hash == NULL) {
        ota_fail(a, "internal", "sha256");
        return;
    }
    if (a->p->http_open(a->p->ctx, u->url) != ESPADMIN_PLATFORM_OK) {
        const char *msg = espadmin_platform_error(a->p, why, sizeof(why), "cannot open the URL");
        a->p->ota_abort(a->p->ctx);
        a->p->sha256_finish(a->p->ctx, a->ota_hash, NULL);
        a->ota_hash = NULL;
        a->ota = OTA_IDLE; /* the download is not open: nothing more to close */
        ota_fail(a, "download_error", msg);
        return;
    }
    logf_(a, ESPADMIN_LEVEL_INFO, "downloading %s (%s bytes)", u->version, I64(u->size));
    ota_send(a, "downloading", 0, NULL, NULL);
}

static void download_done(espadmin_agent_t *a)
{
    uint8_t got[32];
    char why[96];
    const char *reason = NULL, *message = NULL;
    a->p->http_close(a->p->ctx);
    a->p->sha256_finish(a->p->ctx, a->ota_hash, got);
    a->ota_hash = NULL;
    if (a->ota_received != a->ota_size || memcmp(got, a->ota_sha, 32) != 0) {
        a->p->ota_abort(a->p->ctx);
        reason = a->ota_received != a->ota_size ? "size_mismatch" : "hash_mismatch";
    } else {
        ota_send(a, "downloaded", 100, NULL, NULL);
        if (a->p->ota_finish(a->p->ctx) != ESPADMIN_PLATFORM_OK) {
            reason = "invalid_image";
            message = espadmin_platform_error(a->p, why, sizeof(why), NULL);
        } else {
            ota_send(a, "installing", 100, NULL, NULL);
            if (a->p->ota_set_boot(a->p->ctx, a->ota_version) != ESPADMIN_PLATFORM_OK) {
                reason = "internal";
                message = "cannot set the boot slot";
            }
        }
    }
    if (reason != NULL) {
        a->ota = OTA_IDLE; /* closed above */
        ota_fail(a, reason, message);
        return;
    }
    save_ota_pending(a, "rebooting");
    a->ota = OTA_REBOOTING;
    a->ota_reboot_mid = ota_send(a, "rebooting", 100, NULL, NULL);
    a->ota_reboot_at = a->now + a->opt.puback_wait_ms;
    logf_(a, ESPADMIN_LEVEL_INFO, "update %s installed; restarting", a->ota_version);
}

static void pump_download(espadmin_agent_t *a)
{
    if (a->chunk == NULL && (a->chunk = espadmin_malloc(CHUNK)) == NULL) {
        a->no_memory++;
        ota_fail(a, "internal", "out of memory");
        return;
    }
    for (int round = 0; round < 4 && a->ota == OTA_DOWNLOADING; round++) {
        int n = a->p->http_read(a->p->ctx, a->chunk, CHUNK);
        if (n == ESPADMIN_PLATFORM_AGAIN) {
            if (a->now - a->ota_last_data > a->opt.download_timeout_ms) {
                ota_fail(a, "download_error", "timed out");
            }
            return;
        }
        if (n < 0) {
            char why[96];
            ota_fail(a, "download_error", espadmin_platform_error(a->p, why, sizeof(why), NULL));
            return;
        }
        if (n == 0) {
            download_done(a);
            return;
        }
        a->ota_last_data = a->now;
        if (a->ota_received + n > a->ota_size) {
            a->ota_received += n;
            ota_fail(a, "size_mismatch", "more bytes than announced");
            return;
        }
        a->p->sha256_update(a->p->ctx, a->ota_hash, a->chunk, (size_t)n);
        int rc = a->p->ota_write(a->p->ctx, a->chunk, (size_t)n);
        if (rc != ESPADMIN_PLATFORM_OK) {
            char why[96];
            ota_fail(a, slot_reason(rc), espadmin_platform_error(a->p, why, sizeof(why), "slot write failed"));
            return;
        }
        a->ota_received += n;
        int pct = (int)(a->ota_received * 100 / a->ota_size);
        if (pct < 100 && (pct >= a->ota_last_pct + 5 || a->now - a->ota_last_report >= OTA_REPORT_MS)) {
            a->ota_last_pct = pct;
            a->ota_last_report = a->now;
            ota_send(a, "downloading", pct, NULL, NULL);
        }
    }
}

/* ---- commands ---- */

static void run_command(espadmin_agent_t *a, const espadmin_command_t *c);
static void debug_stop(espadmin_agent_t *a);

/* Decodes the command into a block allocated for its dispatch only, sized for the payload. */
static void dispatch(espadmin_agent_t *a, const char *payload, size_t len)
{
    espadmin_command_t *c = espadmin_command_new(len);
    espadmin_perr_t err = {.code = ESPADMIN_E_NO_MEMORY};
    if (c != NULL && espadmin_command_decode(payload, len, c, &err) == ESPADMIN_OK) {
        run_command(a, c);
        espadmin_free(c);
        return;
    }
    espadmin_free(c);
    a->commands_refused++;
    if (err.code == ESPADMIN_E_NO_MEMORY) {
        a->no_memory++;
    } else if (err.code == ESPADMIN_E_TOO_LARGE && len <= ESPADMIN_DEVICE_MAX_COMMAND) {
        a->json_too_large++; /* within the size limit, over the JSON working-memory cap */
    }
    char id[ESPADMIN_MAX_ID_LEN + 1];
    char msg[96];
    if (err.code == ESPADMIN_E_INVALID_FIELD) {
        snprintf(msg, sizeof(msg), "invalid_field: %s", err.field);
    } else {
        espadmin_copy(msg, sizeof(msg), espadmin_perr_class(err.code));
    }
    logf_(a, ESPADMIN_LEVEL_WARN, "command refused: %s", msg);
    if (espadmin_command_peek_id(payload, len, id)) {
        ack(a, id, "rejected", msg);
    }
}

static void run_command(espadmin_agent_t *a, const espadmin_command_t *c)
{
    for (size_t i = 0; i < RECENT_IDS; i++) {
        recent_t *r = &a->recent[i];
        if (r->id[0] && strcmp(r->id, c->id) == 0) {
            logf_(a, ESPADMIN_LEVEL_INFO, "duplicate command %s: repeating its ack", c->id);
            send_ack(a, r->id, r->result, r->message, r->config_version, false);
            return;
        }
    }
    if ((c->name == ESPADMIN_CMD_RESTART && strcmp(c->id, a->last_restart) == 0) ||
        (c->name == ESPADMIN_CMD_UPDATE && strcmp(c->id, a->last_update) == 0)) {
        logf_(a, ESPADMIN_LEVEL_INFO, "command %s already carried out before the restart", c->id);
        ack(a, c->id, "ok", NULL);
        return;
    }
    int64_t wall = wall_of(a);
    if (wall > 0 && wall >= c->expires_at) {
        if (c->name == ESPADMIN_CMD_UPDATE) {
            reject_update(a, c, "expired");
        } else {
            ack(a, c->id, "rejected", "expired");
        }
        return;
    }
    switch (c->name) {
    case ESPADMIN_CMD_RESTART:
        logf_(a, ESPADMIN_LEVEL_INFO, "restart requested%s%s", c->restart_reason[0] ? ": " : "",
              c->restart_reason);
        espadmin_copy(a->last_restart, sizeof(a->last_restart), c->id);
        kv_put_str(a, NS, "last_restart", c->id);
        a->p->kv_commit(a->p->ctx, NS);
        a->restart_mid = ack(a, c->id, "ok", NULL);
        a->restart_pending = true;
        a->restart_at = a->restart_mid > 0 ? a->now + a->opt.puback_wait_ms : a->now;
        break;
    case ESPADMIN_CMD_DEBUG:
        if (c->debug.enabled) {
            uint8_t *ring = NULL;
            if (a->ring.buf == NULL && (ring = espadmin_malloc(a->opt.log_ring_bytes)) == NULL) {
                a->no_memory++;
                logf_(a, ESPADMIN_LEVEL_ERROR, "debug on: no memory for the log buffer");
                ack(a, c->id, "error", "out of memory");
                break;
            }
            lock_logs(a, true);
            if (ring != NULL) {
                ring_reset(a, ring, a->opt.log_ring_bytes);
            }
            if (!a->debug_on) {
                a->next_expected_seq = a->ring.next_seq;
                a->ring.dropped = 0;
                a->last_flush = a->now;
            }
            a->debug_on = true;
            a->debug_level = c->debug.level;
            a->debug_until = a->now + (int64_t)c->debug.duration_s * 1000;
            lock_logs(a, false);
            logf_(a, ESPADMIN_LEVEL_INFO, "debug on at %s for %" PRId32 " s",
                  espadmin_level_name(c->debug.level), c->debug.duration_s);
        } else {
            debug_stop(a);
            logf_(a, ESPADMIN_LEVEL_INFO, "debug off");
        }
        ack(a, c->id, "ok", NULL);
        break;
    case ESPADMIN_CMD_CONFIG:
        apply_config(a, c);
        break;
    case ESPADMIN_CMD_UPDATE:
        start_update(a, c);
        break;
    case ESPADMIN_CMD_COREDUMP: { /* the port logs the upload; the ack says how it ended */
        char why[96];
        if (espadmin_coredump_start(a->p, &a->coredump, c->id, c->update.url, why, sizeof(why)) < 0) {
            ack(a, c->id, "error", why);
        }
        break;
    }
    }
}

/* Switches debug off and frees the log ring; the sequence numbers go on where they were. */
static void debug_stop(espadmin_agent_t *a)
{
    lock_logs(a, true);
    a->debug_on = false;
    uint8_t *ring = a->ring.buf;
    ring_reset(a, NULL, 0);
    lock_logs(a, false);
    espadmin_free(ring);
}

static void handle_message(espadmin_agent_t *a, const char *topic, const char *payload, size_t len)
{
    if (!espadmin_device_may_receive(a->root, a->device_id, topic) ||
        strcmp(topic, a->topics[ESPADMIN_KIND_CMD]) != 0) {
        logf_(a, ESPADMIN_LEVEL_WARN, "ignoring a message on %s", topic);
        return;
    }
    dispatch(a, payload, len);
}

/* ---- logs ---- */

void espadmin_log_capture(espadmin_agent_t *a, espadmin_level_t level, const char *tag,
                          const char *msg, size_t len)
{
    if (a == NULL || a->in_capture || !a->debug_on || level > a->debug_level) {
        return;
    }
    a->in_capture = true;
    /* other tasks call this under log_lock: read the clock, never write a->now */
    int64_t ms = a->p->now_ms ? a->p->now_ms(a->p->ctx) : a->now;
    espadmin_logring_push(&a->ring, level, tag, msg, len, ms);
    a->in_capture = false;
}

static void flush_logs(espadmin_agent_t *a, bool force)
{
    lock_logs(a, true);
    espadmin_logline_t line;
    size_t bytes_hint = a->ring.used;
    bool due = a->ring.lines > 0 &&
               (force || a->now - a->last_flush >= LOG_FLUSH_MS ||
                a->ring.lines >= ESPADMIN_LOG_BATCH_LINES || bytes_hint >= LOG_BATCH_BYTES);
    if (!due || a->conn != CONN_UP || !a->greeted) {
        lock_logs(a, false);
        return;
    }
    ej_writer_t w;
    ejw_init(&w, a->pub, sizeof(a->pub));
    espadmin_logring_peek(&a->ring, &line);
    uint64_t first = line.seq;
    uint64_t dropped = first > a->next_expected_seq ? first - a->next_expected_seq : 0;
    ejw_obj_begin(&w);
    ejw_kint(&w, "v", 1);
    ejw_kint(&w, "seq", (int64_t)first);
    if (dropped) {
        ejw_kint(&w, "dropped", (int64_t)dropped);
    }
    ejw_key(&w, "lines");
    ejw_arr_begin(&w);
    size_t n = 0;
    uint64_t expect = first;
    while (n < ESPADMIN_LOG_BATCH_LINES && espadmin_logring_peek(&a->ring, &line) && line.seq == expect) {
        ej_writer_t save = w;
        ejw_obj_begin(&w);
        ejw_kstring(&w, "level", espadmin_level_name(line.level));
        if (line.tag[0]) {
            ejw_kstring(&w, "tag", line.tag);
        }
        ejw_kstring(&w, "msg", line.msg);
        ejw_kint(&w, "ms", line.ms < 0 ? 0 : line.ms);
        ejw_obj_end(&w);
        if (w.overflow || w.len > LOG_BATCH_BYTES) {
            w = save;
            break;
        }
        espadmin_logring_pop(&a->ring);
        n++;
        expect++;
    }
    a->ring.dropped = 0;
    lock_logs(a, false);
    ejw_arr_end(&w);
    ejw_obj_end(&w);
    int len = ejw_finish(&w);
    a->last_flush = a->now;
    if (n == 0 || len < 0) {
        return;
    }
    a->next_expected_seq = expect;
    espadmin_perr_t err;
    if (espadmin_uplink_validate(ESPADMIN_KIND_LOG, a->pub, (size_t)len, &err) == ESPADMIN_OK) {
        publish(a, ESPADMIN_KIND_LOG, a->pub, len);
    }
}

/* ---- errors ---- */

/* s sanitized into dst (capacity cap), or fallback when s is NULL or sanitizes to nothing */
static void text_or(char *dst, size_t cap, const char *s, const char *fallback)
{
    if (s == NULL || espadmin_sanitize_text(dst, cap - 1, s, strlen(s)) == 0) {
        espadmin_copy(dst, cap, fallback);
    }
}

int espadmin_report_error(espadmin_agent_t *a, const char *type, const char *code,
                          const char *message)
{
    if (a->nerrors >= MAX_PENDING_ERRORS) {
        return -1;
    }
    pending_error_t *e = &a->errors[a->nerrors++];
    text_or(e->type, sizeof(e->type), type, "app");
    text_or(e->code, sizeof(e->code), code, "");
    text_or(e->message, sizeof(e->message), message, "error");
    e->reset_reason[0] = '\0';
    e->version[0] = '\0';
    return 0;
}

static void send_errors(espadmin_agent_t *a)
{
    while (a->nerrors > 0 && a->conn == CONN_UP) {
        pending_error_t *e = &a->errors[0];
        espadmin_sysinfo_t si;
        memset(&si, 0, sizeof(si));
        a->p->system_info(a->p->ctx, &si);
        espadmin_error_report_t r = {
            .message = e->message,
            .type = e->type,
            .code = e->code,
            .severity = "error",
            .reset_reason = e->reset_reason,
            .firmware_version = e->version[0] ? e->version : a->version,
            .uptime_ms = a->now,
            .free_heap = si.free_heap >= 0 ? si.free_heap : -1,
            .crash = e->reset_reason[0] ? a->crash : NULL,
        };
        int n = espadmin_encode_error(a->pub, sizeof(a->pub), &r);
        int mid = publish(a, ESPADMIN_KIND_ERROR, a->pub, n);
        if (mid < 0 && n >= 0) {
            return; /* try again later */
        }
        if (r.crash) {
            a->crash_mid = mid; /* erased once acknowledged (espadmin_on_published) */
        }
        memmove(&a->errors[0], &a->errors[1], (a->nerrors - 1) * sizeof(pending_error_t));
        a->nerrors--;
    }
}

/* ---- boot publications ---- */

static void send_ota_report(espadmin_agent_t *a)
{
    if (!a->ota_report_pending || !espadmin_valid_release_version(a->ota_version)) {
        a->ota_report_pending = false;
        return;
    }
    const char *reason = a->ota_report_reason[0] ? a->ota_report_reason : NULL;
    if (ota_send(a, a->ota_report_state,
                 strcmp(a->ota_report_state, "succeeded") == 0 ? 100 : 0, reason, NULL) >= 0) {
        a->ota_report_pending = false;
    }
}

static void greet(espadmin_agent_t *a)
{
    a->session_start = false;
    if (a->p->mqtt_subscribe(a->p->ctx, a->filter, 1) < 0) {
        logf_(a, ESPADMIN_LEVEL_ERROR, "subscribe failed");
    }
    int n = espadmin_encode_status(a->pub, sizeof(a->pub), true);
    a->status_mid = publish(a, ESPADMIN_KIND_STATUS, a->pub, n);

    espadmin_sysinfo_t si;
    memset(&si, 0, sizeof(si));
    si.min_free_heap = -1;
    a->p->system_info(a->p->ctx, &si);
    espadmin_metadata_t m = {
        .firmware_version = a->version,
        .project = si.project,
        .chip_model = si.chip_model[0] ? si.chip_model : "unknown",
        .chip_revision = si.chip_revision,
        .idf_version = si.idf_version[0] ? si.idf_version : "unknown",
        .mac = si.mac,
        .ip = espadmin_valid_ip(si.ip) ? si.ip : NULL,
        .has_rssi = si.has_rssi,
        .rssi = si.rssi,
        .free_heap = si.free_heap < 0 ? 0 : si.free_heap,
        .min_free_heap = si.min_free_heap,
        .uptime_ms = a->now,
        .reset_reason = a->reset_reason,
        .config_version = a->cfg_version,
        .limit_command_bytes = ESPADMIN_DEVICE_MAX_COMMAND,
        .limit_config_bytes = ESPADMIN_DEVICE_MAX_CONFIG,
    };
    n = espadmin_encode_metadata(a->pub, sizeof(a->pub), &m);
    if (n < 0) {
        logf_(a, ESPADMIN_LEVEL_ERROR, "metadata does not encode (check system info)");
    }
    publish(a, ESPADMIN_KIND_METADATA, a->pub, n);
    n = espadmin_encode_config_req(a->pub, sizeof(a->pub), a->cfg_version, a->cfg_hash);
    publish(a, ESPADMIN_KIND_CONFIG_REQ, a->pub, n);
    send_ota_report(a);
    send_errors(a);
    a->greeted = true;
    logf_(a, ESPADMIN_LEVEL_INFO, "online as %s", a->device_id);
    if (a->status_mid == 0) {
        reached_server(a); /* a port without PUBACK reporting */
    }
}

/* ---- tick ---- */

/* before a restart or a rollback */
static void go_offline(espadmin_agent_t *a)
{
    a->p->mqtt_disconnect(a->p->ctx);
    a->conn = CONN_IDLE;
}

void espadmin_tick(espadmin_agent_t *a, int64_t now_ms)
{
    if (now_ms > a->now) {
        a->now = now_ms;
    }
    if (a->restart_pending) {
        if (a->now >= a->restart_at) {
            a->restart_pending = false;
            logf_(a, ESPADMIN_LEVEL_INFO, "restarting");
            go_offline(a);
            a->p->restart(a->p->ctx);
        }
        return;
    }
    if (a->ota == OTA_REBOOTING) {
        if (a->now >= a->ota_reboot_at) {
            a->ota = OTA_IDLE;
            go_offline(a);
            a->p->restart(a->p->ctx);
        }
        return;
    }
    if (a->ota == OTA_VERIFYING && !a->reached_server && a->now >= a->ota_verify_deadline) {
        logf_(a, ESPADMIN_LEVEL_ERROR, "new image did not reach the server in time: rolling back");
        a->ota = OTA_IDLE;
        go_offline(a);
        a->p->ota_rollback(a->p->ctx);
        return;
    }
    if (a->debug_on && a->now >= a->debug_until) {
        flush_logs(a, true);
        debug_stop(a);
        logf_(a, ESPADMIN_LEVEL_INFO, "debug stopped after its duration");
    }
    switch (a->conn) {
    case CONN_IDLE:
        if (a->now >= a->next_connect_at) {
            start_connect(a);
        }
        break;
    case CONN_CONNECTING:
        if (a->now - a->connect_started >= a->opt.connect_timeout_ms) {
            logf_(a, ESPADMIN_LEVEL_WARN, "connection attempt timed out");
            a->p->mqtt_disconnect(a->p->ctx);
            espadmin_on_disconnected(a);
        }
        break;
    case CONN_UP:
        if (a->session_start) {
            greet(a);
        }
        break;
    }
    /* commands queued by the MQTT callback */
    for (size_t i = 0; i < a->nslots; i++) {
        slot_t *s = &a->slots[i];
        if (s->full) {
            handle_message(a, s->topic, s->data, s->len);
            espadmin_free(s->data);
            s->data = NULL;
            s->full = false;
            if (a->restart_pending || a->ota == OTA_REBOOTING) {
                break;
            }
        }
    }
    if (a->ota == OTA_DOWNLOADING) {
        pump_download(a);
    }
    if (a->ota != OTA_DOWNLOADING && a->chunk != NULL) {
        espadmin_free(a->chunk);
        a->chunk = NULL;
    }
    if (a->coredump.active) {
        char why[96];
        int rc = espadmin_coredump_poll(a->p, &a->coredump, why, sizeof(why));
        if (rc != 0) {
            ack(a, a->coredump.id, rc > 0 ? "ok" : "error", rc > 0 ? NULL : why);
        }
    }
    if (a->conn == CONN_UP && a->greeted) {
        send_errors(a);
        if (a->ota_report_pending) {
            send_ota_report(a);
        }
    }
    if (a->debug_on) {
        flush_logs(a, false);
    }
}

void espadmin_get_stats(const espadmin_agent_t *a, espadmin_stats_t *out)
{
    out->inbox_dropped = a->inbox_dropped;
    out->commands_refused = a->commands_refused;
    out->json_too_large = a->json_too_large;
    out->no_memory = a->no_memory;
    out->uplinks_dropped = a->uplinks_dropped;
}

bool espadmin_is_connected(const espadmin_agent_t *a) { return a->conn == CONN_UP; }
bool espadmin_debug_enabled(const espadmin_agent_t *a) { return a->debug_on; }
const char *espadmin_device_id(const espadmin_agent_t *a) { return a->device_id; }
const char *espadmin_firmware_version(const espadmin_agent_t *a) { return a->version; }
