/* The Linux platform: "NVS" in <state>/nvs.json (every value sealed with AES-256-GCM under a
 * key derived from the device key), two OTA slots as <state>/ota_0.bin and ota_1.bin with
 * ESP-IDF's image states in <state>/boot.json, libmosquitto for MQTT, libcurl for downloads,
 * re-exec for restarts. */
#include "platform_linux.h"

#include "crypto_openssl.h"
#include "espadmin/json.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HTTP_BUF 16384

typedef struct {
    linux_options_t opt;
    struct timespec start;
    uint8_t device_key[32];
    uint8_t nvs_key[32];
    cJSON *nvs; /* {"ns": {"key": "base64(nonce|ct|tag)"}} */
    char nvs_path[1024];
    char boot_path[1024];
    cJSON *boot; /* {"boot_slot":0,"slots":[{"version","state"},…],"running":true,"sw_restart":false} */
    const char *reset_reason;
    int ota_target;
    FILE *ota_file;
    /* MQTT */
    struct mosquitto *mosq;
    bool mqtt_active;
    char ca_path[1024];
    /* HTTP */
    CURLM *multi;
    CURL *easy;
    uint8_t http_buf[HTTP_BUF];
    size_t http_len;
    bool http_paused;
    bool http_done;
    bool http_failed;
    char http_errbuf[CURL_ERROR_SIZE];
    char *http_ca; /* the download's CA (PEM), NULL: the system roots */
    char err[96];  /* why the last ota_* or http_* call failed (last_error) */
    espadmin_agent_t *agent;
    bool in_log;
} linux_t;

static linux_t g;

/* ---- logging ---- */

static int64_t now_ms(void *ctx)
{
    (void)ctx;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)(t.tv_sec - g.start.tv_sec) * 1000 + (t.tv_nsec - g.start.tv_nsec) / 1000000;
}

static void emit(espadmin_level_t level, const char *tag, const char *msg)
{
    static const char letters[] = "EWIDV";
    fprintf(stderr, "%c (%lld) %s: %s\n", letters[level <= ESPADMIN_LEVEL_VERBOSE ? level : 2],
            (long long)now_ms(NULL), tag ? tag : "-", msg);
    fflush(stderr);
    if (g.agent && !g.in_log) {
        g.in_log = true; /* the core may log while capturing: no recursion */
        espadmin_log_capture(g.agent, level, tag, msg, strlen(msg));
        g.in_log = false;
    }
}

void linux_log(espadmin_level_t level, const char *tag, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    emit(level, tag, msg);
}

static void p_log(void *ctx, espadmin_level_t level, const char *tag, const char *msg)
{
    (void)ctx;
    emit(level, tag, msg);
}

void linux_platform_set_agent(espadmin_agent_t *a) { g.agent = a; }

/* ---- files ---- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        if (len) {
            *len = n;
        }
    }
    return buf;
}

static int write_file_atomic(const char *path, const char *data, size_t len)
{
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        return -1;
    }
    bool ok = fwrite(data, 1, len, f) == len;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int save_json(const char *path, const cJSON *j)
{
    char *s = cJSON_PrintUnformatted(j);
    if (s == NULL) {
        return -1;
    }
    int rc = write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

/* ---- NVS in a file ---- */

static int b64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0;
    if ((len + 2) / 3 * 4 + 1 > cap) {
        return -1;
    }
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[n++] = t[(v >> 18) & 63];
        out[n++] = t[(v >> 12) & 63];
        out[n++] = i + 1 < len ? t[(v >> 6) & 63] : '=';
        out[n++] = i + 2 < len ? t[v & 63] : '=';
    }
    out[n] = '\0';
    return (int)n;
}

static int nvs_save(void) { return save_json(g.nvs_path, g.nvs); }

static int kv_get(void *ctx, const char *ns, const char *key, void *buf, size_t *len)
{
    (void)ctx;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g.nvs, ns), key);
    if (!cJSON_IsString(v)) {
        return ESPADMIN_PLATFORM_NOT_FOUND;
    }
    size_t sl = strlen(v->valuestring);
    uint8_t *sealed = malloc(sl + 1);
    int n = sealed ? espadmin_base64_decode(v->valuestring, sl, sealed, sl) : -1;
    if (n < 28) {
        free(sealed);
        return ESPADMIN_PLATFORM_ERR;
    }
    size_t pl = (size_t)n - 28;
    uint8_t *plain = malloc(pl + 1);
    char aad[64];
    int al = snprintf(aad, sizeof(aad), "espadmin-nvs-v1\n%s\n%s", ns, key);
    bool ok = plain && ossl_aes_gcm_decrypt(NULL, g.nvs_key, sealed, aad, (size_t)al, sealed + 12, pl,
                                            sealed + 12 + pl, plain);
    free(sealed);
    if (!ok) {
        free(plain);
        return ESPADMIN_PLATFORM_ERR;
    }
    int rc = ESPADMIN_PLATFORM_OK;
    if (buf == NULL) {
        rc = ESPADMIN_PLATFORM_OK;
    } else if (*len < pl) {
        rc = ESPADMIN_PLATFORM_TOO_SMALL;
    } else {
        memcpy(buf, plain, pl);
    }
    *len = pl;
    free(plain);
    return rc;
}

static int kv_set(void *ctx, const char *ns, const char *key, const void *val, size_t len)
{
    (void)ctx;
    if (strlen(ns) > 15 || strlen(key) > 15 || key[0] == '\0') {
        return ESPADMIN_PLATFORM_ERR;
    }
    uint8_t *sealed = malloc(len + 28);
    char *b64 = malloc((len + 28) / 3 * 4 + 8);
    if (sealed == NULL || b64 == NULL) {
        free(sealed);
        free(b64);
        return ESPADMIN_PLATFORM_ERR;
    }
    char aad[64];
    int al = snprintf(aad, sizeof(aad), "espadmin-nvs-v1\n%s\n%s", ns, key);
    ossl_random(NULL, sealed, 12);
    bool ok = ossl_aes_gcm_encrypt(g.nvs_key, sealed, aad, (size_t)al, val, len, sealed + 12, sealed + 12 + len);
    ok = ok && b64_encode(sealed, len + 28, b64, (len + 28) / 3 * 4 + 8) >= 0;
    free(sealed);
    if (ok) {
        cJSON *n = cJSON_GetObjectItemCaseSensitive(g.nvs, ns);
        if (n == NULL) {
            n = cJSON_AddObjectToObject(g.nvs, ns);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(n, key);
        ok = cJSON_AddStringToObject(n, key, b64) != NULL;
    }
    free(b64);
    return ok && nvs_save() == 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int kv_erase(void *ctx, const char *ns, const char *key)
{
    (void)ctx;
    cJSON_DeleteItemFromObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(g.nvs, ns), key);
    return nvs_save() == 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int kv_erase_all(void *ctx, const char *ns)
{
    (void)ctx;
    cJSON_DeleteItemFromObjectCaseSensitive(g.nvs, ns);
    return nvs_save() == 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int kv_commit(void *ctx, const char *ns)
{
    (void)ctx;
    (void)ns;
    return nvs_save() == 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

/* ---- the simulated boot: slots and image states ---- */

static cJSON *slot(int i) { return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(g.boot, "slots"), i); }

static int boot_slot(void) { return cJSON_GetObjectItemCaseSensitive(g.boot, "boot_slot")->valueint; }

static const char *slot_str(int i, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(slot(i), k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void set_str(cJSON *o, const char *k, const char *v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddStringToObject(o, k, v);
}

static void set_num(cJSON *o, const char *k, double v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddNumberToObject(o, k, v);
}

static void set_bool(cJSON *o, const char *k, bool v)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, k);
    cJSON_AddBoolToObject(o, k, v);
}

static int boot_save(void) { return save_json(g.boot_path, g.boot); }

static void new_slot(cJSON *slots, const char *version, const char *state)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "version", version);
    cJSON_AddStringToObject(s, "state", state);
    cJSON_AddItemToArray(slots, s);
}

/* What the second-stage bootloader does, with ESP-IDF's rollback rules. */
static int bootloader(void)
{
    char *text = read_file(g.boot_path, NULL);
    g.boot = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (g.boot == NULL) {
        g.boot = cJSON_CreateObject();
        cJSON_AddNumberToObject(g.boot, "boot_slot", 0);
        cJSON *slots = cJSON_AddArrayToObject(g.boot, "slots");
        new_slot(slots, g.opt.first_version, "valid");
        new_slot(slots, "", "empty");
        cJSON_AddBoolToObject(g.boot, "running", false);
        cJSON_AddBoolToObject(g.boot, "sw_restart", false);
        char path[1100];
        snprintf(path, sizeof(path), "%s/ota_0.bin", g.opt.state_dir);
        write_file_atomic(path, g.opt.first_version, strlen(g.opt.first_version));
    }
    bool was_running = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g.boot, "running"));
    bool sw = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g.boot, "sw_restart"));
    g.reset_reason = sw ? "sw" : was_running ? "panic" : "poweron";
    int b = boot_slot();
    const char *state = slot_str(b, "state");
    if (strcmp(state, "new") == 0) {
        set_str(slot(b), "state", "pending_verify");
    } else if (strcmp(state, "pending_verify") == 0 || strcmp(state, "invalid") == 0 ||
               strcmp(state, "aborted") == 0) {
        /* the image had its chance and did not confirm itself: back to the other slot */
        set_str(slot(b), "state", "aborted");
        set_num(g.boot, "boot_slot", 1 - b);
        linux_log(ESPADMIN_LEVEL_WARN, "boot", "image %s in slot %d was not confirmed: rolled back to slot %d (%s)",
                  slot_str(b, "version"), b, 1 - b, slot_str(1 - b, "version"));
    }
    set_bool(g.boot, "running", true);
    set_bool(g.boot, "sw_restart", false);
    if (boot_save() != 0) {
        linux_log(ESPADMIN_LEVEL_ERROR, "boot", "cannot write %s", g.boot_path);
        return -1;
    }
    linux_log(ESPADMIN_LEVEL_INFO, "boot", "slot %d, image %s (%s), reset reason %s", boot_slot(),
              slot_str(boot_slot(), "version"), slot_str(boot_slot(), "state"), g.reset_reason);
    return 0;
}

bool linux_platform_should_fail_boot(void)
{
    int b = boot_slot();
    return g.opt.fail_boot_version && strcmp(slot_str(b, "version"), g.opt.fail_boot_version) == 0 &&
           strcmp(slot_str(b, "state"), "pending_verify") == 0;
}

void linux_platform_shutdown(void)
{
    if (g.boot) {
        set_bool(g.boot, "running", false);
        boot_save();
    }
}

static void restart(void *ctx)
{
    (void)ctx;
    set_bool(g.boot, "sw_restart", true);
    boot_save();
    if (g.mosq) {
        mosquitto_loop(g.mosq, 50, 1); /* flush the DISCONNECT */
    }
    linux_log(ESPADMIN_LEVEL_INFO, "sim", "restarting (re-exec)");
    execv("/proc/self/exe", g.opt.argv);
    linux_log(ESPADMIN_LEVEL_ERROR, "sim", "execv failed: %s", strerror(errno));
    _exit(1);
}

/* ---- crashes: <state>/coredump.json plays the ESP32's core dump partition ---- */

static void coredump_path(char *buf, size_t cap) { snprintf(buf, cap, "%s/coredump.json", g.opt.state_dir); }

/* The whole core dump: 24 KiB, more than one MQTT error report may carry. */
#define SIM_CORE_SIZE 24576
static void corefile_path(char *buf, size_t cap) { snprintf(buf, cap, "%s/coredump.bin", g.opt.state_dir); }

static void write_core_file(const char *reason, const char *backtrace)
{
    char *core = calloc(1, SIM_CORE_SIZE);
    if (core == NULL) {
        return;
    }
    int n = snprintf(core, SIM_CORE_SIZE, "ESPADMIN SIMULATED CORE DUMP\nreason: %s\nbacktrace: %s\n", reason, backtrace);
    for (size_t i = n > 0 ? (size_t)n : 0; i < SIM_CORE_SIZE; i++) {
        core[i] = (char)(i * 31 % 251); /* stands for the tasks' stacks */
    }
    char path[1100];
    corefile_path(path, sizeof(path));
    if (write_file_atomic(path, core, SIM_CORE_SIZE) != 0) {
        linux_log(ESPADMIN_LEVEL_ERROR, "sim", "cannot write %s", path);
    }
    free(core);
}

void linux_platform_panic(const char *reason, const char *backtrace)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "reason", reason);
    cJSON_AddStringToObject(d, "task", "main");
    cJSON *bt = cJSON_AddArrayToObject(d, "backtrace");
    char line[1024];
    size_t n = (size_t)snprintf(line, sizeof(line), "Backtrace:");
    const char *s = backtrace;
    while (s && *s) {
        char *end;
        unsigned long pc = strtoul(s, &end, 16), sp = 0;
        if (end == s) {
            break;
        }
        if (*end == ':') {
            s = end + 1;
            sp = strtoul(s, &end, 16);
        }
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "pc", (double)pc);
        cJSON_AddNumberToObject(f, "sp", (double)sp);
        cJSON_AddItemToArray(bt, f);
        if (n < sizeof(line)) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, " 0x%08lx:0x%08lx", pc, sp);
        }
        s = end + strspn(end, " ,");
    }
    char path[1100];
    coredump_path(path, sizeof(path));
    char *text = cJSON_PrintUnformatted(d);
    cJSON_Delete(d);
    if (text == NULL || write_file_atomic(path, text, strlen(text)) != 0) {
        linux_log(ESPADMIN_LEVEL_ERROR, "sim", "cannot write %s", path);
    }
    free(text);
    write_core_file(reason, backtrace);
    /* What ESP-IDF's panic handler prints, then a reboot that is not a software restart. */
    fprintf(stderr, "Guru Meditation Error: Core  0 panic'ed (%s). Exception was unhandled.\n\n%s\n\n", reason, line);
    fprintf(stderr, "Rebooting...\n");
    fflush(stderr);
    execv("/proc/self/exe", g.opt.argv);
    linux_log(ESPADMIN_LEVEL_ERROR, "sim", "execv failed: %s", strerror(errno));
    _exit(1);
}

static bool crash_info(void *ctx, espadmin_crash_t *out)
{
    (void)ctx;
    char path[1100];
    coredump_path(path, sizeof(path));
    char *text = read_file(path, NULL);
    cJSON *d = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (d == NULL) {
        return false;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, "reason");
    snprintf(out->reason, sizeof(out->reason), "%s", cJSON_IsString(v) ? v->valuestring : "");
    v = cJSON_GetObjectItemCaseSensitive(d, "task");
    snprintf(out->task, sizeof(out->task), "%s", cJSON_IsString(v) ? v->valuestring : "");
    const cJSON *f;
    cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(d, "backtrace"))
    {
        if (out->nframes == ESPADMIN_MAX_CRASH_FRAMES) {
            break;
        }
        const cJSON *pc = cJSON_GetObjectItemCaseSensitive(f, "pc");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(f, "sp");
        out->frames[out->nframes].pc = cJSON_IsNumber(pc) ? (uint32_t)pc->valuedouble : 0;
        out->frames[out->nframes].sp = cJSON_IsNumber(sp) ? (uint32_t)sp->valuedouble : 0;
        out->nframes++;
    }
    snprintf(out->summary, sizeof(out->summary), "simulated panic in task %s", out->task);
    cJSON_Delete(d);
    struct stat st;
    corefile_path(path, sizeof(path));
    out->size = stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
    return true;
}

static void crash_clear(void *ctx)
{
    (void)ctx;
    char path[1100];
    for (int i = 0; i < 2; i++) {
        if (i == 0) {
            coredump_path(path, sizeof(path));
        } else {
            corefile_path(path, sizeof(path));
        }
        if (unlink(path) != 0 && errno != ENOENT) {
            linux_log(ESPADMIN_LEVEL_WARN, "sim", "cannot erase %s: %s", path, strerror(errno));
        }
    }
}

static char *download_ca(const char *url);

static size_t http_discard(char *data, size_t size, size_t nmemb, void *userp)
{
    (void)data;
    (void)userp;
    return size * nmemb;
}

/* The upload runs in a thread of its own, as the ESP-IDF port's runs in a task: the agent's
 * loop only polls it. */
static struct {
    pthread_t thread;
    bool started;
    int state; /* atomic: 0 running, 1 done, -1 failed */
    char url[ESPADMIN_MAX_URL_LEN + 1];
    char *ca;
    char err[96];
} g_up;

static void *upload_thread(void *arg)
{
    (void)arg;
    char path[1100];
    corefile_path(path, sizeof(path));
    FILE *f = fopen(path, "rb");
    struct stat st;
    CURL *c = curl_easy_init();
    int result = -1;
    if (f == NULL || fstat(fileno(f), &st) != 0 || c == NULL) {
        snprintf(g_up.err, sizeof(g_up.err), "cannot read the core dump");
    } else {
        char errbuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_URL, g_up.url);
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READDATA, f);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)st.st_size);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_discard);
        struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/octet-stream");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
        if (g_up.ca) {
            struct curl_blob blob = {.data = g_up.ca, .len = strlen(g_up.ca), .flags = CURL_BLOB_NOCOPY};
            curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
        }
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK) {
            snprintf(g_up.err, sizeof(g_up.err), "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
        } else if (status < 200 || status > 299) {
            snprintf(g_up.err, sizeof(g_up.err), "HTTP %ld", status);
        } else {
            result = 1;
        }
        curl_slist_free_all(hdr);
    }
    if (c) {
        curl_easy_cleanup(c);
    }
    if (f) {
        fclose(f);
    }
    __atomic_store_n(&g_up.state, result, __ATOMIC_RELEASE);
    return NULL;
}

static int coredump_upload(void *ctx, const char *url)
{
    (void)ctx;
    char path[1100];
    corefile_path(path, sizeof(path));
    if (g_up.started || access(path, R_OK) != 0) {
        return g_up.started ? ESPADMIN_PLATFORM_ERR : ESPADMIN_PLATFORM_NOT_FOUND;
    }
    snprintf(g_up.url, sizeof(g_up.url), "%s", url);
    free(g_up.ca);
    g_up.ca = download_ca(url); /* the same trust as a firmware download from that host */
    g_up.err[0] = '\0';
    __atomic_store_n(&g_up.state, 0, __ATOMIC_RELEASE);
    if (pthread_create(&g_up.thread, NULL, upload_thread, NULL) != 0) {
        snprintf(g.err, sizeof(g.err), "cannot start the upload");
        return ESPADMIN_PLATFORM_ERR;
    }
    g_up.started = true;
    linux_log(ESPADMIN_LEVEL_INFO, "sim", "uploading the core dump");
    return ESPADMIN_PLATFORM_OK;
}

static int coredump_poll(void *ctx)
{
    (void)ctx;
    if (!g_up.started) {
        return ESPADMIN_PLATFORM_ERR;
    }
    int st = __atomic_load_n(&g_up.state, __ATOMIC_ACQUIRE);
    if (st == 0) {
        return ESPADMIN_PLATFORM_AGAIN;
    }
    pthread_join(g_up.thread, NULL);
    g_up.started = false;
    snprintf(g.err, sizeof(g.err), "%s", g_up.err);
    return st > 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static void running_version(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "%s", slot_str(boot_slot(), "version"));
}

static espadmin_boot_state_t boot_state(void *ctx)
{
    (void)ctx;
    return strcmp(slot_str(boot_slot(), "state"), "pending_verify") == 0 ? ESPADMIN_BOOT_PENDING_VERIFY
                                                                          : ESPADMIN_BOOT_VALID;
}

static void slot_path(int i, char *buf, size_t cap, bool tmp)
{
    snprintf(buf, cap, "%s/ota_%d.bin%s", g.opt.state_dir, i, tmp ? ".part" : "");
}

static int ota_begin(void *ctx, int64_t size)
{
    (void)ctx;
    (void)size;
    char path[1100];
    g.ota_target = 1 - boot_slot();
    slot_path(g.ota_target, path, sizeof(path), true);
    g.ota_file = fopen(path, "wb");
    if (g.ota_file == NULL) {
        snprintf(g.err, sizeof(g.err), "cannot create the slot file: %.60s", strerror(errno));
        return errno == ENOSPC ? ESPADMIN_PLATFORM_NO_SPACE : ESPADMIN_PLATFORM_ERR;
    }
    return ESPADMIN_PLATFORM_OK;
}

static int ota_write(void *ctx, const void *data, size_t len)
{
    (void)ctx;
    if (g.ota_file && fwrite(data, 1, len, g.ota_file) == len) {
        return ESPADMIN_PLATFORM_OK;
    }
    snprintf(g.err, sizeof(g.err), "slot write failed: %.60s", strerror(errno));
    return errno == ENOSPC ? ESPADMIN_PLATFORM_NO_SPACE : ESPADMIN_PLATFORM_ERR;
}

static int ota_finish(void *ctx)
{
    (void)ctx;
    char part[1100], path[1100];
    if (g.ota_file == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    bool ok = fflush(g.ota_file) == 0 && fsync(fileno(g.ota_file)) == 0;
    ok = fclose(g.ota_file) == 0 && ok;
    g.ota_file = NULL;
    slot_path(g.ota_target, part, sizeof(part), true);
    slot_path(g.ota_target, path, sizeof(path), false);
    return ok && rename(part, path) == 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static void ota_abort(void *ctx)
{
    (void)ctx;
    char part[1100];
    if (g.ota_file) {
        fclose(g.ota_file);
        g.ota_file = NULL;
    }
    slot_path(g.ota_target, part, sizeof(part), true);
    unlink(part);
}

static int ota_set_boot(void *ctx, const char *version)
{
    (void)ctx;
    cJSON *s = slot(g.ota_target);
    set_str(s, "version", version);
    set_str(s, "state", "new");
    set_num(g.boot, "boot_slot", g.ota_target);
    return boot_save() == 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int ota_mark_valid(void *ctx)
{
    (void)ctx;
    set_str(slot(boot_slot()), "state", "valid");
    return boot_save() == 0 ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static void ota_rollback(void *ctx)
{
    int b = boot_slot();
    set_str(slot(b), "state", "invalid");
    set_num(g.boot, "boot_slot", 1 - b);
    boot_save();
    restart(ctx);
}

static const char *reset_reason(void *ctx)
{
    (void)ctx;
    return g.reset_reason;
}

static void system_info(void *ctx, espadmin_sysinfo_t *si)
{
    (void)ctx;
    snprintf(si->chip_model, sizeof(si->chip_model), "linux-sim");
    si->chip_revision = 0;
    snprintf(si->idf_version, sizeof(si->idf_version), "linux");
    snprintf(si->project, sizeof(si->project), "espadmin-sim");
    /* a locally administered MAC derived from the device ID */
    uint8_t h[32];
    void *s = ossl_sha256_begin(NULL);
    const char *id = espadmin_device_id(g.agent);
    ossl_sha256_update(NULL, s, id, strlen(id));
    ossl_sha256_finish(NULL, s, h);
    snprintf(si->mac, sizeof(si->mac), "02:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4]);
    snprintf(si->ip, sizeof(si->ip), "127.0.0.1");
    si->has_rssi = true;
    si->rssi = -55;
    /* The agent process's own free heap (free bytes in glibc's malloc arenas), as
     * esp_get_free_heap_size() is the device's: the host's free memory says nothing about
     * the agent. */
    struct mallinfo2 mi = mallinfo2();
    si->free_heap = (int64_t)mi.fordblks;
    si->min_free_heap = -1;
}

/* ---- MQTT ---- */

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    (void)obj;
    if (rc == 0) {
        espadmin_on_connected(g.agent);
    } else {
        linux_log(ESPADMIN_LEVEL_WARN, "mqtt", "connection refused: %s", mosquitto_connack_string(rc));
        g.mqtt_active = false;
        espadmin_on_disconnected(g.agent);
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m;
    (void)obj;
    (void)rc;
    if (g.mqtt_active) {
        g.mqtt_active = false;
        espadmin_on_disconnected(g.agent);
    }
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m;
    (void)obj;
    espadmin_on_published(g.agent, mid);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m;
    (void)obj;
    espadmin_on_message(g.agent, msg->topic, msg->payload, (size_t)msg->payloadlen);
}

static void mqtt_disconnect(void *ctx)
{
    (void)ctx;
    if (g.mosq) {
        g.mqtt_active = false;
        mosquitto_disconnect(g.mosq);
        mosquitto_loop(g.mosq, 20, 1);
        mosquitto_destroy(g.mosq);
        g.mosq = NULL;
    }
}

static int mqtt_connect(void *ctx, const espadmin_mqtt_config_t *c)
{
    mqtt_disconnect(ctx);
    g.mosq = mosquitto_new(c->client_id, true, NULL);
    if (g.mosq == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    mosquitto_connect_callback_set(g.mosq, on_connect);
    mosquitto_disconnect_callback_set(g.mosq, on_disconnect);
    mosquitto_publish_callback_set(g.mosq, on_publish);
    mosquitto_message_callback_set(g.mosq, on_message);
    mosquitto_username_pw_set(g.mosq, c->username, c->password);
    mosquitto_will_set(g.mosq, c->will_topic, (int)c->will_len, c->will_payload, c->will_qos, c->will_retain);
    if (c->tls) {
        const char *ca = NULL;
        if (c->ca_pem && c->ca_pem[0]) {
            snprintf(g.ca_path, sizeof(g.ca_path), "%s/mqtt_ca.pem", g.opt.state_dir);
            write_file_atomic(g.ca_path, c->ca_pem, strlen(c->ca_pem));
            ca = g.ca_path;
        }
        if (mosquitto_tls_set(g.mosq, ca, ca ? NULL : "/etc/ssl/certs", NULL, NULL, NULL) != MOSQ_ERR_SUCCESS) {
            return ESPADMIN_PLATFORM_ERR;
        }
    }
    int rc = mosquitto_connect_async(g.mosq, c->host, c->port, c->keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
        linux_log(ESPADMIN_LEVEL_WARN, "mqtt", "connect: %s", mosquitto_strerror(rc));
        mosquitto_destroy(g.mosq);
        g.mosq = NULL;
        return ESPADMIN_PLATFORM_ERR;
    }
    g.mqtt_active = true;
    return ESPADMIN_PLATFORM_OK;
}

static int mqtt_subscribe(void *ctx, const char *filter, int qos)
{
    (void)ctx;
    int mid = 0;
    return g.mosq && mosquitto_subscribe(g.mosq, &mid, filter, qos) == MOSQ_ERR_SUCCESS ? mid : -1;
}

static int mqtt_publish(void *ctx, const char *topic, const void *payload, size_t len, int qos, bool retain)
{
    (void)ctx;
    int mid = 0;
    if (g.mosq == NULL ||
        mosquitto_publish(g.mosq, &mid, topic, (int)len, payload, qos, retain) != MOSQ_ERR_SUCCESS) {
        return -1;
    }
    return qos ? mid : 0;
}

/* ---- HTTP download: curl multi, paused while the bounded buffer is full ---- */

static size_t http_write(char *data, size_t size, size_t nmemb, void *userp)
{
    (void)userp;
    size_t n = size * nmemb;
    if (n > HTTP_BUF - g.http_len) {
        g.http_paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    memcpy(g.http_buf + g.http_len, data, n);
    g.http_len += n;
    return n;
}

static void http_close(void *ctx)
{
    (void)ctx;
    if (g.easy) {
        curl_multi_remove_handle(g.multi, g.easy);
        curl_easy_cleanup(g.easy);
        g.easy = NULL;
    }
    free(g.http_ca);
    g.http_ca = NULL;
}

static bool kv_string(const char *key, char *buf, size_t cap)
{
    size_t n = cap - 1;
    if (kv_get(NULL, ESPADMIN_NVS_NAMESPACE, key, buf, &n) == ESPADMIN_PLATFORM_OK && n > 0) {
        buf[n] = '\0';
        return true;
    }
    return false;
}

static bool config_string(const char *key, char *buf, size_t cap)
{
    espadmin_cfg_type_t type;
    return g.agent && espadmin_config_get(g.agent, key, &type, buf, cap) == ESPADMIN_PLATFORM_OK &&
           type == ESPADMIN_CFG_STRING && buf[0];
}

/* The CA for a download, as on ESP-IDF: config "_ota_ca", else provisioning "ota_ca"; for a
 * URL under the provisioned https server_url, the broker's CA (config "_mqtt_ca", else
 * provisioning "mqtt_ca"); else NULL (the system roots). */
static char *download_ca(const char *url)
{
    size_t cap = ESPADMIN_MAX_CONFIG_VALUE_LEN + 1;
    char *ca = malloc(cap);
    if (ca == NULL) {
        return NULL;
    }
    if (config_string("_ota_ca", ca, cap) || kv_string("ota_ca", ca, cap)) {
        return ca;
    }
    char server[258];
    if (kv_string("server_url", server, sizeof(server)) && strncmp(server, "https://", 8) == 0) {
        size_t k = strlen(server);
        while (k > 8 && server[k - 1] == '/') {
            k--;
        }
        bool same = strlen(url) >= k && strncmp(url, server, k) == 0 &&
                    (url[k] == '/' || url[k] == '\0' || url[k] == '?');
        if (same && (config_string("_mqtt_ca", ca, cap) || kv_string("mqtt_ca", ca, cap))) {
            return ca;
        }
    }
    free(ca);
    return NULL;
}

/* Why a transfer failed, in the words of the protocol's message field. */
static void http_describe(CURLcode rc)
{
    long status = 0;
    switch (rc) {
    case CURLE_HTTP_RETURNED_ERROR:
        curl_easy_getinfo(g.easy, CURLINFO_RESPONSE_CODE, &status);
        snprintf(g.err, sizeof(g.err), "HTTP %ld", status);
        return;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(g.err, sizeof(g.err), "too many redirects");
        return;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(g.err, sizeof(g.err), "timed out");
        return;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        snprintf(g.err, sizeof(g.err), "TLS failure: %.80s", g.http_errbuf[0] ? g.http_errbuf : curl_easy_strerror(rc));
        return;
    default:
        snprintf(g.err, sizeof(g.err), "%.90s", g.http_errbuf[0] ? g.http_errbuf : curl_easy_strerror(rc));
    }
}

static void last_error(void *ctx, char *buf, size_t cap)
{
    (void)ctx;
    snprintf(buf, cap, "%s", g.err);
    g.err[0] = '\0';
}

static int http_open(void *ctx, const char *url)
{
    http_close(ctx);
    g.easy = curl_easy_init();
    if (g.easy == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    g.http_len = 0;
    g.http_paused = g.http_done = g.http_failed = false;
    g.http_errbuf[0] = '\0';
    g.err[0] = '\0';
    curl_easy_setopt(g.easy, CURLOPT_ERRORBUFFER, g.http_errbuf);
    g.http_ca = download_ca(url);
    if (g.http_ca) {
        struct curl_blob blob = {.data = g.http_ca, .len = strlen(g.http_ca), .flags = CURL_BLOB_NOCOPY};
        curl_easy_setopt(g.easy, CURLOPT_CAINFO_BLOB, &blob);
    }
    curl_easy_setopt(g.easy, CURLOPT_URL, url);
    curl_easy_setopt(g.easy, CURLOPT_WRITEFUNCTION, http_write);
    curl_easy_setopt(g.easy, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(g.easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(g.easy, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(g.easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(g.easy, CURLOPT_CONNECTTIMEOUT, 20L);
    curl_easy_setopt(g.easy, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(g.easy, CURLOPT_LOW_SPEED_TIME, 60L);
    return curl_multi_add_handle(g.multi, g.easy) == CURLM_OK ? ESPADMIN_PLATFORM_OK : ESPADMIN_PLATFORM_ERR;
}

static int http_read(void *ctx, void *buf, size_t cap)
{
    (void)ctx;
    if (g.easy == NULL) {
        return ESPADMIN_PLATFORM_ERR;
    }
    if (g.http_len == 0 && !g.http_done) {
        if (g.http_paused) {
            g.http_paused = false;
            curl_easy_pause(g.easy, CURLPAUSE_CONT);
        }
        int running = 0;
        curl_multi_perform(g.multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(g.multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE) {
                g.http_done = true;
                if (m->data.result != CURLE_OK) {
                    g.http_failed = true;
                    http_describe(m->data.result);
                    linux_log(ESPADMIN_LEVEL_WARN, "http", "download: %s", curl_easy_strerror(m->data.result));
                }
            }
        }
    }
    if (g.http_len > 0) {
        size_t n = g.http_len < cap ? g.http_len : cap;
        memcpy(buf, g.http_buf, n);
        memmove(g.http_buf, g.http_buf + n, g.http_len - n);
        g.http_len -= n;
        return (int)n;
    }
    if (g.http_done) {
        return g.http_failed ? ESPADMIN_PLATFORM_ERR : 0;
    }
    return ESPADMIN_PLATFORM_AGAIN;
}

/* ---- the rest ---- */

static int64_t wall_ms(void *ctx)
{
    (void)ctx;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void linux_platform_poll(int timeout_ms)
{
    if (g.mosq) {
        int rc = mosquitto_loop(g.mosq, timeout_ms, 1);
        if (rc != MOSQ_ERR_SUCCESS && g.mqtt_active) {
            g.mqtt_active = false;
            espadmin_on_disconnected(g.agent);
        }
    } else {
        struct timespec t = {0, (long)timeout_ms * 1000000L};
        nanosleep(&t, NULL); /* idle pacing of the event loop, not synchronisation */
    }
    if (g.easy && !g.http_paused && !g.http_done) {
        int running = 0;
        curl_multi_perform(g.multi, &running);
    }
}

static const char *bundle_str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int linux_platform_init(const linux_options_t *opt, espadmin_platform_t *p)
{
    memset(&g, 0, sizeof(g));
    g.opt = *opt;
    clock_gettime(CLOCK_MONOTONIC, &g.start);
    mkdir(opt->state_dir, 0700);
    snprintf(g.nvs_path, sizeof(g.nvs_path), "%s/nvs.json", opt->state_dir);
    snprintf(g.boot_path, sizeof(g.boot_path), "%s/boot.json", opt->state_dir);

    char *text = read_file(opt->bundle_path, NULL);
    cJSON *b = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *mqtt = cJSON_GetObjectItemCaseSensitive(b, "mqtt");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(b, "v");
    if (b == NULL || !cJSON_IsObject(mqtt) || !cJSON_IsNumber(ver) || ver->valueint != 1) {
        linux_log(ESPADMIN_LEVEL_ERROR, "sim", "cannot read the provisioning bundle %s", opt->bundle_path);
        cJSON_Delete(b);
        return -1;
    }
    const char *key = bundle_str(b, "device_key");
    if (espadmin_base64_decode(key, strlen(key), g.device_key, sizeof(g.device_key)) != 32) {
        linux_log(ESPADMIN_LEVEL_ERROR, "sim", "bundle: device_key must be base64 of 32 bytes");
        cJSON_Delete(b);
        return -1;
    }
    /* the at-rest key: SHA-256("espadmin-nvs-v1" ‖ device key) */
    void *h = ossl_sha256_begin(NULL);
    ossl_sha256_update(NULL, h, "espadmin-nvs-v1", 15);
    ossl_sha256_update(NULL, h, g.device_key, 32);
    ossl_sha256_finish(NULL, h, g.nvs_key);

    char *nvs_text = read_file(g.nvs_path, NULL);
    g.nvs = nvs_text ? cJSON_Parse(nvs_text) : NULL;
    free(nvs_text);
    if (g.nvs == NULL) {
        g.nvs = cJSON_CreateObject();
    }
    if (bootloader() != 0) {
        cJSON_Delete(b);
        return -1;
    }
    /* the provisioning namespace, as nvs_partition_gen would have written it */
    const cJSON *port = cJSON_GetObjectItemCaseSensitive(mqtt, "port");
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", cJSON_IsNumber(port) ? port->valueint : 1883);
    struct {
        const char *key;
        const char *val;
    } prov[] = {
        {"device_id", bundle_str(b, "device_id")},
        {"secret", bundle_str(b, "secret")},
        {"device_key", key},
        {"mqtt_host", bundle_str(mqtt, "host")},
        {"mqtt_port", port_s},
        {"mqtt_tls", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mqtt, "tls")) ? "1" : "0"},
        {"mqtt_ca", bundle_str(mqtt, "ca_pem")},
        {"topic_root", bundle_str(mqtt, "topic_root")},
        {"server_url", bundle_str(b, "server_url")},
        {"ota_pubkey", bundle_str(b, "ota_public_key")},
        {"ota_ca", bundle_str(b, "ota_ca_pem")},
    };
    for (size_t i = 0; i < sizeof(prov) / sizeof(prov[0]); i++) {
        if (kv_set(NULL, ESPADMIN_NVS_NAMESPACE, prov[i].key, prov[i].val, strlen(prov[i].val)) != 0) {
            linux_log(ESPADMIN_LEVEL_ERROR, "sim", "cannot write %s", g.nvs_path);
            cJSON_Delete(b);
            return -1;
        }
    }
    cJSON_Delete(b);
    mosquitto_lib_init();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    g.multi = curl_multi_init();

    espadmin_platform_t pl = {
        .ctx = &g,
        .now_ms = now_ms,
        .wall_ms = wall_ms,
        .random = ossl_random,
        .kv_get = kv_get,
        .kv_set = kv_set,
        .kv_erase = kv_erase,
        .kv_erase_all = kv_erase_all,
        .kv_commit = kv_commit,
        .mqtt_connect = mqtt_connect,
        .mqtt_disconnect = mqtt_disconnect,
        .mqtt_subscribe = mqtt_subscribe,
        .mqtt_publish = mqtt_publish,
        .ota_begin = ota_begin,
        .ota_write = ota_write,
        .ota_finish = ota_finish,
        .ota_abort = ota_abort,
        .ota_set_boot = ota_set_boot,
        .ota_mark_valid = ota_mark_valid,
        .ota_rollback = ota_rollback,
        .running_version = running_version,
        .boot_state = boot_state,
        .http_open = http_open,
        .http_read = http_read,
        .last_error = last_error,
        .http_close = http_close,
        .restart = restart,
        .reset_reason = reset_reason,
        .system_info = system_info,
        .log = p_log,
        .sha256_begin = ossl_sha256_begin,
        .sha256_update = ossl_sha256_update,
        .sha256_finish = ossl_sha256_finish,
        .ed25519_verify = ossl_ed25519_verify,
        .aes_gcm_decrypt = ossl_aes_gcm_decrypt,
        .crash_info = crash_info,
        .crash_clear = crash_clear,
        .coredump_upload = coredump_upload,
        .coredump_poll = coredump_poll,
    };
    *p = pl;
    return 0;
}
