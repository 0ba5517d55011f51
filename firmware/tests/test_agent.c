/* Behaviour of the agent core against the fake platform; time moves only when a test says. */
#include "tests.h"

#include "crypto_openssl.h"
#include "espadmin/agent.h"
#include "espadmin/json.h"
#include "espadmin/util.h"
#include "fake_platform.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8032 test 1 key, as in ota_signature.json (test key only). */
static const uint8_t k_seed[32] = {0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
                                   0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
                                   0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
static const char *k_pub_b64 = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";

typedef struct {
    fake_t f;
    espadmin_agent_t *a;
    espadmin_options_t opt;
} ctx_t;

static void advance(ctx_t *c, int64_t ms)
{
    c->f.now += ms;
    espadmin_tick(c->a, c->f.now);
}

static void boot(ctx_t *c)
{
    c->a = espadmin_agent_init(&c->f.p, &c->opt);
    assert_non_null(c->a);
    espadmin_tick(c->a, c->f.now);
}

static void online(ctx_t *c)
{
    espadmin_on_connected(c->a);
    espadmin_tick(c->a, c->f.now);
}

static int setup(void **state)
{
    ctx_t *c = calloc(1, sizeof(*c));
    fake_init(&c->f);
    fake_provision(&c->f, k_pub_b64);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    ctx_t *c = *state;
    espadmin_agent_free(c->a);
    fake_free(&c->f);
    free(c);
    return 0;
}

static void reboot(ctx_t *c)
{
    espadmin_agent_free(c->a);
    c->a = NULL;
    fake_clear_pubs(&c->f);
    c->f.now = 500;
    boot(c);
}

static void send_cmd(ctx_t *c, const char *json)
{
    assert_int_equal(espadmin_on_message(c->a, FAKE_CMD_TOPIC, json, strlen(json)), 0);
    espadmin_tick(c->a, c->f.now);
}

/* field of the last publication of kind */
static char *field(ctx_t *c, const char *kind, const char *key)
{
    static char out[512];
    const fake_pub_t *p = fake_last(&c->f, kind);
    if (p == NULL) {
        return NULL;
    }
    ej_doc_t doc;
    assert_int_equal(ej_parse(&doc, p->payload, p->len), EJ_OK);
    const ej_node_t *v = ej_get(doc.root, key);
    if (v == NULL) {
        ej_free(&doc);
        return NULL;
    }
    if (v->type == EJ_STRING) {
        snprintf(out, sizeof(out), "%s", v->str);
    } else {
        ej_compact(v, out, sizeof(out) - 1);
        out[v->raw_len < sizeof(out) - 1 ? v->raw_len : sizeof(out) - 1] = '\0';
    }
    ej_free(&doc);
    return out;
}

static void assert_all_uplinks_valid(ctx_t *c)
{
    for (size_t i = 0; i < c->f.npubs; i++) {
        const fake_pub_t *p = &c->f.pubs[i];
        char id[65];
        bool up;
        espadmin_kind_t kind;
        assert_int_equal(espadmin_parse_topic(FAKE_ROOT, p->topic, id, sizeof(id), &up, &kind), ESPADMIN_OK);
        assert_true(up);
        assert_true(espadmin_device_may_publish(FAKE_ROOT, FAKE_DEVICE, p->topic, p->retain));
        espadmin_perr_t err;
        if (espadmin_uplink_validate(kind, p->payload, p->len, &err) != ESPADMIN_OK) {
            fail_msg("invalid uplink on %s: %s (%s)", p->topic, p->payload, err.field);
        }
    }
}

/* ---- boot and connection ---- */

static void test_boot_sequence(void **state)
{
    ctx_t *c = *state;
    boot(c);
    assert_int_equal(c->f.connects, 1);
    assert_string_equal(c->f.last_password, "s3cret");
    online(c);
    assert_string_equal(c->f.subscribed, "espadmin/01hzx3k9qv4m7c2d8e5f6g7h8j/down/#");
    assert_true(c->f.npubs >= 3);
    assert_string_equal(c->f.pubs[0].topic, "espadmin/01hzx3k9qv4m7c2d8e5f6g7h8j/up/status");
    assert_true(c->f.pubs[0].retain);
    assert_string_equal(c->f.pubs[0].payload, "{\"v\":1,\"online\":true}");
    assert_string_equal(c->f.pubs[1].topic, "espadmin/01hzx3k9qv4m7c2d8e5f6g7h8j/up/metadata");
    assert_string_equal(field(c, "metadata", "firmware_version"), "v-1.0.0");
    assert_string_equal(field(c, "metadata", "reset_reason"), "poweron");
    assert_string_equal(field(c, "metadata", "chip_model"), "linux-sim");
    assert_string_equal(c->f.pubs[2].topic, "espadmin/01hzx3k9qv4m7c2d8e5f6g7h8j/up/config_req");
    assert_string_equal(field(c, "config_req", "config_version"), "0");
    assert_int_equal(fake_count(&c->f, "error"), 0);
    assert_all_uplinks_valid(c);
}

static void test_crash_reported_after_boot(void **state)
{
    ctx_t *c = *state;
    c->f.reset = "panic";
    boot(c);
    online(c);
    assert_int_equal(fake_count(&c->f, "error"), 1);
    assert_string_equal(field(c, "error", "type"), "panic");
    assert_string_equal(field(c, "error", "reset_reason"), "panic");
    assert_string_equal(field(c, "error", "firmware_version"), "v-1.0.0");
    assert_string_equal(field(c, "metadata", "reset_reason"), "panic");
    assert_all_uplinks_valid(c);
}

/* The core dump summary of the last panic goes out with the boot's error report: reason as the
 * message, task, backtrace (PCs and SPs), summary. It stays in flash until the broker has
 * acknowledged that report, so a reboot before then reports it again. */
static void test_crash_backtrace_reported_and_erased_on_ack(void **state)
{
    ctx_t *c = *state;
    c->f.reset = "panic";
    c->f.has_crash = true;
    espadmin_crash_t *k = &c->f.crash;
    snprintf(k->reason, sizeof(k->reason), "LoadProhibited");
    snprintf(k->task, sizeof(k->task), "sensor");
    snprintf(k->summary, sizeof(k->summary), "EXCCAUSE 0x1c EXCVADDR 0x0\x1b[0m\n");
    k->frames[0] = (espadmin_frame_t){0x400d1a2b, 0x3ffb1230};
    k->frames[1] = (espadmin_frame_t){0x400d1c40, 0x3ffb1250};
    k->frames[2] = (espadmin_frame_t){0x40088f6d, 0};
    k->frames[3] = (espadmin_frame_t){0, 0x3ffb1290}; /* the end of the walked stack */
    k->frames[4] = (espadmin_frame_t){0x400d0000, 0};
    k->nframes = 5;
    boot(c);
    online(c);
    assert_int_equal(fake_count(&c->f, "error"), 1);
    assert_string_equal(field(c, "error", "message"), "LoadProhibited");
    assert_string_equal(field(c, "error", "backtrace"),
                        "[{\"pc\":\"0x400d1a2b\",\"sp\":\"0x3ffb1230\"},{\"pc\":\"0x400d1c40\",\"sp\":\"0x3ffb1250\"},{\"pc\":\"0x40088f6d\"}]");
    assert_string_equal(field(c, "error", "core_dump"),
                        "{\"task\":\"sensor\",\"cause\":\"LoadProhibited\",\"summary\":\"EXCCAUSE 0x1c EXCVADDR 0x0\"}");
    assert_all_uplinks_valid(c);
    assert_int_equal(c->f.crash_clears, 0);

    /* Rebooted before the broker acknowledged it: the crash is reported again. */
    reboot(c);
    online(c);
    assert_int_equal(fake_count(&c->f, "error"), 1);
    assert_string_equal(field(c, "error", "message"), "LoadProhibited");
    const fake_pub_t *p = fake_last(&c->f, "error");
    espadmin_on_published(c->a, p->mid);
    assert_int_equal(c->f.crash_clears, 1);
    assert_false(c->f.has_crash);
}

/* A crash that kept a whole core dump announces its size and keeps it past the report's PUBACK;
 * the coredump command uploads it in the port's task, and only a 2xx erases it. A failed upload
 * is acknowledged with the port's reason and keeps it; a device without one says so. */
static void test_coredump_uploaded_on_request_then_erased(void **state)
{
    ctx_t *c = *state;
    const char *url = "https://fleet.example.com/api/v1/coredumps/acme/r1?device=d&expires=1&sig=x";
    char cmd[512];
    c->f.reset = "panic";
    c->f.has_crash = true;
    snprintf(c->f.crash.reason, sizeof(c->f.crash.reason), "StoreProhibited");
    c->f.crash.frames[0] = (espadmin_frame_t){0x400d2f5e, 0x3ffb3a10};
    c->f.crash.nframes = 1;
    c->f.crash.size = 24576;
    boot(c);
    online(c);
    assert_string_equal(field(c, "error", "core_dump"), "{\"cause\":\"StoreProhibited\",\"size\":24576}");
    espadmin_on_published(c->a, fake_last(&c->f, "error")->mid);
    assert_int_equal(c->f.crash_clears, 0); /* kept for the upload */

    snprintf(cmd, sizeof(cmd), "{\"v\":1,\"id\":\"01hzx4a0b1c2d3e4f5g6h7j8m0\",\"name\":\"coredump\",\"expires_at\":9007199254740991,\"params\":{\"url\":\"%s\",\"url_expires_at\":0}}", url);
    send_cmd(c, cmd);
    assert_int_equal(c->f.coredump_uploads, 1);
    assert_string_equal(c->f.coredump_url, url);
    advance(c, 100);
    assert_int_equal(fake_count(&c->f, "ack"), 0); /* still uploading */
    send_cmd(c, cmd); /* redelivered meanwhile: not started twice */
    assert_int_equal(c->f.coredump_uploads, 1);
    c->f.coredump_result = -1;
    advance(c, 20);
    assert_string_equal(field(c, "ack", "result"), "error");
    assert_string_equal(field(c, "ack", "message"), "HTTP 403");
    assert_int_equal(c->f.crash_clears, 0);

    send_cmd(c, "{\"v\":1,\"id\":\"01hzx4a0b1c2d3e4f5g6h7j8m1\",\"name\":\"coredump\",\"expires_at\":9007199254740991,\"params\":{\"url\":\"https://fleet.example.com/u\",\"url_expires_at\":0}}");
    c->f.coredump_result = 1;
    advance(c, 20);
    assert_string_equal(field(c, "ack", "id"), "01hzx4a0b1c2d3e4f5g6h7j8m1");
    assert_string_equal(field(c, "ack", "result"), "ok");
    assert_int_equal(c->f.crash_clears, 1);
    assert_false(c->f.has_crash);

    send_cmd(c, "{\"v\":1,\"id\":\"01hzx4a0b1c2d3e4f5g6h7j8m2\",\"name\":\"coredump\",\"expires_at\":9007199254740991,\"params\":{\"url\":\"https://fleet.example.com/u\",\"url_expires_at\":0}}");
    assert_string_equal(field(c, "ack", "result"), "error");
    assert_string_equal(field(c, "ack", "message"), "no core dump");
    assert_all_uplinks_valid(c);
}

static void test_backoff_grows_capped_with_jitter(void **state)
{
    (void)state;
    espadmin_backoff_t b;
    espadmin_backoff_init(&b, 1000, 60000);
    uint32_t prev_ceiling = 0;
    for (int i = 0; i < 12; i++) {
        uint32_t ceiling = 1000u << (i < 6 ? i : 6);
        if (ceiling > 60000) ceiling = 60000;
        uint32_t d_lo = espadmin_backoff_next(&b, 0);
        b.attempt--;
        uint32_t d_hi = espadmin_backoff_next(&b, 0xffffffffu - (0xffffffffu % (ceiling / 2 + 1)) - 1 + ceiling / 2);
        assert_int_equal(d_lo, ceiling - ceiling / 2);
        assert_true(d_hi <= ceiling);
        assert_true(d_hi >= d_lo);
        assert_true(ceiling >= prev_ceiling);
        prev_ceiling = ceiling;
    }
    /* capped: never above the maximum whatever the random input */
    for (uint32_t r = 0; r < 100000; r += 997) {
        assert_true(espadmin_backoff_next(&b, r * 2654435761u) <= 60000);
    }
    /* jitter: different random inputs give different delays */
    espadmin_backoff_reset(&b);
    uint32_t x = espadmin_backoff_next(&b, 1);
    espadmin_backoff_reset(&b);
    uint32_t y = espadmin_backoff_next(&b, 400);
    assert_int_not_equal(x, y);
}

static void test_reconnect_uses_backoff(void **state)
{
    ctx_t *c = *state;
    c->opt.backoff_base_ms = 1000;
    c->opt.backoff_max_ms = 8000;
    c->f.connect_fails = true;
    boot(c);
    assert_int_equal(c->f.connects, 1);
    int64_t last = c->f.now;
    int64_t gaps[8];
    for (int i = 0; i < 8; i++) {
        int before = c->f.connects;
        while (c->f.connects == before) {
            advance(c, 10);
        }
        gaps[i] = c->f.now - last;
        last = c->f.now;
    }
    assert_true(gaps[0] >= 500 && gaps[0] <= 1010);
    assert_true(gaps[1] >= 1000 && gaps[1] <= 2010);
    assert_true(gaps[2] >= 2000 && gaps[2] <= 4010);
    for (int i = 3; i < 8; i++) {
        assert_true(gaps[i] >= 4000 && gaps[i] <= 8010);
    }
    /* a successful connection resets the backoff */
    c->f.connect_fails = false;
    while (!espadmin_is_connected(c->a)) {
        advance(c, 10);
        if (c->f.connects > 9) {
            online(c);
        }
    }
    espadmin_on_disconnected(c->a);
    int before = c->f.connects;
    int64_t t0 = c->f.now;
    while (c->f.connects == before) {
        advance(c, 10);
    }
    assert_true(c->f.now - t0 <= 1010);
}

/* ---- commands ---- */

static void test_restart_acks_then_restarts(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"cmd1\",\"name\":\"restart\",\"expires_at\":9000000000000}");
    assert_string_equal(field(c, "ack", "id"), "cmd1");
    assert_string_equal(field(c, "ack", "result"), "ok");
    assert_int_equal(c->f.restarts, 0); /* waits for the PUBACK */
    espadmin_on_published(c->a, fake_last(&c->f, "ack")->mid);
    espadmin_tick(c->a, c->f.now);
    assert_int_equal(c->f.restarts, 1);
    assert_int_equal(c->f.disconnects, 1);
    /* after the restart a redelivery is acknowledged again but not executed */
    reboot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"cmd1\",\"name\":\"restart\",\"expires_at\":9000000000000}");
    assert_string_equal(field(c, "ack", "result"), "ok");
    advance(c, 5000);
    assert_int_equal(c->f.restarts, 1);
}

static void test_restart_without_puback_waits_two_seconds(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"cmd2\",\"name\":\"restart\",\"expires_at\":9000000000000}");
    advance(c, 1900);
    assert_int_equal(c->f.restarts, 0);
    advance(c, 200);
    assert_int_equal(c->f.restarts, 1);
}

static void test_rejections_and_duplicates(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"c1\",\"name\":\"selfdestruct\",\"expires_at\":9000000000000}");
    assert_string_equal(field(c, "ack", "result"), "rejected");
    assert_string_equal(field(c, "ack", "message"), "unknown_command");
    send_cmd(c, "{\"v\":1,\"id\":\"c2\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{}}");
    assert_string_equal(field(c, "ack", "message"), "invalid_field: params.enabled");
    size_t acks = fake_count(&c->f, "ack");
    send_cmd(c, "{\"v\":1,\"name\":\"restart\"}"); /* no ID: nothing to acknowledge */
    assert_int_equal(fake_count(&c->f, "ack"), acks);
    /* expired (the clock is set) */
    c->f.wall = 2000000000000;
    send_cmd(c, "{\"v\":1,\"id\":\"c3\",\"name\":\"debug\",\"expires_at\":1000,\"params\":{\"enabled\":true}}");
    assert_string_equal(field(c, "ack", "message"), "expired");
    assert_false(espadmin_debug_enabled(c->a));
    /* a duplicate gets the same ack again */
    c->f.wall = 0;
    send_cmd(c, "{\"v\":1,\"id\":\"c4\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":false}}");
    acks = fake_count(&c->f, "ack");
    send_cmd(c, "{\"v\":1,\"id\":\"c4\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":true}}");
    assert_int_equal(fake_count(&c->f, "ack"), acks + 1);
    assert_string_equal(field(c, "ack", "result"), "ok");
    assert_false(espadmin_debug_enabled(c->a)); /* not executed again */
    /* a message on another topic is ignored */
    assert_int_equal(espadmin_on_message(c->a, "espadmin/dev2/down/cmd", "{}", 2), 0);
    espadmin_tick(c->a, c->f.now);
    assert_int_equal(fake_count(&c->f, "ack"), acks + 1);
    assert_all_uplinks_valid(c);
}

/* ---- debug and logs ---- */

static void test_debug_streams_and_stops_by_itself(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    espadmin_log_capture(c->a, ESPADMIN_LEVEL_INFO, "app", "before debug", 12);
    send_cmd(c, "{\"v\":1,\"id\":\"d1\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":true,\"level\":\"info\",\"duration_s\":2}}");
    assert_string_equal(field(c, "ack", "result"), "ok");
    assert_true(espadmin_debug_enabled(c->a));
    espadmin_log_capture(c->a, ESPADMIN_LEVEL_INFO, "app", "\x1b[0;32mhello\x1b[0m\n", 19);
    espadmin_log_capture(c->a, ESPADMIN_LEVEL_DEBUG, "app", "too verbose", 11);
    espadmin_log_capture(c->a, ESPADMIN_LEVEL_ERROR, NULL, "second", 6);
    advance(c, 100);
    assert_int_equal(fake_count(&c->f, "log"), 0); /* batched: at most every 250 ms */
    advance(c, 200);
    assert_int_equal(fake_count(&c->f, "log"), 1);
    const fake_pub_t *p = fake_last(&c->f, "log");
    assert_int_equal(p->qos, 0);
    assert_non_null(strstr(p->payload, "\"seq\":0,"));
    assert_non_null(strstr(p->payload, "\"msg\":\"hello\""));
    assert_null(strstr(p->payload, "too verbose"));
    assert_non_null(strstr(p->payload, "\"msg\":\"second\""));
    espadmin_log_capture(c->a, ESPADMIN_LEVEL_INFO, "app", "third", 5);
    advance(c, 300);
    assert_non_null(strstr(fake_last(&c->f, "log")->payload, "\"seq\":2,"));
    /* the clock passes duration_s: capture stops without a debug off */
    advance(c, 2000);
    assert_false(espadmin_debug_enabled(c->a));
    size_t logs = fake_count(&c->f, "log");
    espadmin_log_capture(c->a, ESPADMIN_LEVEL_ERROR, "app", "after", 5);
    advance(c, 1000);
    assert_int_equal(fake_count(&c->f, "log"), logs);
    assert_all_uplinks_valid(c);
}

static void test_log_ring_overflow_counts_drops(void **state)
{
    (void)state;
    uint8_t buf[200];
    espadmin_logring_t r;
    espadmin_logring_init(&r, buf, sizeof(buf));
    int kept = 0;
    for (int i = 0; i < 20; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "line %d", i);
        kept += espadmin_logring_push(&r, ESPADMIN_LEVEL_INFO, "t", msg, (size_t)n, i);
    }
    assert_true(kept > 0 && kept < 20);
    assert_int_equal(r.dropped, (uint64_t)(20 - kept));
    assert_int_equal(r.next_seq, 20);
    espadmin_logline_t line;
    assert_true(espadmin_logring_peek(&r, &line));
    assert_int_equal(line.seq, 0);
    assert_string_equal(line.msg, "line 0");
    /* reading frees room; wrapping keeps records intact */
    for (int i = 0; i < kept; i++) {
        espadmin_logring_pop(&r);
    }
    for (int round = 0; round < 50; round++) {
        assert_true(espadmin_logring_push(&r, ESPADMIN_LEVEL_WARN, "wrap", "0123456789abcdef", 16, round));
        assert_true(espadmin_logring_peek(&r, &line));
        assert_string_equal(line.msg, "0123456789abcdef");
        assert_string_equal(line.tag, "wrap");
        assert_int_equal(line.ms, round);
        espadmin_logring_pop(&r);
    }
}

static void test_log_batch_reports_dropped(void **state)
{
    ctx_t *c = *state;
    c->opt.log_ring_bytes = 300;
    boot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"d2\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":true}}");
    for (int i = 0; i < 30; i++) {
        espadmin_log_capture(c->a, ESPADMIN_LEVEL_INFO, "t", "a fairly long log line", 22);
    }
    advance(c, 300);
    const char *seq1 = field(c, "log", "seq");
    assert_string_equal(seq1, "0");
    espadmin_log_capture(c->a, ESPADMIN_LEVEL_INFO, "t", "next", 4);
    advance(c, 300);
    /* the line after the overflow carries the count of lines dropped before it */
    assert_non_null(field(c, "log", "dropped"));
    int64_t seq = strtoll(field(c, "log", "seq"), NULL, 10);
    int64_t dropped = strtoll(field(c, "log", "dropped"), NULL, 10);
    assert_int_equal(seq, 30);
    assert_true(dropped > 0);
    assert_all_uplinks_valid(c);
}

/* ---- config ---- */

#define SEALED_WIFI_PASS_V7 "AAECAwQFBgcICQoLZWqjdbGAsCmvSapKOiV2YVZQTYI1JXTe5g=="
#define HASH_A "a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5a3f5"

static void test_config_applied_with_secret(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"cfg7\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":7,"
                "\"hash\":\"" HASH_A "\",\"entries\":["
                "{\"key\":\"interval_s\",\"type\":\"int\",\"value\":60},"
                "{\"key\":\"label\",\"type\":\"string\",\"value\":\"green\\nhouse\"},"
                "{\"key\":\"rules\",\"type\":\"json\",\"value\":{ \"a\" : [1, 2] }},"
                "{\"key\":\"wifi_pass\",\"type\":\"string\",\"value\":\"" SEALED_WIFI_PASS_V7 "\",\"secret\":true}]}}");
    assert_string_equal(field(c, "ack", "result"), "ok");
    assert_string_equal(field(c, "ack", "data"), "{\"config_version\":7}");
    assert_int_equal(espadmin_config_version(c->a), 7);
    char buf[64];
    espadmin_cfg_type_t t;
    assert_int_equal(espadmin_config_get(c->a, "wifi_pass", &t, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "hunter2");
    assert_int_equal(t, ESPADMIN_CFG_STRING);
    assert_int_equal(espadmin_config_get(c->a, "interval_s", &t, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "60");
    assert_int_equal(t, ESPADMIN_CFG_INT);
    assert_int_equal(espadmin_config_get(c->a, "label", &t, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "green\nhouse");
    assert_int_equal(espadmin_config_get(c->a, "rules", &t, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "{\"a\":[1,2]}");
    /* the next boot asks with the held version and hash */
    reboot(c);
    online(c);
    assert_string_equal(field(c, "config_req", "config_version"), "7");
    assert_string_equal(field(c, "config_req", "hash"), HASH_A);
    assert_string_equal(field(c, "metadata", "config_version"), "7");
    assert_int_equal(espadmin_config_get(c->a, "wifi_pass", &t, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "hunter2");
    assert_all_uplinks_valid(c);
}

static void test_config_all_or_nothing(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"cfg7\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":7,"
                "\"hash\":\"" HASH_A "\",\"entries\":[{\"key\":\"interval_s\",\"type\":\"int\",\"value\":60}]}}");
    assert_string_equal(field(c, "ack", "result"), "ok");
    /* version 8 carries a secret sealed for version 7: replay refused, nothing changes */
    send_cmd(c, "{\"v\":1,\"id\":\"cfg8\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":8,"
                "\"hash\":\"" HASH_A "\",\"entries\":[{\"key\":\"interval_s\",\"type\":\"int\",\"value\":30},"
                "{\"key\":\"wifi_pass\",\"type\":\"string\",\"value\":\"" SEALED_WIFI_PASS_V7 "\",\"secret\":true}]}}");
    assert_string_equal(field(c, "ack", "result"), "error");
    assert_non_null(strstr(field(c, "ack", "message"), "wifi_pass"));
    assert_int_equal(espadmin_config_version(c->a), 7);
    char buf[64];
    assert_int_equal(espadmin_config_get(c->a, "interval_s", NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "60");
    assert_int_equal(espadmin_config_get(c->a, "wifi_pass", NULL, buf, sizeof(buf)), ESPADMIN_PLATFORM_NOT_FOUND);
    /* a storage failure half-way also keeps the old config */
    c->f.fail_kv_set_key = true;
    snprintf(c->f.fail_key, sizeof(c->f.fail_key), "zzz");
    send_cmd(c, "{\"v\":1,\"id\":\"cfg9\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":9,"
                "\"hash\":\"" HASH_A "\",\"entries\":[{\"key\":\"interval_s\",\"type\":\"int\",\"value\":5},"
                "{\"key\":\"zzz\",\"type\":\"bool\",\"value\":true}]}}");
    assert_string_equal(field(c, "ack", "result"), "error");
    assert_int_equal(espadmin_config_version(c->a), 7);
    assert_int_equal(espadmin_config_get(c->a, "interval_s", NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "60");
    /* a platform-managed key of the wrong type is refused */
    c->f.fail_kv_set_key = false;
    send_cmd(c, "{\"v\":1,\"id\":\"cfg10\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":10,"
                "\"hash\":\"" HASH_A "\",\"entries\":[{\"key\":\"_mqtt_port\",\"type\":\"int\",\"value\":70000}]}}");
    assert_string_equal(field(c, "ack", "result"), "error");
    assert_int_equal(espadmin_config_version(c->a), 7);
    /* an empty config erases every key */
    send_cmd(c, "{\"v\":1,\"id\":\"cfg11\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":11,"
                "\"hash\":\"" HASH_A "\",\"entries\":[]}}");
    assert_string_equal(field(c, "ack", "result"), "ok");
    assert_int_equal(espadmin_config_get(c->a, "interval_s", NULL, buf, sizeof(buf)), ESPADMIN_PLATFORM_NOT_FOUND);
    assert_all_uplinks_valid(c);
}

static void test_rotated_mqtt_secret_used_next_connect(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    /* config_secret.json "platform-managed MQTT secret" (version 8) */
    send_cmd(c, "{\"v\":1,\"id\":\"cfg8\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":8,"
                "\"hash\":\"" HASH_A "\",\"entries\":[{\"key\":\"_mqtt_secret\",\"type\":\"string\",\"value\":"
                "\"/+7dzLuqmYh3ZlVE/BxwMmCHj7doGAgpHO/HQrmK8UR7dcXYSsp7pdGQ6OpvYRIb\",\"secret\":true}]}}");
    assert_string_equal(field(c, "ack", "result"), "ok");
    espadmin_on_disconnected(c->a);
    int before = c->f.connects;
    while (c->f.connects == before) {
        advance(c, 50);
    }
    assert_string_equal(c->f.last_password, "Zx9-rotated-secret");
}

/* ---- OTA ---- */

static uint8_t g_image[5000];

static void sign(const espadmin_update_params_t *u, char *sig_b64)
{
    char canon[4096];
    int n = espadmin_ota_signing_string(u, canon, sizeof(canon));
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, k_seed, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sig[64];
    size_t sl = sizeof(sig);
    assert_int_equal(EVP_DigestSignInit(md, NULL, NULL, NULL, key), 1);
    assert_int_equal(EVP_DigestSign(md, sig, &sl, (const uint8_t *)canon, (size_t)n), 1);
    EVP_EncodeBlock((unsigned char *)sig_b64, sig, 64);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
}

static void update_cmd(char *out, size_t cap, const char *id, const char *version, bool good_sig, bool signed_)
{
    for (size_t i = 0; i < sizeof(g_image); i++) {
        g_image[i] = (uint8_t)(i * 7);
    }
    espadmin_update_params_t u;
    memset(&u, 0, sizeof(u));
    snprintf(u.version, sizeof(u.version), "%s", version);
    u.size = sizeof(g_image);
    uint8_t h[32];
    void *s = ossl_sha256_begin(NULL);
    ossl_sha256_update(NULL, s, g_image, sizeof(g_image));
    ossl_sha256_finish(NULL, s, h);
    for (int i = 0; i < 32; i++) {
        snprintf(u.sha256 + 2 * i, 3, "%02x", h[i]);
    }
    snprintf(u.url, sizeof(u.url), "http://127.0.0.1:8080/ota/%s.bin", version);
    u.url_expires_at = 0;
    char sig[100];
    sign(&u, sig);
    if (!good_sig) {
        sig[0] = sig[0] == 'A' ? 'B' : 'A';
    }
    char sigfield[140] = "";
    if (signed_) {
        snprintf(sigfield, sizeof(sigfield), ",\"signature\":\"%s\"", sig);
    }
    snprintf(out, cap,
             "{\"v\":1,\"id\":\"%s\",\"name\":\"update\",\"expires_at\":9000000000000,\"params\":{\"version\":\"%s\","
             "\"size\":%lld,\"sha256\":\"%s\",\"url\":\"%s\",\"url_expires_at\":0%s}}",
             id, version, (long long)u.size, u.sha256, u.url, sigfield);
}

static void serve(ctx_t *c, const uint8_t *data, size_t len)
{
    c->f.http_data = data;
    c->f.http_len = len;
    c->f.http_pos = 0;
}

static void run_until_idle(ctx_t *c)
{
    for (int i = 0; i < 200; i++) {
        advance(c, 10);
    }
}

static void test_ota_good_update(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    char cmd[4096];
    update_cmd(cmd, sizeof(cmd), "up1", "v-1.1.0", true, true);
    serve(c, g_image, sizeof(g_image));
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "result"), "ok");
    run_until_idle(c);
    assert_int_equal(c->f.ota_written, sizeof(g_image));
    assert_string_equal(c->f.boot_version, "v-1.1.0");
    assert_string_equal(field(c, "ota", "state"), "rebooting");
    assert_true(fake_count(&c->f, "ota") >= 5); /* downloading…, downloaded, installing, rebooting */
    espadmin_on_published(c->a, fake_last(&c->f, "ota")->mid);
    advance(c, 10);
    assert_int_equal(c->f.restarts, 1);
    assert_all_uplinks_valid(c);

    /* the new image boots pending verification and confirms once the server is reached */
    snprintf(c->f.running, sizeof(c->f.running), "v-1.1.0");
    c->f.boot = ESPADMIN_BOOT_PENDING_VERIFY;
    c->f.reset = "sw";
    reboot(c);
    online(c);
    assert_false(c->f.marked_valid);
    espadmin_on_published(c->a, c->f.pubs[0].mid); /* PUBACK of the online status */
    assert_true(c->f.marked_valid);
    assert_string_equal(field(c, "ota", "state"), "succeeded");
    assert_string_equal(field(c, "ota", "id"), "up1");
    assert_string_equal(field(c, "metadata", "firmware_version"), "v-1.1.0");
    assert_null(fake_kv_get(&c->f, "espadmin", "ota_pending"));
    advance(c, 200000);
    assert_int_equal(c->f.rollbacks, 0);
    /* the update command redelivered after the reboot is not installed again */
    serve(c, g_image, sizeof(g_image));
    size_t otas = fake_count(&c->f, "ota");
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "result"), "ok");
    run_until_idle(c);
    assert_int_equal(fake_count(&c->f, "ota"), otas);
    assert_all_uplinks_valid(c);
}

static void test_ota_bad_signature(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    char cmd[4096];
    update_cmd(cmd, sizeof(cmd), "up2", "v-1.1.0", false, true);
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "result"), "rejected");
    assert_string_equal(field(c, "ack", "message"), "bad_signature");
    assert_string_equal(field(c, "ota", "reason"), "bad_signature");
    /* unsigned while a key is provisioned: refused too */
    update_cmd(cmd, sizeof(cmd), "up3", "v-1.1.0", true, false);
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "message"), "bad_signature");
    assert_false(c->f.ota_open);
    assert_string_equal(c->f.boot_version, "");
    assert_all_uplinks_valid(c);
}

static void test_ota_hash_mismatch_keeps_running(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    char cmd[4096];
    update_cmd(cmd, sizeof(cmd), "up4", "v-1.1.0", true, true);
    static uint8_t corrupt[sizeof(g_image)];
    memcpy(corrupt, g_image, sizeof(g_image));
    corrupt[1234] ^= 0x55;
    serve(c, corrupt, sizeof(corrupt));
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "result"), "ok");
    run_until_idle(c);
    assert_string_equal(field(c, "ota", "state"), "failed");
    assert_string_equal(field(c, "ota", "reason"), "hash_mismatch");
    assert_string_equal(c->f.boot_version, "");
    assert_int_equal(c->f.restarts, 0);
    /* a short image is a size mismatch */
    update_cmd(cmd, sizeof(cmd), "up5", "v-1.1.0", true, true);
    serve(c, g_image, sizeof(g_image) - 1);
    send_cmd(c, cmd);
    run_until_idle(c);
    assert_string_equal(field(c, "ota", "reason"), "size_mismatch");
    assert_string_equal(c->f.boot_version, "");
    assert_all_uplinks_valid(c);
}

static void test_ota_already_running_and_busy(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    char cmd[4096];
    update_cmd(cmd, sizeof(cmd), "up6", "v-1.0.0", true, true);
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "result"), "rejected");
    assert_string_equal(field(c, "ack", "message"), "already_running");
    c->f.http_stall = true;
    update_cmd(cmd, sizeof(cmd), "up7", "v-1.2.0", true, true);
    serve(c, g_image, sizeof(g_image));
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "result"), "ok");
    update_cmd(cmd, sizeof(cmd), "up8", "v-1.3.0", true, true);
    send_cmd(c, cmd);
    assert_string_equal(field(c, "ack", "message"), "busy");
    /* a stalled download times out */
    advance(c, 61000);
    advance(c, 10);
    assert_string_equal(field(c, "ota", "reason"), "download_error");
    assert_all_uplinks_valid(c);
}

/* Each refusal of the port is reported with the protocol's reason, its account in the message. */
static void test_ota_failure_reasons(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    char cmd[4096];
    static const struct {
        int begin_rc, write_rc;
        bool http_fail;
        const char *err, *reason, *message;
    } cases[] = {
        {ESPADMIN_PLATFORM_PENDING_VERIFY, 0, false, "", "busy", "the running image awaits confirmation"},
        {ESPADMIN_PLATFORM_PENDING_VERIFY, 0, false, "ESP_ERR_OTA_ROLLBACK_INVALID_STATE", "busy",
         "ESP_ERR_OTA_ROLLBACK_INVALID_STATE"},
        {ESPADMIN_PLATFORM_NO_SPACE, 0, false, "image does not fit", "no_space", "image does not fit"},
        {ESPADMIN_PLATFORM_ERR, 0, false, "", "internal", "cannot open the update slot"},
        {0, ESPADMIN_PLATFORM_INVALID_IMAGE, false, "esp_ota_write: ESP_ERR_OTA_VALIDATE_FAILED", "invalid_image",
         "esp_ota_write: ESP_ERR_OTA_VALIDATE_FAILED"},
        {0, ESPADMIN_PLATFORM_NO_SPACE, false, "", "no_space", "slot write failed"},
        {0, 0, true, "HTTP 404", "download_error", "HTTP 404"},
        {0, 0, true, "too many redirects", "download_error", "too many redirects"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char id[16];
        snprintf(id, sizeof(id), "upr%zu", i);
        c->f.ota_begin_rc = cases[i].begin_rc;
        c->f.ota_write_rc = cases[i].write_rc;
        c->f.http_fail = cases[i].http_fail;
        snprintf(c->f.err, sizeof(c->f.err), "%s", cases[i].err);
        update_cmd(cmd, sizeof(cmd), id, "v-1.1.0", true, true);
        serve(c, g_image, sizeof(g_image));
        send_cmd(c, cmd);
        run_until_idle(c);
        assert_string_equal(field(c, "ota", "id"), id);
        assert_string_equal(field(c, "ota", "state"), "failed");
        assert_string_equal(field(c, "ota", "reason"), cases[i].reason);
        assert_string_equal(field(c, "ota", "message"), cases[i].message);
        assert_false(c->f.ota_open);
        assert_false(c->f.http_open_);
    }
    assert_all_uplinks_valid(c);
}

static void test_ota_boot_failure_rolled_back_and_reported(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    char cmd[4096];
    update_cmd(cmd, sizeof(cmd), "up9", "v-2.0.0", true, true);
    serve(c, g_image, sizeof(g_image));
    send_cmd(c, cmd);
    run_until_idle(c);
    espadmin_on_published(c->a, fake_last(&c->f, "ota")->mid);
    advance(c, 10);
    assert_int_equal(c->f.restarts, 1);
    /* the new image never got to confirm itself: the bootloader went back to v-1.0.0 */
    c->f.reset = "panic";
    reboot(c);
    online(c);
    assert_string_equal(field(c, "metadata", "firmware_version"), "v-1.0.0");
    assert_string_equal(field(c, "ota", "state"), "failed");
    assert_string_equal(field(c, "ota", "reason"), "boot_failed_rolled_back");
    assert_string_equal(field(c, "ota", "id"), "up9");
    assert_int_equal(fake_count(&c->f, "error"), 1);
    /* the crash happened in the image that was rolled back, not in the one reporting it */
    assert_string_equal(field(c, "error", "firmware_version"), "v-2.0.0");
    assert_string_equal(field(c, "error", "type"), "panic");
    assert_null(fake_kv_get(&c->f, "espadmin", "ota_pending"));
    assert_all_uplinks_valid(c);
}

static void test_ota_verify_deadline_rolls_back(void **state)
{
    ctx_t *c = *state;
    c->opt.ota_verify_timeout_ms = 60000;
    fake_kv_put(&c->f, "espadmin", "ota_pending",
                "{\"id\":\"up10\",\"version\":\"v-2.0.0\",\"from\":\"v-1.0.0\",\"state\":\"rebooting\"}");
    snprintf(c->f.running, sizeof(c->f.running), "v-2.0.0");
    c->f.boot = ESPADMIN_BOOT_PENDING_VERIFY;
    c->f.connect_fails = true; /* the new image cannot reach the server */
    boot(c);
    advance(c, 59000);
    assert_int_equal(c->f.rollbacks, 0);
    advance(c, 2000);
    assert_int_equal(c->f.rollbacks, 1);
    assert_false(c->f.marked_valid);
}

/* ---- fragments ---- */

static void test_fragment_reassembly(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    const char *cmd = "{\"v\":1,\"id\":\"frag1\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":true}}";
    size_t len = strlen(cmd);
    size_t tl = strlen(FAKE_CMD_TOPIC);
    assert_int_equal(espadmin_on_message_fragment(c->a, FAKE_CMD_TOPIC, tl, len, 0, cmd, 10), 0);
    assert_int_equal(espadmin_on_message_fragment(c->a, NULL, 0, len, 10, cmd + 10, 30), 0);
    espadmin_tick(c->a, c->f.now);
    assert_int_equal(fake_count(&c->f, "ack"), 0); /* incomplete: nothing yet */
    assert_int_equal(espadmin_on_message_fragment(c->a, NULL, 0, len, 40, cmd + 40, len - 40), 0);
    espadmin_tick(c->a, c->f.now);
    assert_string_equal(field(c, "ack", "id"), "frag1");
    assert_true(espadmin_debug_enabled(c->a));

    /* out of order: refused, and the message is not executed */
    const char *cmd2 = "{\"v\":1,\"id\":\"frag2\",\"name\":\"debug\",\"expires_at\":9000000000000,\"params\":{\"enabled\":false}}";
    len = strlen(cmd2);
    assert_int_equal(espadmin_on_message_fragment(c->a, FAKE_CMD_TOPIC, tl, len, 0, cmd2, 10), 0);
    assert_true(espadmin_on_message_fragment(c->a, NULL, 0, len, 20, cmd2 + 20, len - 20) < 0);
    espadmin_tick(c->a, c->f.now);
    assert_string_equal(field(c, "ack", "id"), "frag1");

    /* over the device's limit: refused from the first fragment on, the rest is skipped */
    static char big[ESPADMIN_DEVICE_MAX_COMMAND + 100];
    memset(big, ' ', sizeof(big));
    assert_true(espadmin_on_message_fragment(c->a, FAKE_CMD_TOPIC, tl, sizeof(big), 0, big, 1000) < 0);
    assert_int_equal(espadmin_on_message_fragment(c->a, NULL, 0, sizeof(big), 1000, big, 1000), 0);
    assert_int_equal(espadmin_on_message_fragment(c->a, NULL, 0, sizeof(big), 2000, big, sizeof(big) - 2000), 0);
    /* and a following whole message is fine */
    send_cmd(c, cmd2);
    assert_string_equal(field(c, "ack", "id"), "frag2");
    assert_false(espadmin_debug_enabled(c->a));
}

/* ---- the device's limits (include/espadmin/profile.h) ---- */

/* The partial tree a small device decodes commands with: containers below the stored levels
 * keep their text and count, are still checked (a duplicate key, even spelled with an escape,
 * is malformed), and are walked item by item from their text. */
static void test_json_partial_tree(void **state)
{
    (void)state;
    const char *doc_text = "{\"a\":{\"list\":[{\"k\":1},{\"k\":\"x\\\"y\"} , [2,3]],\"n\":1}}";
    ej_doc_t doc;
    assert_int_equal(ej_parse_partial(&doc, doc_text, strlen(doc_text), 2, 8), EJ_OK);
    const ej_node_t *list = ej_get(ej_get(doc.root, "a"), "list");
    assert_non_null(list);
    assert_int_equal(list->type, EJ_ARRAY);
    assert_int_equal(list->count, 3);
    assert_null(list->child);
#ifdef ESPADMIN_PROFILE_SMALL
    size_t pos = 0, n = 0;
    const char *item;
    size_t item_len;
    const char *want[] = {"{\"k\":1}", "{\"k\":\"x\\\"y\"}", "[2,3]"};
    while (ej_next_raw(list, &pos, &item, &item_len)) {
        assert_true(n < 3);
        assert_int_equal(item_len, strlen(want[n]));
        assert_memory_equal(item, want[n], item_len);
        n++;
    }
    assert_int_equal(n, 3);
#endif
    ej_free(&doc);
    /* not stored, still checked */
    const char *dups[] = {
        "{\"a\":{\"list\":[{\"k\":1,\"k\":2}]}}",
        "{\"a\":{\"list\":[{\"k\":1,\"\\u006b\":2}]}}",
        "{\"a\":{\"list\":[{\"\\u00e9\":1,\"\xc3\xa9\":2}]}}",
        "{\"a\":{\"list\":[{\"k\":{\"z\":1,\"z\":1}}]}}",
    };
    for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
        assert_int_equal(ej_parse_partial(&doc, dups[i], strlen(dups[i]), 2, 8), EJ_ERR_MALFORMED);
    }
    const char *distinct = "{\"a\":{\"list\":[{\"k\":1,\"kk\":2,\"\\u006b2\":3,\"\xc3\xa9\":4,\"\\u00e8\":5}]}}";
    assert_int_equal(ej_parse_partial(&doc, distinct, strlen(distinct), 2, 8), EJ_OK);
    ej_free(&doc);
    /* the stored values are capped, whatever the input's size */
    assert_int_equal(ej_parse_partial(&doc, doc_text, strlen(doc_text), 2, 3), EJ_ERR_TOO_LARGE);
    assert_int_equal(ej_parse_partial(&doc, doc_text, strlen(doc_text), 1, 3), EJ_OK);
    ej_free(&doc);
}

/* A command over the device's declared limit is dropped (counted); one at the limit is taken.
 * On a device whose config limit is below its command limit (the small profile), a config
 * that fits the message but not the device is refused with an error naming the limit, and the
 * old config stays. */
static void test_device_limits(void **state)
{
    ctx_t *c = *state;
    boot(c);
    online(c);
    size_t cap = ESPADMIN_DEVICE_MAX_COMMAND + 64;
    char *cmd = malloc(cap);
    const char *head = "{\"v\":1,\"id\":\"big\",\"name\":\"restart\",\"expires_at\":9000000000000,\"params\":{\"reason\":\"r\"}";
    size_t n = strlen(head);
    memcpy(cmd, head, n);
    memset(cmd + n, ' ', ESPADMIN_DEVICE_MAX_COMMAND - n - 1);
    cmd[ESPADMIN_DEVICE_MAX_COMMAND - 1] = '}';
    espadmin_stats_t st;
    espadmin_get_stats(c->a, &st);
    uint32_t dropped = st.inbox_dropped;
    /* one byte over: not even queued */
    cmd[ESPADMIN_DEVICE_MAX_COMMAND] = ' ';
    assert_true(espadmin_on_message(c->a, FAKE_CMD_TOPIC, cmd, ESPADMIN_DEVICE_MAX_COMMAND + 1) < 0);
    espadmin_get_stats(c->a, &st);
    assert_int_equal(st.inbox_dropped, dropped + 1);
    /* at the limit: carried out */
    assert_int_equal(espadmin_on_message(c->a, FAKE_CMD_TOPIC, cmd, ESPADMIN_DEVICE_MAX_COMMAND), 0);
    espadmin_tick(c->a, c->f.now);
    assert_string_equal(field(c, "ack", "id"), "big");
    assert_string_equal(field(c, "ack", "result"), "ok");
#if ESPADMIN_DEVICE_MAX_CONFIG + 256 < ESPADMIN_DEVICE_MAX_COMMAND
    reboot(c);
    online(c);
    send_cmd(c, "{\"v\":1,\"id\":\"cfg7\",\"name\":\"config\",\"expires_at\":9000000000000,\"params\":{\"version\":7,"
                "\"hash\":\"" HASH_A "\",\"entries\":[{\"key\":\"interval_s\",\"type\":\"int\",\"value\":60}]}}");
    assert_string_equal(field(c, "ack", "result"), "ok");
    /* two strings whose stored form is 1 byte over the config limit */
    size_t each = (ESPADMIN_DEVICE_MAX_CONFIG - 2 + 1) / 2; /* keys "a" and "b" */
    size_t len = (size_t)snprintf(cmd, cap, "{\"v\":1,\"id\":\"cfg8\",\"name\":\"config\",\"expires_at\":9000000000000,"
                                            "\"params\":{\"version\":8,\"hash\":\"" HASH_A "\",\"entries\":[");
    for (int i = 0; i < 2; i++) {
        len += (size_t)snprintf(cmd + len, cap - len, "%s{\"key\":\"%c\",\"type\":\"string\",\"value\":\"", i ? "," : "",
                                'a' + i);
        memset(cmd + len, 'v', each + (size_t)i);
        len += each + (size_t)i;
        len += (size_t)snprintf(cmd + len, cap - len, "\"}");
    }
    len += (size_t)snprintf(cmd + len, cap - len, "]}}");
    assert_true(len <= ESPADMIN_DEVICE_MAX_COMMAND);
    assert_int_equal(espadmin_on_message(c->a, FAKE_CMD_TOPIC, cmd, len), 0);
    espadmin_tick(c->a, c->f.now);
    assert_string_equal(field(c, "ack", "id"), "cfg8");
    assert_string_equal(field(c, "ack", "result"), "error");
    char want[96];
    snprintf(want, sizeof(want), "config exceeds the device's limit of %d bytes", ESPADMIN_DEVICE_MAX_CONFIG);
    assert_string_equal(field(c, "ack", "message"), want);
    assert_int_equal(espadmin_config_version(c->a), 7);
    char buf[64];
    assert_int_equal(espadmin_config_get(c->a, "interval_s", NULL, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "60");
#endif
    free(cmd);
    assert_all_uplinks_valid(c);
}

static void test_not_provisioned(void **state)
{
    ctx_t *c = *state;
    fake_kv_put(&c->f, "espadmin", "device_key", "c2hvcnQ=");
    assert_null(espadmin_agent_init(&c->f.p, NULL));
}

int run_agent_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_boot_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_reported_after_boot, setup, teardown),
        cmocka_unit_test(test_backoff_grows_capped_with_jitter),
        cmocka_unit_test_setup_teardown(test_reconnect_uses_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_acks_then_restarts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_without_puback_waits_two_seconds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_debug_streams_and_stops_by_itself, setup, teardown),
        cmocka_unit_test(test_log_ring_overflow_counts_drops),
        cmocka_unit_test_setup_teardown(test_log_batch_reports_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_applied_with_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotated_mqtt_secret_used_next_connect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ota_good_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ota_bad_signature, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ota_hash_mismatch_keeps_running, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ota_already_running_and_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ota_failure_reasons, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ota_boot_failure_rolled_back_and_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ota_verify_deadline_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragment_reassembly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_provisioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_backtrace_reported_and_erased_on_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coredump_uploaded_on_request_then_erased, setup, teardown),
        cmocka_unit_test(test_json_partial_tree),
        cmocka_unit_test_setup_teardown(test_device_limits, setup, teardown),
    };
    return cmocka_run_group_tests_name("agent", tests, NULL, NULL);
}
