#include "fake_platform.h"

#include "crypto_openssl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fake_t *F(void *ctx) { return ctx; }

static int64_t f_now(void *ctx) { return F(ctx)->now; }
static int64_t f_wall(void *ctx) { return F(ctx)->wall; }

static void f_random(void *ctx, void *buf, size_t len)
{
    fake_t *f = F(ctx);
    uint8_t *b = buf;
    for (size_t i = 0; i < len; i++) {
        f->rand_state = f->rand_state * 1103515245u + 12345u;
        b[i] = (uint8_t)(f->rand_state >> 16);
    }
}

static fake_kv_t *find(fake_t *f, const char *ns, const char *key)
{
    for (size_t i = 0; i < f->nkv; i++) {
        if (f->kv[i].val && strcmp(f->kv[i].ns, ns) == 0 && strcmp(f->kv[i].key, key) == 0) {
            return &f->kv[i];
        }
    }
    return NULL;
}

static int f_kv_get(void *ctx, const char *ns, const char *key, void *buf, size_t *len)
{
    fake_kv_t *e = find(F(ctx), ns, key);
    if (e == NULL) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    if (buf == NULL || *len < e->len) {
        *len = e->len;
        return buf == NULL ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_TOO_SMALL;
    }
    memcpy(buf, e->val, e->len);
    *len = e->len;
    return ESPADMIN_PLATFORM_OK;
}

static int f_kv_set(void *ctx, const char *ns, const char *key, const void *val, size_t len)
{
    fake_t *f = F(ctx);
    if (strlen(ns) > 15 || strlen(key) > 15) {
        return ESPADMIN_PLATFORM_ERR;
    }
    if (f->fail_kv_set_key && strcmp(key, f->fail_key) == 0) {
        return ESPADMIN_PLATFORM_ERR;
    }
    fake_kv_t *e = find(f, ns, key);
    if (e == NULL) {
        for (size_t i = 0; i < f->nkv; i++) {
            if (f->kv[i].val == NULL) {
                e = &f->kv[i];
                break;
            }
        }
        if (e == NULL) {
            if (f->nkv == FAKE_MAX_KV) {
                return ESPADMIN_PLATFORM_ERR;
            }
            e = &f->kv[f->nkv++];
        }
        snprintf(e->ns, sizeof(e->ns), "%s", ns);
        snprintf(e->key, sizeof(e->key), "%s", key);
    } else {
        free(e->val);
    }
    e->val = malloc(len + 1);
    memcpy(e->val, val, len);
    e->val[len] = '\0';
    e->len = len;
    return ESPADMIN_PLATFORM_OK;
}

static int f_kv_erase(void *ctx, const char *ns, const char *key)
{
    fake_kv_t *e = find(F(ctx), ns, key);
    if (e) {
        free(e->val);
        e->val = NULL;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int f_kv_erase_all(void *ctx, const char *ns)
{
    fake_t *f = F(ctx);
    for (size_t i = 0; i < f->nkv; i++) {
        if (f->kv[i].val && strcmp(f->kv[i].ns, ns) == 0) {
            free(f->kv[i].val);
            f->kv[i].val = NULL;
        }
    }
    return ESPADMIN_PLATFORM_OK;
}

static int f_kv_commit(void *ctx, const char *ns)
{
    (void)ctx;
    (void)ns;
    return ESPADMIN_PLATFORM_OK;
}

static int f_connect(void *ctx, const espadmin_mqtt_config_t *cfg)
{
    fake_t *f = F(ctx);
    f->connects++;
    snprintf(f->last_password, sizeof(f->last_password), "%s", cfg->password);
    return f->connect_fails ? ESPADMIN_PLATFORM_ERR : ESPADMIN_PLATFORM_OK;
}

static void f_disconnect(void *ctx) { F(ctx)->disconnects++; }

static int f_subscribe(void *ctx, const char *filter, int qos)
{
    (void)qos;
    snprintf(F(ctx)->subscribed, sizeof(F(ctx)->subscribed), "%s", filter);
    return 1;
}

static int f_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
    fake_t *f = F(ctx);
    if (f->npubs == FAKE_MAX_PUBS) {
        return -1;
    }
    fake_pub_t *p = &f->pubs[f->npubs++];
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    p->payload = malloc(len + 1);
    memcpy(p->payload, payload, len);
    p->payload[len] = '\0';
    p->len = len;
    p->qos = qos;
    p->retain = retain;
    p->mid = qos ? ++f->next_mid : 0;
    return p->mid;
}

static int f_ota_begin(void *ctx, int64_t size)
{
    (void)size;
    if (F(ctx)->ota_begin_rc) {
        return F(ctx)->ota_begin_rc;
    }
    F(ctx)->ota_open = true;
    F(ctx)->ota_written = 0;
    return ESPADMIN_PLATFORM_OK;
}

static int f_ota_write(void *ctx, const void *data, size_t len)
{
    (void)data;
    if (F(ctx)->ota_write_rc) {
        return F(ctx)->ota_write_rc;
    }
    F(ctx)->ota_written += len;
    return ESPADMIN_PLATFORM_OK;
}

static int f_ota_finish(void *ctx)
{
    F(ctx)->ota_open = false;
    return ESPADMIN_PLATFORM_OK;
}

static void f_ota_abort(void *ctx) { F(ctx)->ota_open = false; }

static int f_ota_set_boot(void *ctx, const char *version)
{
    snprintf(F(ctx)->boot_version, sizeof(F(ctx)->boot_version), "%s", version);
    return ESPADMIN_PLATFORM_OK;
}

static int f_ota_mark_valid(void *ctx)
{
    F(ctx)->marked_valid = true;
    F(ctx)->boot = ESPADMIN_BOOT_VALID;
    return ESPADMIN_PLATFORM_OK;
}

static void f_ota_rollback(void *ctx) { F(ctx)->rollbacks++; }

static void f_running(void *ctx, char *buf, size_t cap) { snprintf(buf, cap, "%s", F(ctx)->running); }
static espadmin_boot_state_t f_boot_state(void *ctx) { return F(ctx)->boot; }

static int f_http_open(void *ctx, const char *url)
{
    (void)url;
    F(ctx)->http_open_ = true;
    F(ctx)->http_pos = 0;
    return ESPADMIN_PLATFORM_OK;
}

static int f_http_read(void *ctx, void *buf, size_t cap)
{
    fake_t *f = F(ctx);
    if (f->http_stall) {
        return ESPADMIN_PLATFORM_AGAIN;
    }
    if (f->http_fail) {
        return ESPADMIN_PLATFORM_ERR;
    }
    size_t n = f->http_len - f->http_pos;
    if (n > f->http_chunk) n = f->http_chunk;
    if (n > cap) n = cap;
    memcpy(buf, f->http_data + f->http_pos, n);
    f->http_pos += n;
    return (int)n;
}

static void f_http_close(void *ctx) { F(ctx)->http_open_ = false; }
static void f_last_error(void *ctx, char *buf, size_t cap) { snprintf(buf, cap, "%s", F(ctx)->err); }
static void f_restart(void *ctx) { F(ctx)->restarts++; }
static const char *f_reset_reason(void *ctx) { return F(ctx)->reset; }

static bool f_crash_info(void *ctx, espadmin_crash_t *out)
{
    if (!F(ctx)->has_crash) {
        return false;
    }
    *out = F(ctx)->crash;
    return true;
}

static void f_crash_clear(void *ctx)
{
    F(ctx)->has_crash = false;
    F(ctx)->crash_clears++;
}

static int f_coredump_upload(void *ctx, const char *url)
{
    fake_t *f = F(ctx);
    if (!f->has_crash || f->crash.size == 0) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    snprintf(f->coredump_url, sizeof(f->coredump_url), "%s", url);
    f->coredump_uploads++;
    f->coredump_result = 0;
    return ESPADMIN_PLATFORM_OK;
}

static int f_coredump_poll(void *ctx)
{
    fake_t *f = F(ctx);
    if (f->coredump_result == 0) {
        return ESPADMIN_PLATFORM_AGAIN;
    }
    if (f->coredump_result < 0) {
        snprintf(f->err, sizeof(f->err), "HTTP 403");
        return ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static void f_sysinfo(void *ctx, espadmin_sysinfo_t *si)
{
    (void)ctx;
    snprintf(si->chip_model, sizeof(si->chip_model), "linux-sim");
    snprintf(si->idf_version, sizeof(si->idf_version), "linux");
    snprintf(si->mac, sizeof(si->mac), "02:00:00:00:00:01");
    snprintf(si->ip, sizeof(si->ip), "127.0.0.1");
    si->has_rssi = true;
    si->rssi = -50;
    si->free_heap = 100000;
    si->min_free_heap = 90000;
}

void fake_init(fake_t *f)
{
    memset(f, 0, sizeof(*f));
    f->now = 1000;
    f->rand_state = 42;
    snprintf(f->running, sizeof(f->running), "v-1.0.0");
    f->boot = ESPADMIN_BOOT_VALID;
    f->reset = "poweron";
    f->http_chunk = 1000;
    espadmin_platform_t p = {
        .ctx = f,
        .now_ms = f_now,
        .wall_ms = f_wall,
        .random = f_random,
        .kv_get = f_kv_get,
        .kv_set = f_kv_set,
        .kv_erase = f_kv_erase,
        .kv_erase_all = f_kv_erase_all,
        .kv_commit = f_kv_commit,
        .mqtt_connect = f_connect,
        .mqtt_disconnect = f_disconnect,
        .mqtt_subscribe = f_subscribe,
        .mqtt_publish = f_publish,
        .ota_begin = f_ota_begin,
        .ota_write = f_ota_write,
        .ota_finish = f_ota_finish,
        .ota_abort = f_ota_abort,
        .ota_set_boot = f_ota_set_boot,
        .ota_mark_valid = f_ota_mark_valid,
        .ota_rollback = f_ota_rollback,
        .running_version = f_running,
        .boot_state = f_boot_state,
        .http_open = f_http_open,
        .http_read = f_http_read,
        .last_error = f_last_error,
        .http_close = f_http_close,
        .restart = f_restart,
        .reset_reason = f_reset_reason,
        .system_info = f_sysinfo,
        .sha256_begin = ossl_sha256_begin,
        .sha256_update = ossl_sha256_update,
        .sha256_finish = ossl_sha256_finish,
        .ed25519_verify = ossl_ed25519_verify,
        .aes_gcm_decrypt = ossl_aes_gcm_decrypt,
        .crash_info = f_crash_info,
        .crash_clear = f_crash_clear,
        .coredump_upload = f_coredump_upload,
        .coredump_poll = f_coredump_poll,
    };
    f->p = p;
}

void fake_clear_pubs(fake_t *f)
{
    for (size_t i = 0; i < f->npubs; i++) {
        free(f->pubs[i].payload);
    }
    f->npubs = 0;
}

void fake_free(fake_t *f)
{
    fake_clear_pubs(f);
    for (size_t i = 0; i < f->nkv; i++) {
        free(f->kv[i].val);
    }
}

void fake_kv_put(fake_t *f, const char *ns, const char *key, const char *val)
{
    f_kv_set(f, ns, key, val, strlen(val));
}

const char *fake_kv_get(fake_t *f, const char *ns, const char *key)
{
    fake_kv_t *e = find(f, ns, key);
    return e ? e->val : NULL;
}

void fake_provision(fake_t *f, const char *ota_pubkey_b64)
{
    fake_kv_put(f, "espadmin", "device_id", FAKE_DEVICE);
    fake_kv_put(f, "espadmin", "secret", "s3cret");
    /* the config_secret.json test key: 00 01 02 … 1f */
    fake_kv_put(f, "espadmin", "device_key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    fake_kv_put(f, "espadmin", "mqtt_host", "127.0.0.1");
    fake_kv_put(f, "espadmin", "mqtt_port", "1883");
    fake_kv_put(f, "espadmin", "topic_root", FAKE_ROOT);
    fake_kv_put(f, "espadmin", "ota_pubkey", ota_pubkey_b64 ? ota_pubkey_b64 : "");
}

size_t fake_count(fake_t *f, const char *kind)
{
    char suffix[32];
    snprintf(suffix, sizeof(suffix), "/up/%s", kind);
    size_t n = 0;
    for (size_t i = 0; i < f->npubs; i++) {
        size_t tl = strlen(f->pubs[i].topic), sl = strlen(suffix);
        if (tl >= sl && strcmp(f->pubs[i].topic + tl - sl, suffix) == 0) {
            n++;
        }
    }
    return n;
}

const fake_pub_t *fake_last(fake_t *f, const char *kind)
{
    char suffix[32];
    snprintf(suffix, sizeof(suffix), "/up/%s", kind);
    for (size_t i = f->npubs; i-- > 0;) {
        size_t tl = strlen(f->pubs[i].topic), sl = strlen(suffix);
        if (tl >= sl && strcmp(f->pubs[i].topic + tl - sl, suffix) == 0) {
            return &f->pubs[i];
        }
    }
    return NULL;
}
