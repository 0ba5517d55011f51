/* The shared protocol vectors (broker/protocol/testdata/vectors): the C decoders, validators,
 * encoders, topic and access functions and crypto helpers must agree with every case. */
#include "tests.h"

#include "crypto_openssl.h"
#include "espadmin/json.h"
#include "espadmin/protocol.h"
#include "espadmin/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cJSON *load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", g_vectors_dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fail_msg("cannot open %s", path);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (j == NULL) {
        fail_msg("cannot parse %s", path);
    }
    return j;
}

static const char *sget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int64_t iget(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

static bool bget(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Payload bytes of a case; caller frees. */
static char *payload_of(const cJSON *c, size_t *len)
{
    const char *p = sget(c, "payload");
    if (p) {
        *len = strlen(p);
        char *out = malloc(*len + 1);
        memcpy(out, p, *len + 1);
        return out;
    }
    const char *b = sget(c, "payload_base64");
    assert_non_null(b);
    char *out = malloc(strlen(b) + 1);
    int n = espadmin_base64_decode(b, strlen(b), (uint8_t *)out, strlen(b));
    assert_true(n >= 0);
    *len = (size_t)n;
    return out;
}

static void check_command_decoded(const char *name, const espadmin_command_t *cmd, const cJSON *d)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(d, "params");
    if (strcmp(cmd->id, sget(d, "id")) != 0 || cmd->expires_at != iget(d, "expires_at")) {
        fail_msg("%s: id or expires_at differ", name);
    }
    const char *want = sget(d, "name");
    static const char *names[] = {"restart", "config", "update", "debug", "coredump"};
    assert_string_equal(names[cmd->name], want);
    switch (cmd->name) {
    case ESPADMIN_CMD_RESTART:
        assert_string_equal(cmd->restart_reason, sget(p, "reason") ? sget(p, "reason") : "");
        break;
    case ESPADMIN_CMD_DEBUG:
        assert_int_equal(cmd->debug.enabled, bget(p, "enabled"));
        assert_string_equal(espadmin_level_name(cmd->debug.level), sget(p, "level"));
        assert_int_equal(cmd->debug.duration_s, iget(p, "duration_s"));
        break;
    case ESPADMIN_CMD_UPDATE:
        assert_string_equal(cmd->update.version, sget(p, "version"));
        assert_int_equal(cmd->update.size, iget(p, "size"));
        assert_string_equal(cmd->update.sha256, sget(p, "sha256"));
        assert_string_equal(cmd->update.url, sget(p, "url"));
        assert_int_equal(cmd->update.url_expires_at, iget(p, "url_expires_at"));
        assert_string_equal(cmd->update.signature, sget(p, "signature") ? sget(p, "signature") : "");
        break;
    case ESPADMIN_CMD_COREDUMP:
        assert_string_equal(cmd->update.url, sget(p, "url"));
        assert_int_equal(cmd->update.url_expires_at, iget(p, "url_expires_at"));
        break;
    case ESPADMIN_CMD_CONFIG: {
        assert_int_equal(cmd->config.version, iget(p, "version"));
        assert_string_equal(cmd->config.hash, sget(p, "hash"));
        const cJSON *entries = cJSON_GetObjectItemCaseSensitive(p, "entries");
        assert_int_equal(cmd->config.count, (size_t)cJSON_GetArraySize(entries));
        size_t i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, entries) {
            const espadmin_cfg_entry_t *ce = &cmd->config.entries[i++];
            assert_string_equal(ce->key, sget(e, "key"));
            assert_string_equal(espadmin_cfg_type_name(ce->type), sget(e, "type"));
            assert_int_equal(ce->secret, bget(e, "secret"));
            char *got_raw = strndup(cmd->value_text + ce->value_off, ce->value_len);
            const char *got = got_raw;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "value");
            if (cmd->values_raw) {
                /* small profile: the value's JSON text in the payload */
                cJSON *mine = cJSON_Parse(got);
                assert_non_null(mine);
                if (!cJSON_Compare(mine, v, true)) {
                    fail_msg("%s: entry %s value %s differs", name, ce->key, got);
                }
                cJSON_Delete(mine);
            } else if (ce->secret || ce->type == ESPADMIN_CFG_STRING) {
                assert_true(cJSON_IsString(v));
                assert_string_equal(got, v->valuestring);
            } else {
                /* compare as JSON values: our compact text parses to the expected value */
                cJSON *mine = cJSON_Parse(got);
                assert_non_null(mine);
                if (!cJSON_Compare(mine, v, true)) {
                    fail_msg("%s: entry %s value %s differs", name, ce->key, got);
                }
                cJSON_Delete(mine);
            }
            free(got_raw);
        }
        break;
    }
    }
}

/* Re-encodes a decoded uplink with the C encoder; the output must decode to the same value. */
static void check_encoder(const char *name, espadmin_kind_t kind, const cJSON *d)
{
    char buf[16384];
    int n = -2;
    switch (kind) {
    case ESPADMIN_KIND_STATUS:
        n = espadmin_encode_status(buf, sizeof(buf), bget(d, "online"));
        break;
    case ESPADMIN_KIND_CONFIG_REQ:
        n = espadmin_encode_config_req(buf, sizeof(buf), iget(d, "config_version"), sget(d, "hash"));
        break;
    case ESPADMIN_KIND_ACK: {
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(d, "data");
        if (data && !(cJSON_GetArraySize(data) == 1 && cJSON_GetObjectItemCaseSensitive(data, "config_version"))) {
            return; /* the device only sends config_version as data */
        }
        n = espadmin_encode_ack(buf, sizeof(buf), sget(d, "id"), sget(d, "result"), sget(d, "message"),
                                data ? iget(data, "config_version") : -1);
        break;
    }
    case ESPADMIN_KIND_OTA:
        n = espadmin_encode_ota(buf, sizeof(buf), sget(d, "id"), sget(d, "version"), sget(d, "state"),
                                (int)iget(d, "progress"), sget(d, "reason"), sget(d, "message"));
        break;
    case ESPADMIN_KIND_METADATA: {
        const cJSON *rssi = cJSON_GetObjectItemCaseSensitive(d, "rssi");
        espadmin_metadata_t m = {
            .firmware_version = sget(d, "firmware_version"),
            .project = sget(d, "project"),
            .chip_model = sget(d, "chip_model"),
            .chip_revision = (int)iget(d, "chip_revision"),
            .idf_version = sget(d, "idf_version"),
            .mac = sget(d, "mac"),
            .ip = sget(d, "ip"),
            .has_rssi = rssi != NULL,
            .rssi = rssi ? (int)rssi->valuedouble : 0,
            .free_heap = iget(d, "free_heap"),
            .min_free_heap = iget(d, "min_free_heap"),
            .uptime_ms = iget(d, "uptime_ms"),
            .reset_reason = sget(d, "reset_reason"),
            .config_version = iget(d, "config_version"),
        };
        const cJSON *lim = cJSON_GetObjectItemCaseSensitive(d, "limits");
        if (lim) {
            m.limit_command_bytes = iget(lim, "command_bytes");
            m.limit_config_bytes = iget(lim, "config_bytes");
        }
        if (iget(d, "protocol_version") != ESPADMIN_PROTOCOL_VERSION) {
            return;
        }
        n = espadmin_encode_metadata(buf, sizeof(buf), &m);
        break;
    }
    case ESPADMIN_KIND_ERROR: {
        /* The device sends addresses only (the server symbolicates), so cases with func, file
         * or line in a frame are not the agent's to encode. */
        espadmin_crash_t crash;
        memset(&crash, 0, sizeof(crash));
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(d, "backtrace")) {
            if (sget(f, "func") || sget(f, "file") || iget(f, "line") >= 0 || crash.nframes == ESPADMIN_MAX_CRASH_FRAMES) {
                return;
            }
            crash.frames[crash.nframes].pc = (uint32_t)strtoul(sget(f, "pc"), NULL, 16);
            crash.frames[crash.nframes].sp = sget(f, "sp") ? (uint32_t)strtoul(sget(f, "sp"), NULL, 16) : 0;
            crash.nframes++;
        }
        const cJSON *cd = cJSON_GetObjectItemCaseSensitive(d, "core_dump");
        const char *task = cd ? sget(cd, "task") : NULL, *cause = cd ? sget(cd, "cause") : NULL;
        const char *summary = cd ? sget(cd, "summary") : NULL;
        snprintf(crash.task, sizeof(crash.task), "%s", task ? task : "");
        snprintf(crash.reason, sizeof(crash.reason), "%s", cause ? cause : "");
        snprintf(crash.summary, sizeof(crash.summary), "%s", summary ? summary : "");
        crash.size = cd && iget(cd, "size") > 0 ? iget(cd, "size") : 0;
        espadmin_error_report_t e = {
            .message = sget(d, "message"),
            .type = sget(d, "type"),
            .code = sget(d, "code"),
            .severity = sget(d, "severity"),
            .reset_reason = sget(d, "reset_reason"),
            .firmware_version = sget(d, "firmware_version"),
            .uptime_ms = iget(d, "uptime_ms"),
            .free_heap = iget(d, "free_heap"),
            .crash = crash.nframes > 0 || cd ? &crash : NULL,
        };
        n = espadmin_encode_error(buf, sizeof(buf), &e);
        break;
    }
    default:
        return;
    }
    if (n < 0) {
        fail_msg("%s: encoder refused", name);
    }
    cJSON *mine = cJSON_ParseWithLength(buf, (size_t)n);
    assert_non_null(mine);
    if (!cJSON_Compare(mine, d, true)) {
        char *want = cJSON_PrintUnformatted(d);
        fail_msg("%s: encoded %s, want %s", name, buf, want);
    }
    cJSON_Delete(mine);
}

static int g_cases;

static void run_message_file(const char *file)
{
    cJSON *root = load(file);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *name = sget(c, "name");
        const char *topic = sget(c, "topic");
        bool up = false;
        espadmin_kind_t kind;
        char id[65];
        const char *slash = strchr(topic, '/');
        char rootname[65];
        snprintf(rootname, sizeof(rootname), "%.*s", (int)(slash - topic), topic);
        assert_int_equal(espadmin_parse_topic(rootname, topic, id, sizeof(id), &up, &kind), ESPADMIN_OK);
        size_t len;
        char *payload = payload_of(c, &len);
        espadmin_perr_t err;
        espadmin_perr_code_t code;
        espadmin_command_t *cmd = NULL;
        if (kind == ESPADMIN_KIND_CMD) {
            cmd = espadmin_command_new(len);
            code = espadmin_command_decode(payload, len, cmd, &err);
            char peek[65];
            espadmin_command_peek_id(payload, len, peek);
            const char *want_peek = sget(c, "peek_id");
            if (want_peek && strcmp(peek, want_peek) != 0) {
                fail_msg("%s/%s: peek_id %s, want %s", file, name, peek, want_peek);
            }
        } else {
            code = espadmin_uplink_validate(kind, payload, len, &err);
        }
        bool valid = bget(c, "valid");
        if (valid) {
            if (code != ESPADMIN_OK) {
                fail_msg("%s/%s: refused with %s %s", file, name, espadmin_perr_class(code), err.field);
            }
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "decoded");
            if (cmd) {
                check_command_decoded(name, cmd, d);
            } else {
                check_encoder(name, kind, d);
            }
        } else {
            const char *want = sget(c, "error");
            const char *field = sget(c, "field");
            if (strcmp(espadmin_perr_class(code), want) != 0 ||
                (field && strcmp(field, err.field) != 0)) {
                fail_msg("%s/%s: got %s '%s', want %s '%s'", file, name, espadmin_perr_class(code),
                         err.field, want, field ? field : "");
            }
        }
        espadmin_free(cmd);
        free(payload);
        g_cases++;
    }
    cJSON_Delete(root);
}

static void test_command_vectors(void **state) { (void)state; run_message_file("command.json"); }
static void test_status_vectors(void **state) { (void)state; run_message_file("status.json"); }
static void test_metadata_vectors(void **state) { (void)state; run_message_file("metadata.json"); }
static void test_config_req_vectors(void **state) { (void)state; run_message_file("config_req.json"); }
static void test_ack_vectors(void **state) { (void)state; run_message_file("ack.json"); }
static void test_ota_vectors(void **state) { (void)state; run_message_file("ota.json"); }
static void test_log_vectors(void **state) { (void)state; run_message_file("log.json"); }
static void test_error_vectors(void **state) { (void)state; run_message_file("error.json"); }

static void test_topic_vectors(void **state)
{
    (void)state;
    cJSON *root = load("topic.json");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *name = sget(c, "name");
        char id[300];
        bool up = false;
        espadmin_kind_t kind = ESPADMIN_KIND_COUNT;
        espadmin_perr_code_t code =
            espadmin_parse_topic(sget(c, "root"), sget(c, "topic"), id, sizeof(id), &up, &kind);
        if (bget(c, "valid")) {
            if (code != ESPADMIN_OK) {
                fail_msg("topic %s: refused (%s)", name, espadmin_perr_class(code));
            }
            assert_string_equal(id, sget(c, "device"));
            assert_string_equal(up ? "up" : "down", sget(c, "dir"));
            assert_string_equal(espadmin_kind_name(kind), sget(c, "kind"));
            /* building the topic gives the same bytes */
            char built[300];
            assert_true(espadmin_topic(built, sizeof(built), sget(c, "root"), id, kind) > 0);
            assert_string_equal(built, sget(c, "topic"));
        } else if (strcmp(espadmin_perr_class(code), sget(c, "error")) != 0) {
            fail_msg("topic %s: got %s, want %s", name, espadmin_perr_class(code), sget(c, "error"));
        }
    }
    cJSON_Delete(root);
}

static void test_acl_vectors(void **state)
{
    (void)state;
    cJSON *root = load("acl.json");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const char *action = sget(c, "action");
        const char *r = sget(c, "root"), *dev = sget(c, "device"), *t = sget(c, "topic");
        bool got;
        if (strstr(sget(c, "name"), "NUL")) {
            /* a C string cannot carry the NUL: the reassembler refuses such a topic */
            static const char topic_with_nul[] = "espadmin/dev1/down/\0cmd";
            espadmin_reasm_t ra;
            espadmin_reasm_init(&ra, 8);
            assert_int_equal(espadmin_reasm_feed(&ra, topic_with_nul, sizeof(topic_with_nul) - 1, 1, 0, "x", 1),
                             ESPADMIN_REASM_REFUSED);
            assert_false(bget(c, "allowed"));
            continue;
        }
        if (strcmp(action, "subscribe") == 0) {
            got = espadmin_device_may_subscribe(r, dev, t);
        } else if (strcmp(action, "publish") == 0) {
            got = espadmin_device_may_publish(r, dev, t, bget(c, "retain"));
        } else if (strcmp(action, "receive") == 0) {
            got = espadmin_device_may_receive(r, dev, t);
        } else {
            const char *p = sget(c, "payload");
            got = espadmin_device_may_set_will(r, dev, t, p, strlen(p));
        }
        if (got != bget(c, "allowed")) {
            fail_msg("acl %s: got %d", sget(c, "name"), got);
        }
    }
    /* the agent's own filter and will are allowed */
    char filter[300];
    espadmin_downlink_filter(filter, sizeof(filter), "espadmin", "dev1");
    assert_true(espadmin_device_may_subscribe("espadmin", "dev1", filter));
    cJSON_Delete(root);
}

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (uint8_t)v;
    }
}

static void test_ota_signature_vectors(void **state)
{
    (void)state;
    cJSON *root = load("ota_signature.json");
    uint8_t pub[32];
    unhex(sget(root, "public_key_hex"), pub, 32);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(c, "params");
        espadmin_update_params_t u;
        memset(&u, 0, sizeof(u));
        snprintf(u.version, sizeof(u.version), "%s", sget(p, "version"));
        u.size = iget(p, "size");
        snprintf(u.sha256, sizeof(u.sha256), "%s", sget(p, "sha256"));
        snprintf(u.url, sizeof(u.url), "%s", sget(p, "url"));
        u.url_expires_at = iget(p, "url_expires_at");
        char canon[4096];
        int n = espadmin_ota_signing_string(&u, canon, sizeof(canon));
        assert_true(n > 0);
        assert_string_equal(canon, sget(c, "canonical"));
        const char *hex = sget(c, "canonical_hex");
        if (hex) {
            uint8_t *bytes = malloc(strlen(hex) / 2);
            unhex(hex, bytes, strlen(hex) / 2);
            assert_int_equal((size_t)n, strlen(hex) / 2);
            assert_memory_equal(bytes, canon, (size_t)n);
            free(bytes);
        }
        uint8_t sig[66];
        const char *s = sget(c, "signature");
        assert_int_equal(espadmin_base64_decode(s, strlen(s), sig, sizeof(sig)), 64);
        bool ok = ossl_ed25519_verify(NULL, pub, canon, (size_t)n, sig);
        if (ok != bget(c, "valid")) {
            fail_msg("signature %s: verify %d", sget(c, "name"), ok);
        }
    }
    cJSON_Delete(root);
}

static void test_config_secret_vectors(void **state)
{
    (void)state;
    cJSON *root = load("config_secret.json");
    uint8_t key[32];
    unhex(sget(root, "device_key_hex"), key, 32);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(root, "cases")) {
        char aad[256];
        int an = espadmin_secret_aad(sget(c, "device_id"), sget(c, "key"), iget(c, "version"), aad, sizeof(aad));
        assert_true(an > 0);
        if (sget(c, "associated_data")) {
            assert_string_equal(aad, sget(c, "associated_data"));
        }
        const char *sealed = sget(c, "sealed");
        uint8_t buf[512];
        int n = espadmin_base64_decode(sealed, strlen(sealed), buf, sizeof(buf));
        assert_true(n >= 29);
        if (sget(c, "nonce_hex")) {
            uint8_t nonce[12];
            unhex(sget(c, "nonce_hex"), nonce, 12);
            assert_memory_equal(nonce, buf, 12);
        }
        size_t ct_len = (size_t)n - 28;
        char plain[512];
        bool ok = ossl_aes_gcm_decrypt(NULL, key, buf, aad, (size_t)an, buf + 12, ct_len, buf + 12 + ct_len, plain);
        if (ok != bget(c, "valid")) {
            fail_msg("secret %s: decrypt %d", sget(c, "name"), ok);
        }
        if (ok) {
            plain[ct_len] = '\0';
            assert_string_equal(plain, sget(c, "plaintext"));
        }
    }
    cJSON_Delete(root);
}

/* ---- integer text without printf (newlib-nano has no 64-bit formats) ---- */

static void test_fmt_integers(void **state)
{
    (void)state;
    static const struct {
        int64_t v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {-1, "-1"},
        {10, "10"},
        {-10, "-10"},
        {4294967296LL, "4294967296"},
        {ESPADMIN_MAX_SAFE_INTEGER, "9007199254740991"},
        {-ESPADMIN_MAX_SAFE_INTEGER, "-9007199254740991"},
        {INT64_MAX, "9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[ESPADMIN_I64_TEXT_MAX];
        memset(buf, 'x', sizeof(buf));
        size_t n = espadmin_fmt_i64(buf, cases[i].v);
        assert_string_equal(buf, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
        /* the JSON writer and the parser agree on the same text */
        char json[64];
        ej_writer_t w;
        ejw_init(&w, json, sizeof(json));
        ejw_obj_begin(&w);
        ejw_key(&w, "n");
        ejw_int(&w, cases[i].v);
        ejw_obj_end(&w);
        assert_true(ejw_finish(&w) > 0);
        ej_doc_t doc;
        assert_int_equal(ej_parse(&doc, json, strlen(json)), EJ_OK);
        int64_t back = 0;
        assert_true(ej_int(ej_get(doc.root, "n"), &back, NULL));
        assert_true(back == cases[i].v);
        ej_free(&doc);
    }
    char buf[ESPADMIN_I64_TEXT_MAX];
    assert_int_equal(espadmin_fmt_u64(buf, UINT64_MAX), 20);
    assert_string_equal(buf, "18446744073709551615");
}

static void test_append_is_bounded_and_sticky(void **state)
{
    (void)state;
    char buf[8];
    size_t n = 0;
    assert_true(espadmin_append(buf, sizeof(buf), &n, "ab"));
    assert_true(espadmin_append_i64(buf, sizeof(buf), &n, -12));
    assert_string_equal(buf, "ab-12");
    assert_int_equal(n, 5);
    assert_true(espadmin_append(buf, sizeof(buf), &n, "cd")); /* exactly fills: 7 + NUL */
    assert_string_equal(buf, "ab-12cd");
    assert_false(espadmin_append(buf, sizeof(buf), &n, "e"));
    assert_int_equal(n, sizeof(buf));
    assert_false(espadmin_append(buf, sizeof(buf), &n, "")); /* stays failed */
    assert_string_equal(buf, "ab-12cd");                     /* and intact */
    n = 0;
    assert_false(espadmin_append_i64(buf, sizeof(buf), &n, INT64_MIN));
    /* the signing string refuses a buffer one byte short, and fits exactly otherwise */
    espadmin_update_params_t u;
    memset(&u, 0, sizeof(u));
    snprintf(u.version, sizeof(u.version), "v-1.2.3");
    u.size = 4294967297LL; /* above 32 bits: what %lld under newlib-nano would get wrong */
    snprintf(u.sha256, sizeof(u.sha256), "%064d", 0);
    snprintf(u.url, sizeof(u.url), "https://x/y");
    u.url_expires_at = 1767225600000LL;
    static const char want[] = "espadmin-ota-v1\nv-1.2.3\n4294967297\n"
                               "0000000000000000000000000000000000000000000000000000000000000000\n"
                               "https://x/y\n1767225600000";
    char canon[256];
    assert_int_equal(espadmin_ota_signing_string(&u, canon, sizeof(want)), (int)sizeof(want) - 1);
    assert_string_equal(canon, want);
    assert_int_equal(espadmin_ota_signing_string(&u, canon, sizeof(want) - 1), -1);
    assert_int_equal(espadmin_secret_aad("dev", "k", -5, canon, sizeof(canon)), 24);
    assert_string_equal(canon, "espadmin-cfg-v1\ndev\nk\n-5");
}

static void test_writer_escapes_control_characters(void **state)
{
    (void)state;
    char json[64];
    ej_writer_t w;
    ejw_init(&w, json, sizeof(json));
    ejw_obj_begin(&w);
    ejw_key(&w, "s");
    ejw_string(&w, "a\x01\x1f\"\n");
    ejw_obj_end(&w);
    assert_true(ejw_finish(&w) > 0);
    assert_string_equal(json, "{\"s\":\"a\\u0001\\u001f\\\"\\n\"}");
}

/* The reassembler copies nothing for a whole message, holds a fragmented one in a block of its
 * exact size only while it is in flight, and frees what it abandons (LeakSanitizer checks). */
static void test_reasm_buffers(void **state)
{
    (void)state;
    static const char topic[] = "espadmin/dev1/down/cmd";
    espadmin_reasm_t r;
    espadmin_reasm_init(&r, 16);
    const char whole[] = "abc";
    assert_int_equal(espadmin_reasm_feed(&r, topic, strlen(topic), 3, 0, whole, 3), ESPADMIN_REASM_COMPLETE);
    assert_ptr_equal(r.data, whole);
    assert_null(r.buf);
    assert_null(espadmin_reasm_take(&r));
    /* fragmented: a buffer appears with the first fragment and is handed over at the end */
    assert_int_equal(espadmin_reasm_feed(&r, topic, strlen(topic), 6, 0, "abc", 3), ESPADMIN_REASM_PENDING);
    assert_non_null(r.buf);
    assert_int_equal(espadmin_reasm_feed(&r, NULL, 0, 6, 3, "def", 3), ESPADMIN_REASM_COMPLETE);
    assert_ptr_equal(r.data, r.buf);
    assert_memory_equal(r.data, "abcdef", 6);
    assert_string_equal(r.topic, topic);
    char *taken = espadmin_reasm_take(&r);
    assert_non_null(taken);
    assert_null(r.buf);
    espadmin_free(taken);
    /* abandoned by a new message, refused out of order, over the cap: nothing is kept */
    assert_int_equal(espadmin_reasm_feed(&r, topic, strlen(topic), 6, 0, "abc", 3), ESPADMIN_REASM_PENDING);
    assert_int_equal(espadmin_reasm_feed(&r, topic, strlen(topic), 8, 0, "abcd", 4), ESPADMIN_REASM_PENDING);
    assert_int_equal(espadmin_reasm_feed(&r, NULL, 0, 8, 5, "x", 1), ESPADMIN_REASM_REFUSED);
    assert_null(r.buf);
    assert_int_equal(espadmin_reasm_feed(&r, topic, strlen(topic), 17, 0, "abcd", 4), ESPADMIN_REASM_REFUSED);
    assert_null(r.buf);
    assert_int_equal(espadmin_reasm_feed(&r, NULL, 0, 17, 4, "efgh", 4), ESPADMIN_REASM_PENDING); /* skipped */
    assert_int_equal(espadmin_reasm_feed(&r, topic, strlen(topic), 6, 0, "abc", 3), ESPADMIN_REASM_PENDING);
    espadmin_reasm_free(&r);
    assert_null(r.buf);
}

int run_vector_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt_integers),
        cmocka_unit_test(test_append_is_bounded_and_sticky),
        cmocka_unit_test(test_writer_escapes_control_characters),
        cmocka_unit_test(test_reasm_buffers),
        cmocka_unit_test(test_command_vectors),
        cmocka_unit_test(test_status_vectors),
        cmocka_unit_test(test_metadata_vectors),
        cmocka_unit_test(test_config_req_vectors),
        cmocka_unit_test(test_ack_vectors),
        cmocka_unit_test(test_ota_vectors),
        cmocka_unit_test(test_log_vectors),
        cmocka_unit_test(test_error_vectors),
        cmocka_unit_test(test_topic_vectors),
        cmocka_unit_test(test_acl_vectors),
        cmocka_unit_test(test_ota_signature_vectors),
        cmocka_unit_test(test_config_secret_vectors),
    };
    return cmocka_run_group_tests_name("protocol vectors", tests, NULL, NULL);
}
