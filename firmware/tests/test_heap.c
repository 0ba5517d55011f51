/* Heap use of the agent core, counted through the espadmin_malloc seam (alloc_count.c): the
 * heap the agent holds from init on, the peak each command adds, the JSON working-memory cap,
 * and that a failed allocation anywhere is refused cleanly (no crash, no leak).
 *
 * The figures are printed in a "footprint:" block; docs/benchmarks.md ("Firmware footprint")
 * quotes them. They are bytes requested on this (64-bit) host, an upper bound for a 32-bit
 * target, where pointers and size_t are half as wide; allocator headers are not counted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "alloc_count.h"
#include "crypto_openssl.h"
#include "espadmin/agent.h"
#include "espadmin/json.h"
#include "espadmin/util.h"
#include "fake_platform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The budgets of the profile (include/espadmin/profile.h; docs/benchmarks.md): the small one
 * (ESP8266) also bounds the peak any command adds. */
#ifdef ESPADMIN_PROFILE_SMALL
#define HEAP_AT_INIT_BUDGET (12 * 1024)
#define PEAK_BUDGET (20 * 1024)
#else
#define HEAP_AT_INIT_BUDGET (32 * 1024)
#define PEAK_BUDGET SIZE_MAX
#endif
/* the config of the failed-allocation test: half the protocol's limit, or what the device takes */
#define OOM_CONFIG_SIZE (ESPADMIN_DEVICE_MAX_COMMAND > 8192 ? 8192 : ESPADMIN_DEVICE_MAX_COMMAND - 256)
#define HASH_A "a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5"
/* "hunter2" sealed for wifi_pass at config version 7 with the fake's device key */
#define SEALED_WIFI_PASS_V7 "AAECAwQFBgcICQoLZWqjdbGAsCmvSapKOiV2YVZQTYI1JXTe5g=="

typedef struct {
    fake_t f;
    espadmin_agent_t *a;
} ctx_t;

/* Figures gathered by the tests, printed once at the end. */
typedef struct {
    size_t init;
    size_t init_ca;
    size_t online;
    size_t peak_restart;
    size_t peak_debug;
    size_t held_debug;
    size_t peak_update;
    size_t peak_config;
    size_t config_len;
    size_t peak_refused;
} figures_t;

static figures_t g_fig;

static uint8_t g_image[64 * 1024];

static int setup(void **state)
{
    ctx_t *c = calloc(1, sizeof(*c));
    fake_init(&c->f);
    fake_provision(&c->f, NULL);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    espadmin_agent_free(c->a);
    assert_int_equal(alloc_live(), 0); /* everything the core took is given back */
    fake_free(&c->f);
    free(c);
    return 0;
}

static void boot_online(ctx_t *c)
{
    assert_int_equal(alloc_live(), 0);
    c->a = espadmin_agent_init(&c->f.p, NULL);
    assert_non_null(c->a);
    espadmin_tick(c->a, c->f.now);
    espadmin_on_connected(c->a);
    espadmin_tick(c->a, c->f.now);
}

static const char *last_field(ctx_t *c, const char *kind, const char *key, char *out, size_t cap)
{
    const fake_pub_t *p = fake_last(&c->f, kind);
    if (p == NULL) {
        return NULL;
    }
    ej_doc_t doc;
    assert_int_equal(ej_parse(&doc, p->payload, p->len), EJ_OK);
    const ej_node_t *v = ej_get(doc.root, key);
    out[0] = '\0';
    if (v != NULL && v->type == EJ_STRING) {
        snprintf(out, cap, "%s", v->str);
    } else if (v != NULL) {
        size_t n = ej_compact(v, out, cap - 1);
        out[n < cap - 1 ? n : cap - 1] = '\0';
    }
    ej_free(&doc);
    return out;
}

/* Delivers msg the way esp-mqtt does when it exceeds its buffer: in fragments of frag bytes. */
static int deliver(ctx_t *c, const char *msg, size_t len, size_t frag)
{
    int rc = 0;
    for (size_t off = 0; off < len || (off == 0 && len == 0); off += frag) {
        size_t n = len - off < frag ? len - off : frag;
        rc = espadmin_on_message_fragment(c->a, off == 0 ? FAKE_CMD_TOPIC : NULL,
                                          off == 0 ? strlen(FAKE_CMD_TOPIC) : 0, len, off, msg + off, n);
        if (rc != 0 || len == 0) {
            break;
        }
    }
    return rc;
}

/* The peak the command adds over the heap held before it; the tick runs until the agent is
 * idle again (downloads included). */
static void run_ticks(ctx_t *c)
{
    for (int i = 0; i < 2000; i++) {
        c->f.now += 10;
        espadmin_tick(c->a, c->f.now);
    }
}

static size_t run_command(ctx_t *c, const char *msg, size_t frag)
{
    size_t before = alloc_live();
    alloc_reset_peak();
    assert_int_equal(deliver(c, msg, strlen(msg), frag), 0);
    run_ticks(c);
    return alloc_peak() - before;
}

/* A config command of exactly `size` bytes with 64 entries of every type (one a secret when
 * secret is true, which needs version 7); string values are padded to reach the size. */
static size_t config_cmd(char *out, size_t cap, const char *id, int64_t version, bool secret, size_t size)
{
    static const char *const kinds[] = {"int", "float", "bool", "json", "string"};
    size_t pad = 0, strings = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t n = (size_t)snprintf(out, cap,
                                    "{\"v\":1,\"id\":\"%s\",\"name\":\"config\",\"expires_at\":9000000000000,"
                                    "\"params\":{\"version\":%lld,\"hash\":\"" HASH_A "\",\"entries\":[",
                                    id, (long long)version);
        size_t seen = 0;
        for (int i = 0; i < ESPADMIN_MAX_CONFIG_ENTRIES; i++) {
            char key[16];
            snprintf(key, sizeof(key), "key_%02d", i);
            const char *sep = i ? "," : "";
            const char *kind = kinds[i % 5];
            if (secret && i == 0) {
                n += (size_t)snprintf(out + n, cap - n,
                                      "%s{\"key\":\"wifi_pass\",\"type\":\"string\",\"value\":\"" SEALED_WIFI_PASS_V7
                                      "\",\"secret\":true}", sep);
            } else if (strcmp(kind, "string") == 0) {
                size_t want = pass == 0 ? 0 : pad / strings + (seen == 0 ? pad % strings : 0);
                n += (size_t)snprintf(out + n, cap - n, "%s{\"key\":\"%s\",\"type\":\"string\",\"value\":\"", sep, key);
                assert_true(n + want < cap);
                memset(out + n, 'a' + (char)(i % 26), want);
                n += want;
                n += (size_t)snprintf(out + n, cap - n, "\"}");
                seen++;
            } else {
                const char *value = strcmp(kind, "int") == 0     ? "-9007199254740991"
                                    : strcmp(kind, "float") == 0 ? "2.5e-3"
                                    : strcmp(kind, "bool") == 0  ? "true"
                                                                 : "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}";
                n += (size_t)snprintf(out + n, cap - n, "%s{\"key\":\"%s\",\"type\":\"%s\",\"value\":%s}", sep,
                                      key, kind, value);
            }
        }
        n += (size_t)snprintf(out + n, cap - n, "]}}");
        if (pass == 0) {
            assert_true(n <= size);
            pad = size - n;
            strings = seen;
        } else {
            assert_int_equal(n, size);
            return n;
        }
    }
    return 0;
}

static void test_heap_at_init_within_budget(void **state)
{
    ctx_t *c = *state;
    c->a = espadmin_agent_init(&c->f.p, NULL);
    assert_non_null(c->a);
    g_fig.init = alloc_live();
    espadmin_tick(c->a, c->f.now);
    espadmin_on_connected(c->a);
    espadmin_tick(c->a, c->f.now);
    g_fig.online = alloc_live();
    assert_true(g_fig.init <= HEAP_AT_INIT_BUDGET);
    /* connecting and the boot publications leave nothing allocated behind */
    assert_int_equal(g_fig.online, g_fig.init);

    /* a provisioned CA is kept for every reconnection: one the size of ISRG Root X1's PEM */
    espadmin_agent_free(c->a);
    c->a = NULL;
    char pem[1940];
    memset(pem, 'A', sizeof(pem) - 1);
    pem[sizeof(pem) - 1] = '\0';
    fake_kv_put(&c->f, "espadmin", "mqtt_ca", pem);
    c->a = espadmin_agent_init(&c->f.p, NULL);
    assert_non_null(c->a);
    g_fig.init_ca = alloc_live();
    assert_int_equal(g_fig.init_ca, g_fig.init + sizeof(pem));
    assert_true(g_fig.init_ca <= HEAP_AT_INIT_BUDGET);
}

static void test_init_survives_every_failed_allocation(void **state)
{
    ctx_t *c = *state;
    size_t calls = alloc_calls();
    c->a = espadmin_agent_init(&c->f.p, NULL);
    assert_non_null(c->a);
    size_t n = alloc_calls() - calls;
    espadmin_agent_free(c->a);
    c->a = NULL;
    for (size_t k = 1; k <= n; k++) {
        alloc_fail_nth(k);
        espadmin_agent_t *a = espadmin_agent_init(&c->f.p, NULL);
        assert_true(alloc_failed());
        assert_null(a); /* every allocation of init is needed: refused, nothing leaked */
        assert_int_equal(alloc_live(), 0);
    }
    alloc_fail_nth(0);
}

static void test_peak_per_command(void **state)
{
    ctx_t *c = *state;
    boot_online(c);
    size_t base = alloc_live();
    char out[512];

    g_fig.peak_debug = run_command(
        c, "{\"v\":1,\"id\":\"dbg1\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":true}}", 4096);
    assert_string_equal(last_field(c, "ack", "result", out, sizeof(out)), "ok");
    g_fig.held_debug = alloc_live() - base; /* the log ring, while debug is on */
    assert_int_equal(g_fig.held_debug, ESPADMIN_DEFAULT_LOG_RING);
    run_command(c, "{\"v\":1,\"id\":\"dbg2\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":false}}",
                4096);
    assert_int_equal(alloc_live(), base);

    for (size_t i = 0; i < sizeof(g_image); i++) {
        g_image[i] = (uint8_t)(i * 13);
    }
    uint8_t h[32];
    char hex[65];
    void *s = ossl_sha256_begin(NULL);
    ossl_sha256_update(NULL, s, g_image, sizeof(g_image));
    ossl_sha256_finish(NULL, s, h);
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    }
    char url[ESPADMIN_MAX_URL_LEN + 1];
    memcpy(url, "https://updates.example.com/", 28);
    memset(url + 28, 'u', sizeof(url) - 1 - 28); /* the longest URL the protocol allows */
    url[sizeof(url) - 1] = '\0';
    char *cmd = malloc(8192);
    snprintf(cmd, 8192,
             "{\"v\":1,\"id\":\"up1\",\"name\":\"update\",\"expires_at\":9000000000000,\"params\":{\"version\":\"v-2.0.0\","
             "\"size\":%zu,\"sha256\":\"%s\",\"url\":\"%s\",\"url_expires_at\":0}}",
             sizeof(g_image), hex, url);
    c->f.http_data = g_image;
    c->f.http_len = sizeof(g_image);
    c->f.http_pos = 0;
    g_fig.peak_update = run_command(c, cmd, 1024);
    free(cmd);
    assert_int_equal(c->f.ota_written, sizeof(g_image));
    assert_string_equal(last_field(c, "ota", "state", out, sizeof(out)), "rebooting");
    assert_int_equal(alloc_live(), base); /* the download chunk is gone with the download */

    g_fig.peak_restart = run_command(
        c, "{\"v\":1,\"id\":\"rs1\",\"name\":\"restart\",\"expires_at\":9000000000000}", 4096);
    assert_int_equal(alloc_live(), base);
    /* the budget bounds the whole heap during a command: what is held plus what it adds */
    assert_true(base + g_fig.peak_debug <= PEAK_BUDGET);
    assert_true(base + g_fig.peak_update <= PEAK_BUDGET);
    assert_true(base + g_fig.peak_restart <= PEAK_BUDGET);
}

static void test_max_size_config_command(void **state)
{
    ctx_t *c = *state;
    boot_online(c);
    size_t base = alloc_live();
    char *cmd = malloc(ESPADMIN_DEVICE_MAX_COMMAND + 1);
    g_fig.config_len = config_cmd(cmd, ESPADMIN_DEVICE_MAX_COMMAND + 1, "cfgmax", 7, true, ESPADMIN_DEVICE_MAX_COMMAND);
    /* esp-mqtt's default 1 KiB buffer: the command arrives in 16 fragments */
    g_fig.peak_config = run_command(c, cmd, 1024);
    assert_true(base + g_fig.peak_config <= PEAK_BUDGET);
    char out[512];
    assert_string_equal(last_field(c, "ack", "id", out, sizeof(out)), "cfgmax");
    assert_string_equal(last_field(c, "ack", "result", out, sizeof(out)), "ok");
    assert_int_equal(espadmin_config_version(c->a), 7);
    char buf[64];
    assert_int_equal(espadmin_config_get(c->a, "wifi_pass", NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "hunter2");
    assert_int_equal(espadmin_config_get(c->a, "key_01", NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "2.5e-3");
    assert_int_equal(espadmin_config_get(c->a, "key_03", NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}");
    assert_int_equal(alloc_live(), base);
    /* one byte more is refused by size, before anything is allocated */
    cmd[g_fig.config_len] = ' ';
    alloc_reset_peak();
    assert_true(deliver(c, cmd, ESPADMIN_DEVICE_MAX_COMMAND + 1, 1024) < 0);
    assert_int_equal(alloc_peak(), alloc_live());
    espadmin_stats_t st;
    espadmin_get_stats(c->a, &st);
    assert_int_equal(st.inbox_dropped, 1);
    free(cmd);
}

static void test_json_over_the_cap_is_refused_and_counted(void **state)
{
    ctx_t *c = *state;
    boot_online(c);
    size_t base = alloc_live();
    /* within the size limit, but an ignored field with more values than the cap allows */
    size_t cap = 16 * 1024;
    char *cmd = malloc(cap);
    size_t n = (size_t)snprintf(cmd, cap, "{\"v\":1,\"id\":\"big1\",\"name\":\"restart\",\"expires_at\":9000000000000,\"x\":[0");
    for (int i = 1; i <= ESPADMIN_COMMAND_JSON_NODES; i++) {
        n += (size_t)snprintf(cmd + n, cap - n, ",0");
    }
    n += (size_t)snprintf(cmd + n, cap - n, "]}");
    assert_true(n < ESPADMIN_DEVICE_MAX_COMMAND);
    ej_doc_t doc;
    assert_int_equal(ej_parse_partial(&doc, cmd, n, ESPADMIN_COMMAND_JSON_LEVELS, ESPADMIN_COMMAND_JSON_NODES),
                     EJ_ERR_TOO_LARGE);
    espadmin_command_t *decoded = espadmin_command_new(n);
    espadmin_perr_t err;
    assert_int_equal(espadmin_command_decode(cmd, n, decoded, &err), ESPADMIN_E_TOO_LARGE);
    espadmin_free(decoded);
    fake_clear_pubs(&c->f);
    g_fig.peak_refused = run_command(c, cmd, 1024);
    assert_true(base + g_fig.peak_refused <= PEAK_BUDGET);
    espadmin_stats_t st;
    espadmin_get_stats(c->a, &st);
    assert_int_equal(st.commands_refused, 1);
    assert_int_equal(st.json_too_large, 1);
    assert_int_equal(c->f.restarts, 0);
    assert_int_equal(alloc_live(), base);
    /* the working memory it would have taken was never allocated: the peak is the message and
     * the command it was to be decoded into */
    assert_int_equal(g_fig.peak_refused, n + offsetof(espadmin_command_t, values) + ESPADMIN_COMMAND_VALUES_CAP(n));
    free(cmd);
}

/* Every allocation a command makes is made to fail in turn: the agent refuses the work (an
 * error ack, or a dropped message or uplink, counted), never crashes, leaks nothing, and the
 * config stays all or nothing. */
static void test_commands_survive_every_failed_allocation(void **state)
{
    ctx_t *c = *state;
    boot_online(c);
    size_t base = alloc_live();
    char *cmd = malloc(ESPADMIN_DEVICE_MAX_COMMAND + 1);
    char id[16];
    int64_t version = 100;
    size_t calls = alloc_calls();
    snprintf(id, sizeof(id), "oom%lld", (long long)version);
    config_cmd(cmd, ESPADMIN_DEVICE_MAX_COMMAND + 1, id, version, false, OOM_CONFIG_SIZE);
    run_command(c, cmd, 1024);
    size_t n = alloc_calls() - calls;
    assert_true(n >= 5);
    char out[512];
    assert_string_equal(last_field(c, "ack", "result", out, sizeof(out)), "ok");
    int64_t applied = version;
    for (size_t k = 1; k <= n; k++) {
        version++;
        snprintf(id, sizeof(id), "oom%lld", (long long)version);
        config_cmd(cmd, ESPADMIN_DEVICE_MAX_COMMAND + 1, id, version, false, OOM_CONFIG_SIZE);
        espadmin_stats_t before, after;
        espadmin_get_stats(c->a, &before);
        size_t pubs = c->f.npubs;
        alloc_fail_nth(k);
        size_t len = strlen(cmd);
        for (size_t off = 0; off < len; off += 1024) {
            espadmin_on_message_fragment(c->a, off == 0 ? FAKE_CMD_TOPIC : NULL, off == 0 ? strlen(FAKE_CMD_TOPIC) : 0,
                                         len, off, cmd + off, len - off < 1024 ? len - off : 1024);
        }
        c->f.now += 10;
        espadmin_tick(c->a, c->f.now);
        assert_true(alloc_failed());
        alloc_fail_nth(0);
        espadmin_get_stats(c->a, &after);
        bool acked = c->f.npubs > pubs && strcmp(last_field(c, "ack", "id", out, sizeof(out)), id) == 0;
        bool counted = after.inbox_dropped > before.inbox_dropped || after.no_memory > before.no_memory ||
                       after.uplinks_dropped > before.uplinks_dropped;
        if (!acked && !counted) {
            fail_msg("allocation %zu of %zu failed without an ack or a count", k, n);
        }
        assert_int_equal(alloc_live(), base);
        /* all or nothing: the new version only with every entry written */
        int64_t now_version = espadmin_config_version(c->a);
        if (now_version == version) {
            assert_int_equal(espadmin_config_get(c->a, "key_63", NULL, out, sizeof(out)), 0);
        } else {
            assert_int_equal(now_version, applied);
        }
        applied = now_version;
    }
    free(cmd);
}

/* The same for an update, downloaded to the end: a failed allocation fails the update with a
 * reason, or drops an uplink (counted); the download's buffers never outlive it. */
static void test_update_survives_every_failed_allocation(void **state)
{
    ctx_t *c = *state;
    boot_online(c);
    size_t base = alloc_live();
    for (size_t i = 0; i < 8192; i++) {
        g_image[i] = (uint8_t)(i * 31);
    }
    uint8_t h[32];
    char hex[65];
    void *s = ossl_sha256_begin(NULL);
    ossl_sha256_update(NULL, s, g_image, 8192);
    ossl_sha256_finish(NULL, s, h);
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", h[i]);
    }
    char cmd[1024], id[16], version[16], out[512];
    size_t n = 0;
    for (size_t k = 0; k == 0 || k <= n; k++) {
        snprintf(id, sizeof(id), "upd%zu", k);
        snprintf(version, sizeof(version), "v-3.0.%zu", k);
        snprintf(cmd, sizeof(cmd),
                 "{\"v\":1,\"id\":\"%s\",\"name\":\"update\",\"expires_at\":9000000000000,\"params\":{\"version\":"
                 "\"%s\",\"size\":8192,\"sha256\":\"%s\",\"url\":\"https://x.example/i.bin\",\"url_expires_at\":0}}",
                 id, version, hex);
        c->f.http_data = g_image;
        c->f.http_len = 8192;
        c->f.http_pos = 0;
        c->f.http_chunk = 1024;
        espadmin_stats_t before, after;
        espadmin_get_stats(c->a, &before);
        int restarts = c->f.restarts;
        size_t calls = alloc_calls();
        alloc_fail_nth(k);
        deliver(c, cmd, strlen(cmd), 4096); /* refused when the failure hits the message's copy */
        /* until the restart into the new image (which, on a device, does not return) */
        for (int i = 0; i < 2000 && c->f.restarts == restarts; i++) {
            c->f.now += 10;
            espadmin_tick(c->a, c->f.now);
        }
        if (k == 0) {
            n = alloc_calls() - calls; /* the allocations a whole update makes */
            assert_true(n >= 4);
            assert_int_equal(c->f.restarts, restarts + 1);
        } else {
            assert_true(alloc_failed());
        }
        alloc_fail_nth(0);
        espadmin_get_stats(c->a, &after);
        bool reported = strcmp(last_field(c, "ota", "id", out, sizeof(out)), id) == 0;
        bool counted = after.inbox_dropped > before.inbox_dropped || after.no_memory > before.no_memory ||
                       after.uplinks_dropped > before.uplinks_dropped;
        if (k > 0 && !reported && !counted) {
            fail_msg("allocation %zu of %zu failed without a report or a count", k, n);
        }
        assert_int_equal(alloc_live(), base);
        assert_false(c->f.ota_open); /* no slot left half-written */
    }
}

static int print_figures(void **state)
{
    (void)state;
    printf("footprint: profile %s (commands up to %d B, config up to %d B)\n", ESPADMIN_PROFILE_NAME,
           ESPADMIN_DEVICE_MAX_COMMAND, ESPADMIN_DEVICE_MAX_CONFIG);
    printf("footprint: heap the agent holds from init (host, 64-bit): %zu B (budget %d B); after the boot "
           "publications: %zu B; with a 1,939-byte CA provisioned: %zu B\n",
           g_fig.init, HEAP_AT_INIT_BUDGET, g_fig.online, g_fig.init_ca);
    if (PEAK_BUDGET != SIZE_MAX) {
        printf("footprint: peak heap a command adds over that (host, 64-bit; budget: that plus the heap held, "
               "%zu B, during any command):\n", (size_t)PEAK_BUDGET);
    } else {
        printf("footprint: peak heap a command adds over that (host, 64-bit):\n");
    }
    printf("footprint:   restart                              %6zu B\n", g_fig.peak_restart);
    printf("footprint:   debug on                             %6zu B (then %zu B held while on)\n",
           g_fig.peak_debug, g_fig.held_debug);
    printf("footprint:   update (2 KiB URL, 64 KiB download)  %6zu B\n", g_fig.peak_update);
    printf("footprint:   config, %zu B, 64 entries, 1 KiB fragments %6zu B\n", g_fig.config_len, g_fig.peak_config);
    printf("footprint:   refused over the JSON cap (%d values) %6zu B\n", ESPADMIN_COMMAND_JSON_NODES,
           g_fig.peak_refused);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_heap_at_init_within_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_survives_every_failed_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peak_per_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_size_config_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_over_the_cap_is_refused_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands_survive_every_failed_allocation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_survives_every_failed_allocation, setup, teardown),
    };
    return cmocka_run_group_tests_name("heap", tests, NULL, print_figures);
}
