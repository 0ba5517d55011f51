/* Protocol version 1: topics, access rules, command decoding, uplink validation and encoding. */
#include "espadmin/protocol.h"

#include "espadmin/json.h"
#include "espadmin/util.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_reset_reasons[] = {
    "unknown", "poweron", "ext", "sw", "panic", "int_wdt", "task_wdt", "wdt",
    "deepsleep", "brownout", "sdio", "usb", "jtag", "efuse", "pwr_glitch", "cpu_lockup", NULL};
static const char *const k_levels[] = {"error", "warn", "info", "debug", "verbose", NULL};
static const char *const k_results[] = {"ok", "error", "rejected", NULL};
static const char *const k_ota_states[] = {"downloading", "downloaded", "installing",
                                           "rebooting", "succeeded", "failed", NULL};
static const char *const k_ota_reasons[] = {
    "hash_mismatch", "size_mismatch", "bad_signature", "download_error", "no_space",
    "invalid_image", "boot_failed_rolled_back", "already_running", "expired", "busy",
    "internal", NULL};
static const char *const k_severities[] = {"error", "warning", "info", NULL};
static const char *const k_cfg_types[] = {"string", "int", "float", "bool", "json", NULL};
static const char *const k_kinds[] = {"status", "metadata", "config_req", "ack",
                                      "ota", "log", "error", "cmd", NULL};

const char *espadmin_perr_class(espadmin_perr_code_t code)
{
    switch (code) {
    case ESPADMIN_OK: return "";
    case ESPADMIN_E_TOO_LARGE: return "too_large";
    case ESPADMIN_E_MALFORMED: return "malformed";
    case ESPADMIN_E_UNSUPPORTED_VERSION: return "unsupported_version";
    case ESPADMIN_E_INVALID_FIELD: return "invalid_field";
    case ESPADMIN_E_UNKNOWN_COMMAND: return "unknown_command";
    case ESPADMIN_E_INVALID_TOPIC: return "invalid_topic";
    case ESPADMIN_E_UNKNOWN_KIND: return "unknown_kind";
    case ESPADMIN_E_NO_MEMORY: return "internal";
    }
    return "internal";
}

const char *espadmin_kind_name(espadmin_kind_t kind)
{
    return kind < ESPADMIN_KIND_COUNT ? k_kinds[kind] : "";
}

const char *espadmin_level_name(espadmin_level_t level)
{
    return level <= ESPADMIN_LEVEL_VERBOSE ? k_levels[level] : "info";
}

const char *espadmin_cfg_type_name(espadmin_cfg_type_t t)
{
    return t <= ESPADMIN_CFG_JSON ? k_cfg_types[t] : "";
}

/* ---- small validators ---- */

static bool is_lower_hex(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool valid_sha256(const char *s) { return strlen(s) == 64 && is_lower_hex(s); }

static bool valid_address(const char *s)
{
    return strncmp(s, "0x", 2) == 0 && strlen(s + 2) <= 16 && is_lower_hex(s + 2);
}

static bool valid_mac(const char *s)
{
    if (strlen(s) != 17) {
        return false;
    }
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2) {
            if (s[i] != ':') {
                return false;
            }
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

bool espadmin_valid_device_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > ESPADMIN_MAX_ID_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

bool espadmin_valid_root(const char *root)
{
    size_t n = strlen(root);
    if (n == 0 || n > ESPADMIN_MAX_ROOT_LEN) {
        return false;
    }
    size_t level = 0;
    for (size_t i = 0; i <= n; i++) {
        char c = root[i];
        if (c == '/' || c == '\0') {
            if (level == 0) {
                return false;
            }
            level = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.')) {
            return false;
        }
        level++;
    }
    return true;
}

bool espadmin_valid_release_version(const char *s)
{
    if (strncmp(s, "v-", 2) != 0) {
        return false;
    }
    s += 2;
    for (int part = 0; part < 3; part++) {
        size_t n = 0;
        while (s[n] >= '0' && s[n] <= '9') {
            n++;
        }
        if (n == 0 || n > 9 || (n > 1 && s[0] == '0')) {
            return false;
        }
        s += n;
        if (part < 2) {
            if (*s != '.') {
                return false;
            }
            s++;
        }
    }
    return *s == '\0';
}

static bool parse_ipv4(const char *s, size_t len)
{
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        size_t start = i;
        int v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
            v = v * 10 + (s[i] - '0');
            i++;
        }
        size_t n = i - start;
        if (n == 0 || v > 255 || (n > 1 && s[start] == '0')) {
            return false;
        }
        parts++;
        if (parts < 4) {
            if (i >= len || s[i] != '.') {
                return false;
            }
            i++;
        }
    }
    return i == len;
}

static bool parse_ipv6(const char *s, size_t len)
{
    int groups = 0;
    bool gap = false;
    size_t i = 0;
    if (len >= 2 && s[0] == ':' && s[1] == ':') {
        gap = true;
        i = 2;
        if (i == len) {
            return true;
        }
    } else if (len > 0 && s[0] == ':') {
        return false;
    }
    while (i < len) {
        size_t start = i;
        while (i < len && i - start < 5 &&
               ((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                (s[i] >= 'A' && s[i] <= 'F'))) {
            i++;
        }
        if (i < len && s[i] == '.') {
            /* embedded IPv4 takes two groups and ends the address */
            if (!parse_ipv4(s + start, len - start)) {
                return false;
            }
            groups += 2;
            i = len;
            break;
        }
        size_t n = i - start;
        if (n == 0 || n > 4) {
            return false;
        }
        groups++;
        if (i == len) {
            break;
        }
        if (s[i] != ':') {
            return false;
        }
        i++;
        if (i < len && s[i] == ':') {
            if (gap) {
                return false;
            }
            gap = true;
            i++;
            if (i == len) {
                break;
            }
        } else if (i == len) {
            return false;
        }
    }
    return gap ? groups < 8 : groups == 8;
}

bool espadmin_valid_ip(const char *s)
{
    size_t len = strlen(s);
    if (memchr(s, ':', len)) {
        return parse_ipv6(s, len);
    }
    return parse_ipv4(s, len);
}

static bool valid_download_url(const char *s)
{
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            return false;
        }
    }
    const char *rest;
    if (strncmp(s, "http://", 7) == 0) {
        rest = s + 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        rest = s + 8;
    } else {
        return false;
    }
    size_t auth = strcspn(rest, "/?#");
    if (auth == 0 || memchr(rest, '@', auth) != NULL) {
        return false;
    }
    return true;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int espadmin_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap)
{
    if (len % 4 != 0) {
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad) {
                    return -1;
                }
                v[k] = b64val(c);
                if (v[k] < 0) {
                    return -1;
                }
            }
        }
        if (pad == 1 && (v[2] & 0x03) != 0) {
            return -1; /* non-canonical trailing bits */
        }
        if (pad == 2 && (v[1] & 0x0F) != 0) {
            return -1;
        }
        uint32_t w = ((uint32_t)v[0] << 18) | ((uint32_t)v[1] << 12) | ((uint32_t)v[2] << 6) |
                     (uint32_t)v[3];
        uint8_t b[3] = {(uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w};
        for (int k = 0; k < 3 - pad; k++) {
            if (n >= cap) {
                return -1;
            }
            out[n++] = b[k];
        }
    }
    return (int)n;
}

static size_t base64_decoded_len(const char *in, size_t len)
{
    if (len % 4 != 0) {
        return 0;
    }
    size_t n = len / 4 * 3;
    if (len >= 1 && in[len - 1] == '=') n--;
    if (len >= 2 && in[len - 2] == '=') n--;
    return n;
}

/* ---- topics ---- */

/* n, snprintf's result, when the topic fit in cap and the protocol's limit; otherwise -1 */
static int topic_fits(int n, size_t cap)
{
    return n < 0 || (size_t)n >= cap || n > ESPADMIN_MAX_TOPIC_LEN ? -1 : n;
}

int espadmin_topic(char *buf, size_t cap, const char *root, const char *id, espadmin_kind_t kind)
{
    if (kind >= ESPADMIN_KIND_COUNT) {
        return -1;
    }
    return topic_fits(kind == ESPADMIN_KIND_CMD ? snprintf(buf, cap, "%s/%s/down/cmd", root, id)
                                                : snprintf(buf, cap, "%s/%s/up/%s", root, id, k_kinds[kind]),
                      cap);
}

int espadmin_downlink_filter(char *buf, size_t cap, const char *root, const char *id)
{
    return topic_fits(snprintf(buf, cap, "%s/%s/down/#", root, id), cap);
}

static bool valid_topic_string(const char *t)
{
    size_t n = strlen(t);
    return n > 0 && n <= ESPADMIN_MAX_TOPIC_LEN && ej_utf8_valid(t, n);
}

static bool valid_topic_name(const char *t)
{
    return valid_topic_string(t) && strpbrk(t, "+#") == NULL;
}

espadmin_perr_code_t espadmin_parse_topic(const char *root, const char *topic, char *device_id,
                                          size_t id_cap, bool *dir_up, espadmin_kind_t *kind)
{
    if (!espadmin_valid_root(root) || !valid_topic_name(topic)) {
        return ESPADMIN_E_INVALID_TOPIC;
    }
    size_t rl = strlen(root);
    if (strncmp(topic, root, rl) != 0 || topic[rl] != '/') {
        return ESPADMIN_E_INVALID_TOPIC;
    }
    const char *rest = topic + rl + 1;
    const char *s1 = strchr(rest, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || strchr(s2 + 1, '/')) {
        return ESPADMIN_E_INVALID_TOPIC;
    }
    char id[ESPADMIN_MAX_TOPIC_LEN + 1];
    size_t idl = (size_t)(s1 - rest);
    memcpy(id, rest, idl);
    id[idl] = '\0';
    if (!espadmin_valid_device_id(id)) {
        return ESPADMIN_E_INVALID_TOPIC;
    }
    size_t dl = (size_t)(s2 - s1 - 1);
    const char *k = s2 + 1;
    bool up;
    espadmin_kind_t kk = ESPADMIN_KIND_COUNT;
    if (dl == 4 && strncmp(s1 + 1, "down", 4) == 0) {
        up = false;
        if (strcmp(k, "cmd") != 0) {
            return ESPADMIN_E_UNKNOWN_KIND;
        }
        kk = ESPADMIN_KIND_CMD;
    } else if (dl == 2 && strncmp(s1 + 1, "up", 2) == 0) {
        up = true;
        for (int i = 0; i < ESPADMIN_KIND_CMD; i++) {
            if (strcmp(k, k_kinds[i]) == 0) {
                kk = (espadmin_kind_t)i;
            }
        }
        if (kk == ESPADMIN_KIND_COUNT) {
            return ESPADMIN_E_UNKNOWN_KIND;
        }
    } else {
        return ESPADMIN_E_INVALID_TOPIC;
    }
    if (device_id) {
        if (idl + 1 > id_cap) {
            return ESPADMIN_E_INVALID_TOPIC;
        }
        memcpy(device_id, id, idl + 1);
    }
    if (dir_up) {
        *dir_up = up;
    }
    if (kind) {
        *kind = kk;
    }
    return ESPADMIN_OK;
}

/* Returns the part after "{root}/{id}/down/", or NULL. */
static const char *own_downlink_rest(const char *root, const char *id, const char *t)
{
    size_t rl = strlen(root), il = strlen(id);
    if (strncmp(t, root, rl) != 0 || t[rl] != '/' || strncmp(t + rl + 1, id, il) != 0 ||
        strncmp(t + rl + 1 + il, "/down/", 6) != 0) {
        return NULL;
    }
    return t + rl + 1 + il + 6;
}

bool espadmin_device_may_subscribe(const char *root, const char *id, const char *filter)
{
    if (!espadmin_valid_root(root) || !espadmin_valid_device_id(id) ||
        !valid_topic_string(filter)) {
        return false;
    }
    const char *rest = own_downlink_rest(root, id, filter);
    if (!rest) {
        return false;
    }
    for (;;) {
        const char *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (n == 0) {
            return false;
        }
        bool has_wild = memchr(rest, '+', n) || memchr(rest, '#', n);
        if (n == 1 && rest[0] == '#') {
            if (slash) {
                return false;
            }
        } else if (n == 1 && rest[0] == '+') {
            /* single-level wildcard */
        } else if (has_wild) {
            return false;
        }
        if (!slash) {
            return true;
        }
        rest = slash + 1;
    }
}

bool espadmin_device_may_receive(const char *root, const char *id, const char *topic)
{
    /* a topic name is a filter without wildcards: the same levels are allowed */
    return valid_topic_name(topic) && espadmin_device_may_subscribe(root, id, topic);
}

bool espadmin_device_may_publish(const char *root, const char *id, const char *topic, bool retain)
{
    char tid[ESPADMIN_MAX_ID_LEN + 1];
    bool up = false;
    espadmin_kind_t kind;
    if (espadmin_parse_topic(root, topic, tid, sizeof(tid), &up, &kind) != ESPADMIN_OK || !up ||
        strcmp(tid, id) != 0) {
        return false;
    }
    return !retain || kind == ESPADMIN_KIND_STATUS;
}

bool espadmin_device_may_set_will(const char *root, const char *id, const char *topic,
                                  const char *payload, size_t len)
{
    char want[ESPADMIN_MAX_TOPIC_LEN + 1];
    if (!espadmin_device_may_publish(root, id, topic, true) ||
        espadmin_topic(want, sizeof(want), root, id, ESPADMIN_KIND_STATUS) < 0 ||
        strcmp(want, topic) != 0) {
        return false;
    }
    espadmin_perr_t err;
    if (espadmin_uplink_validate(ESPADMIN_KIND_STATUS, payload, len, &err) != ESPADMIN_OK) {
        return false;
    }
    ej_doc_t doc;
    if (ej_parse(&doc, payload, len) != EJ_OK) {
        return false;
    }
    const ej_node_t *online = ej_get(doc.root, "online");
    bool offline = online && online->type == EJ_FALSE;
    ej_free(&doc);
    return offline;
}

/* ---- field reader: keeps the first error, like the Go reader ---- */

typedef struct {
    espadmin_perr_t *err;
} rd_t;

typedef struct {
    rd_t *r;
    const ej_node_t *n; /* NULL when the object is absent or not an object */
    char path[64];
} obj_t;

static void fail(rd_t *r, const char *field)
{
    if (r->err->code == ESPADMIN_OK) {
        r->err->code = ESPADMIN_E_INVALID_FIELD;
        espadmin_copy(r->err->field, sizeof(r->err->field), field);
    }
}

/* Appends src to dst (NUL-terminated, capacity cap), truncating. */
static void append(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(dst);
    while (*src && n + 1 < cap) {
        dst[n++] = *src++;
    }
    dst[n] = '\0';
}

static void name_of(const obj_t *o, const char *key, char *out, size_t cap)
{
    out[0] = '\0';
    if (o->path[0] != '\0') {
        append(out, cap, o->path);
        append(out, cap, ".");
    }
    append(out, cap, key);
}

static void fail_key(const obj_t *o, const char *key)
{
    char f[64];
    name_of(o, key, f, sizeof(f));
    fail(o->r, f);
}

static obj_t object_at(rd_t *r, const char *path, const ej_node_t *n)
{
    obj_t o;
    o.r = r;
    o.n = NULL;
    espadmin_copy(o.path, sizeof(o.path), path);
    if (n == NULL || n->type != EJ_OBJECT) {
        fail(r, path);
    } else {
        o.n = n;
    }
    return o;
}

static const ej_node_t *o_value(const obj_t *o, const char *key, bool required)
{
    const ej_node_t *v = o->n ? ej_get(o->n, key) : NULL;
    if (v == NULL || v->type == EJ_NULL) {
        if (required) {
            fail_key(o, key);
        }
        return NULL;
    }
    return v;
}

/* Returns the decoded string or NULL (absent or invalid). */
static const char *o_str(const obj_t *o, const char *key, bool required, size_t max_len)
{
    const ej_node_t *v = o_value(o, key, required);
    if (v == NULL) {
        return NULL;
    }
    if (v->type != EJ_STRING || (required && v->str_len == 0) || v->str_len > max_len) {
        fail_key(o, key);
        return NULL;
    }
    return v->str;
}

static const char *o_check(const obj_t *o, const char *key, const char *s, bool (*valid)(const char *))
{
    if (s && *s && !valid(s)) {
        fail_key(o, key);
        return NULL;
    }
    return s;
}

/* o_str, then the check valid (when not NULL), copied into dst ("" when absent or invalid) */
static void o_text(const obj_t *o, const char *key, bool required, size_t max_len,
                   bool (*valid)(const char *), char *dst, size_t cap)
{
    const char *s = o_str(o, key, required, max_len);
    espadmin_copy(dst, cap, valid ? o_check(o, key, s, valid) : s);
}

/* Integer ranges (o_int) and array lengths (o_array), by index: a call passes a small number
 * where two 64-bit bounds cost four literal loads each on the lx106. hi -1 stands for
 * ESPADMIN_MAX_SAFE_INTEGER. */
enum { R_NONNEG, R_POS, R_U16, R_POS_U16, R_RSSI, R_PCT, R_LINE, R_DUMP, R_CMD_BYTES, R_CFG_BYTES,
       R_LINES, R_FRAMES, R_DEBUG_S, R_IMAGE, R_ENTRIES };
static const int32_t k_ranges[][2] = {
    [R_NONNEG] = {0, -1},
    [R_POS] = {1, -1},
    [R_U16] = {0, 65535},
    [R_POS_U16] = {1, 65535},
    [R_RSSI] = {-127, 0},
    [R_PCT] = {0, 100},
    [R_LINE] = {0, 2147483647},
    [R_DUMP] = {0, ESPADMIN_MAX_CORE_DUMP_SIZE},
    [R_CMD_BYTES] = {1024, ESPADMIN_MAX_COMMAND_SIZE},
    [R_CFG_BYTES] = {256, 1048576},
    [R_LINES] = {1, ESPADMIN_MAX_LOG_LINES},
    [R_FRAMES] = {0, 64},
    [R_DEBUG_S] = {1, ESPADMIN_MAX_DEBUG_DURATION_S},
    [R_IMAGE] = {1, ESPADMIN_MAX_IMAGE_SIZE},
    [R_ENTRIES] = {0, ESPADMIN_MAX_CONFIG_ENTRIES},
};

static int64_t range_hi(int range)
{
    return k_ranges[range][1] < 0 ? ESPADMIN_MAX_SAFE_INTEGER : k_ranges[range][1];
}

static bool int_in(const ej_node_t *v, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t n;
    if (!ej_int(v, &n, NULL) || n < lo || n > hi) {
        return false;
    }
    *out = n;
    return true;
}

/* The integer at key within k_ranges[range]; 0 when absent or invalid. */
static int64_t o_int(const obj_t *o, const char *key, bool required, int range)
{
    const ej_node_t *v = o_value(o, key, required);
    if (v == NULL) {
        return 0;
    }
    int64_t n = 0;
    if (!int_in(v, k_ranges[range][0], range_hi(range), &n)) {
        fail_key(o, key);
        return 0;
    }
    return n;
}

/* -1 absent, 0 false, 1 true */
static int o_bool(const obj_t *o, const char *key, bool required)
{
    const ej_node_t *v = o_value(o, key, required);
    if (v == NULL) {
        return -1;
    }
    if (v->type == EJ_TRUE) {
        return 1;
    }
    if (v->type == EJ_FALSE) {
        return 0;
    }
    fail_key(o, key);
    return -1;
}

/* Index into list, or -1 (absent or invalid). */
static int o_enum(const obj_t *o, const char *key, bool required, const char *const *list)
{
    const char *s = o_str(o, key, required, 64);
    if (s == NULL) {
        return -1;
    }
    for (int i = 0; list[i]; i++) {
        if (strcmp(s, list[i]) == 0) {
            return i;
        }
    }
    fail_key(o, key);
    return -1;
}

/* The array at key, its length within k_ranges[range]; NULL when absent or invalid. */
static const ej_node_t *o_array(const obj_t *o, const char *key, bool required, int range)
{
    const ej_node_t *v = o_value(o, key, required);
    if (v == NULL) {
        return NULL;
    }
    if (v->type != EJ_ARRAY || v->count < (size_t)k_ranges[range][0] || (int64_t)v->count > range_hi(range)) {
        fail_key(o, key);
        return NULL;
    }
    return v;
}

static void index_path(char *out, size_t cap, const char *path, size_t i)
{
    char num[ESPADMIN_I64_TEXT_MAX];
    espadmin_fmt_u64(num, (uint64_t)i);
    out[0] = '\0';
    append(out, cap, path);
    append(out, cap, "[");
    append(out, cap, num);
    append(out, cap, "]");
}

/* Size, well-formedness and version (§2 steps 1–3). */
static espadmin_perr_code_t open_payload(ej_doc_t *doc, rd_t *r, obj_t *top, const char *data,
                                         size_t len, size_t max, int levels, size_t nodes)
{
    if (len > max) {
        return r->err->code = ESPADMIN_E_TOO_LARGE;
    }
    if (!ej_utf8_valid(data, len)) {
        return r->err->code = ESPADMIN_E_MALFORMED;
    }
    ej_result_t pr = ej_parse_partial(doc, data, len, levels, nodes);
    if (pr == EJ_ERR_NO_MEMORY) {
        return r->err->code = ESPADMIN_E_NO_MEMORY;
    }
    if (pr == EJ_ERR_TOO_LARGE) {
        return r->err->code = ESPADMIN_E_TOO_LARGE; /* over the JSON working-memory cap */
    }
    if (pr != EJ_OK) {
        return r->err->code = ESPADMIN_E_MALFORMED;
    }
    *top = object_at(r, "", doc->root);
    int64_t v = o_int(top, "v", true, R_POS);
    if (r->err->code != ESPADMIN_OK) {
        return r->err->code;
    }
    if (v > ESPADMIN_PROTOCOL_VERSION) {
        return r->err->code = ESPADMIN_E_UNSUPPORTED_VERSION;
    }
    return ESPADMIN_OK;
}

static void reset_err(espadmin_perr_t *err)
{
    err->code = ESPADMIN_OK;
    err->field[0] = '\0';
}

/* ---- commands ---- */

static bool valid_config_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > ESPADMIN_MAX_CONFIG_KEY_LEN) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

static bool valid_signature(const char *s)
{
    uint8_t sig[66];
    return espadmin_base64_decode(s, strlen(s), sig, sizeof(sig)) == 64;
}

/* Keeps the value of entry e: its decoded text s[0..n) in cmd->values (default profile), or
 * where the value v stands in the payload (small profile: nothing is copied). */
static bool store_value(espadmin_command_t *cmd, espadmin_cfg_entry_t *e, const ej_node_t *v,
                        const char *s, size_t n)
{
#ifdef ESPADMIN_PROFILE_SMALL
    (void)s;
    (void)n;
    e->value_off = (uint16_t)(v->raw - cmd->value_text);
    e->value_len = (uint16_t)v->raw_len;
#else
    (void)v;
    if (cmd->values_len + n + 1 > cmd->values_cap) {
        return false;
    }
    memcpy(cmd->values + cmd->values_len, s, n);
    cmd->values[cmd->values_len + n] = '\0';
    e->value_off = (uint16_t)cmd->values_len;
    e->value_len = (uint16_t)n;
    cmd->values_len += n + 1;
#endif
    return true;
}

/* One entry of params.entries (§4.2), at index i of the array whose path is arr_path. */
static void decode_entry(rd_t *r, const char *arr_path, size_t i, const ej_node_t *it,
                         espadmin_command_t *cmd)
{
    char path[64];
    index_path(path, sizeof(path), arr_path, i);
    obj_t e = object_at(r, path, it);
    espadmin_cfg_entry_t *entry = &cmd->config.entries[i];
    memset(entry, 0, sizeof(*entry));
    o_text(&e, "key", true, ESPADMIN_MAX_CONFIG_KEY_LEN, valid_config_key, entry->key, sizeof(entry->key));
    int t = o_enum(&e, "type", true, k_cfg_types);
    entry->type = t < 0 ? ESPADMIN_CFG_STRING : (espadmin_cfg_type_t)t;
    entry->secret = o_bool(&e, "secret", false) == 1;
    for (size_t j = 0; j < i && r->err->code == ESPADMIN_OK; j++) {
        if (strcmp(cmd->config.entries[j].key, entry->key) == 0) {
            fail_key(&e, "key");
        }
    }
    const ej_node_t *v = o_value(&e, "value", true);
    if (v == NULL || r->err->code != ESPADMIN_OK) {
        return;
    }
    char field[64];
    name_of(&e, "value", field, sizeof(field));
    bool ok = true;
    /* what is kept of the value once checked (not for json, compacted below) */
    const char *text = v->str;
    size_t text_len = v->str_len;
    if (entry->secret) {
        ok = v->type == EJ_STRING && v->str_len <= ESPADMIN_MAX_SECRET_VALUE_LEN &&
             v->str_len % 4 == 0 && base64_decoded_len(v->str, v->str_len) >= 12 + 16 + 1;
        if (ok) {
            uint8_t *tmp = espadmin_malloc(v->str_len);
            ok = tmp && espadmin_base64_decode(v->str, v->str_len, tmp, v->str_len) >= 12 + 16 + 1;
            espadmin_free(tmp);
        }
    } else {
        int64_t n;
        switch (entry->type) {
        case ESPADMIN_CFG_STRING:
            ok = v->type == EJ_STRING && v->str_len <= ESPADMIN_MAX_CONFIG_VALUE_LEN;
            break;
        case ESPADMIN_CFG_INT:
            ok = int_in(v, -ESPADMIN_MAX_SAFE_INTEGER, ESPADMIN_MAX_SAFE_INTEGER, &n);
            break;
        case ESPADMIN_CFG_FLOAT:
            ok = v->type == EJ_NUMBER && isfinite(strtod(v->str, NULL));
            break;
        case ESPADMIN_CFG_BOOL:
            ok = v->type == EJ_TRUE || v->type == EJ_FALSE;
            text = v->raw;
            text_len = v->raw_len;
            break;
        case ESPADMIN_CFG_JSON: {
            text = NULL;
#ifdef ESPADMIN_PROFILE_SMALL
            ok = ej_compact(v, NULL, 0) <= ESPADMIN_MAX_CONFIG_VALUE_LEN && store_value(cmd, entry, v, NULL, 0);
#else
            size_t room = cmd->values_cap - cmd->values_len;
            size_t len = ej_compact(v, cmd->values + cmd->values_len, room);
            ok = len <= ESPADMIN_MAX_CONFIG_VALUE_LEN && len + 1 <= room;
            if (ok) {
                cmd->values[cmd->values_len + len] = '\0';
                entry->value_off = (uint16_t)cmd->values_len;
                entry->value_len = (uint16_t)len;
                cmd->values_len += len + 1;
            }
#endif
            break;
        }
        }
    }
    if (ok && text != NULL) {
        ok = store_value(cmd, entry, v, text, text_len);
    }
    if (!ok) {
        fail(r, field);
    }
}

static void decode_config(obj_t *p, espadmin_command_t *cmd)
{
    rd_t *r = p->r;
    cmd->config.version = o_int(p, "version", true, R_POS);
    o_text(p, "hash", true, 64, valid_sha256, cmd->config.hash, sizeof(cmd->config.hash));
    const ej_node_t *items = o_array(p, "entries", true, R_ENTRIES);
    if (items == NULL) {
        return;
    }
    char arr_path[64];
    name_of(p, "entries", arr_path, sizeof(arr_path));
    size_t i = 0;
#ifdef ESPADMIN_PROFILE_SMALL
    {
        /* the entries were not stored; each is parsed on its own, in turn */
        size_t pos = 0;
        const char *raw;
        size_t raw_len;
        for (; r->err->code == ESPADMIN_OK && ej_next_raw(items, &pos, &raw, &raw_len); i++) {
            ej_doc_t doc = {0};
            ej_result_t pr = ej_parse_partial(&doc, raw, raw_len, 1, ESPADMIN_COMMAND_JSON_NODES);
            if (pr == EJ_OK || pr == EJ_ERR_MALFORMED) { /* malformed: not an object */
                decode_entry(r, arr_path, i, doc.root, cmd);
            } else if (r->err->code == ESPADMIN_OK) {
                r->err->code = pr == EJ_ERR_NO_MEMORY ? ESPADMIN_E_NO_MEMORY : ESPADMIN_E_TOO_LARGE;
            }
            ej_free(&doc);
        }
    }
#else
    for (const ej_node_t *it = items->child; it; it = it->next, i++) {
        decode_entry(r, arr_path, i, it, cmd);
    }
#endif
    cmd->config.count = i;
}

espadmin_command_t *espadmin_command_new(size_t payload_len)
{
    if (payload_len > ESPADMIN_DEVICE_MAX_COMMAND) {
        payload_len = 0; /* refused as too_large before any value is stored */
    }
    size_t cap = ESPADMIN_COMMAND_VALUES_CAP(payload_len);
    espadmin_command_t *cmd = espadmin_malloc(offsetof(espadmin_command_t, values) + cap);
    if (cmd != NULL) {
        memset(cmd, 0, offsetof(espadmin_command_t, values));
        cmd->values_cap = cap;
    }
    return cmd;
}

espadmin_perr_code_t espadmin_command_decode(const char *data, size_t len,
                                             espadmin_command_t *cmd, espadmin_perr_t *err)
{
    espadmin_perr_t local;
    if (err == NULL) {
        err = &local;
    }
    reset_err(err);
    size_t values_cap = cmd->values_cap;
    memset(cmd, 0, offsetof(espadmin_command_t, values));
    cmd->values_cap = values_cap;
#ifdef ESPADMIN_PROFILE_SMALL
    cmd->value_text = data;
    cmd->values_raw = true;
#else
    cmd->value_text = cmd->values;
#endif
    if (len <= ESPADMIN_DEVICE_MAX_COMMAND && values_cap < ESPADMIN_COMMAND_VALUES_CAP(len)) {
        return err->code = ESPADMIN_E_NO_MEMORY; /* not from espadmin_command_new(len) */
    }
    rd_t r = {err};
    ej_doc_t doc = {0};
    obj_t o;
    if (open_payload(&doc, &r, &o, data, len, ESPADMIN_DEVICE_MAX_COMMAND, ESPADMIN_COMMAND_JSON_LEVELS,
                     ESPADMIN_COMMAND_JSON_NODES) != ESPADMIN_OK) {
        ej_free(&doc);
        return err->code;
    }
    o_text(&o, "id", true, ESPADMIN_MAX_ID_LEN, espadmin_valid_device_id, cmd->id, sizeof(cmd->id));
    const char *name = o_str(&o, "name", true, 32);
    if (err->code != ESPADMIN_OK) {
        ej_free(&doc);
        return err->code;
    }
    /* in the order of espadmin_cmd_name_t */
    static const char *const commands[] = {"restart", "config", "update", "debug", "coredump", NULL};
    int k = 0;
    while (commands[k] && strcmp(name, commands[k]) != 0) {
        k++;
    }
    if (commands[k] == NULL) {
        ej_free(&doc);
        return err->code = ESPADMIN_E_UNKNOWN_COMMAND;
    }
    cmd->name = (espadmin_cmd_name_t)k;
    cmd->expires_at = o_int(&o, "expires_at", true, R_POS);
    static const ej_node_t empty = {.type = EJ_OBJECT};
    const ej_node_t *pn = o_value(&o, "params", false);
    obj_t p = object_at(&r, "params", pn ? pn : &empty);
    switch (cmd->name) {
    case ESPADMIN_CMD_RESTART:
        o_text(&p, "reason", false, 128, NULL, cmd->restart_reason, sizeof(cmd->restart_reason));
        break;
    case ESPADMIN_CMD_DEBUG: {
        cmd->debug.enabled = o_bool(&p, "enabled", true) == 1;
        int lvl = o_enum(&p, "level", false, k_levels);
        cmd->debug.level = lvl < 0 ? ESPADMIN_LEVEL_INFO : (espadmin_level_t)lvl;
        int64_t d = o_int(&p, "duration_s", false, R_DEBUG_S);
        cmd->debug.duration_s = d > 0 ? (int32_t)d : ESPADMIN_DEFAULT_DEBUG_DURATION_S;
        break;
    }
    case ESPADMIN_CMD_CONFIG:
        decode_config(&p, cmd);
        break;
    case ESPADMIN_CMD_UPDATE:
    case ESPADMIN_CMD_COREDUMP: { /* coredump: only url and url_expires_at */
        espadmin_update_params_t *u = &cmd->update;
        bool update = cmd->name == ESPADMIN_CMD_UPDATE;
        if (update) {
            o_text(&p, "version", true, 32, espadmin_valid_release_version, u->version, sizeof(u->version));
            u->size = o_int(&p, "size", true, R_IMAGE);
            o_text(&p, "sha256", true, 64, valid_sha256, u->sha256, sizeof(u->sha256));
        }
        o_text(&p, "url", true, ESPADMIN_MAX_URL_LEN, valid_download_url, u->url, sizeof(u->url));
        u->url_expires_at = o_int(&p, "url_expires_at", true, R_NONNEG);
        if (update) {
            o_text(&p, "signature", false, 88, valid_signature, u->signature, sizeof(u->signature));
        }
        break;
    }
    }
    ej_free(&doc);
    return err->code;
}

bool espadmin_command_peek_id(const char *data, size_t len, char id[ESPADMIN_MAX_ID_LEN + 1])
{
    id[0] = '\0';
    if (len > ESPADMIN_DEVICE_MAX_COMMAND || !ej_utf8_valid(data, len)) {
        return false;
    }
    ej_doc_t doc;
    if (ej_parse_partial(&doc, data, len, ESPADMIN_COMMAND_JSON_LEVELS, ESPADMIN_COMMAND_JSON_NODES) != EJ_OK) {
        return false;
    }
    const ej_node_t *v = ej_get(doc.root, "id");
    bool ok = v && v->type == EJ_STRING && strlen(v->str) == v->str_len &&
              espadmin_valid_device_id(v->str);
    if (ok) {
        memcpy(id, v->str, v->str_len + 1);
    }
    ej_free(&doc);
    return ok;
}

/* ---- uplink validators ---- */

/* The uplink payloads' fields (docs/protocol.md §3), checked in table order by check_fields so
 * that the first error is the same as the Go reader's: one table row costs a few bytes of
 * .rodata where a call per field cost tens of bytes of code on the device. */
typedef enum { F_STR, F_INT, F_BOOL, F_ENUM, F_OBJ, F_ARR } field_type_t;

typedef struct field field_t;
struct field {
    const char *key;
    union {
        bool (*valid)(const char *); /* F_STR: the value's check, or NULL */
        const char *const *list;     /* F_ENUM */
        const field_t *fields;       /* F_OBJ, F_ARR (each element an object): NULL key ends */
    } u;
    uint8_t type;
    bool required;
    uint16_t arg; /* F_STR: its maximum length; F_INT, F_ARR: its k_ranges row */
};

#define STR(k, req, max) {.key = k, .type = F_STR, .required = req, .arg = max}
#define STR_V(k, req, max, fn) {.key = k, .u.valid = fn, .type = F_STR, .required = req, .arg = max}
#define INT(k, req, range) {.key = k, .type = F_INT, .required = req, .arg = range}
#define ENUM(k, req, l) {.key = k, .u.list = l, .type = F_ENUM, .required = req}
#define NESTED(k, t, req, f, range) {.key = k, .u.fields = f, .type = t, .required = req, .arg = range}
#define END {.key = NULL}

static const field_t k_status_fields[] = {{.key = "online", .type = F_BOOL, .required = true}, END};

static const field_t k_limits_fields[] = {
    INT("command_bytes", true, R_CMD_BYTES),
    INT("config_bytes", true, R_CFG_BYTES),
    END,
};

static const field_t k_metadata_fields[] = {
    STR("firmware_version", true, ESPADMIN_MAX_APP_STRING_LEN),
    STR("project", false, ESPADMIN_MAX_APP_STRING_LEN),
    STR("chip_model", true, 32),
    INT("chip_revision", true, R_U16),
    STR("idf_version", true, ESPADMIN_MAX_APP_STRING_LEN),
    STR_V("mac", true, 17, valid_mac),
    STR_V("ip", false, 45, espadmin_valid_ip),
    INT("rssi", false, R_RSSI),
    INT("free_heap", true, R_NONNEG),
    INT("min_free_heap", false, R_NONNEG),
    INT("uptime_ms", true, R_NONNEG),
    ENUM("reset_reason", true, k_reset_reasons),
    INT("config_version", true, R_NONNEG),
    INT("protocol_version", true, R_POS_U16),
    NESTED("limits", F_OBJ, false, k_limits_fields, 0),
    END,
};

static const field_t k_config_req_fields[] = {
    INT("config_version", true, R_NONNEG),
    STR_V("hash", false, 64, valid_sha256),
    END,
};

static const field_t k_no_fields[] = {END};

static const field_t k_ack_fields[] = {
    STR_V("id", true, ESPADMIN_MAX_ID_LEN, espadmin_valid_device_id),
    ENUM("result", true, k_results),
    STR("message", false, ESPADMIN_MAX_MESSAGE_LEN),
    NESTED("data", F_OBJ, false, k_no_fields, 0),
    END,
};

static const field_t k_ota_fields[] = {
    STR_V("id", true, ESPADMIN_MAX_ID_LEN, espadmin_valid_device_id),
    STR_V("version", true, 32, espadmin_valid_release_version),
    ENUM("state", true, k_ota_states),
    INT("progress", false, R_PCT),
    ENUM("reason", false, k_ota_reasons),
    STR("message", false, ESPADMIN_MAX_MESSAGE_LEN),
    END,
};

static const field_t k_log_line_fields[] = {
    ENUM("level", true, k_levels),
    STR("tag", false, ESPADMIN_MAX_LOG_TAG_LEN),
    STR("msg", true, ESPADMIN_MAX_LOG_MSG_LEN),
    INT("ms", true, R_NONNEG),
    END,
};

static const field_t k_log_fields[] = {
    INT("seq", true, R_NONNEG),
    INT("dropped", false, R_NONNEG),
    NESTED("lines", F_ARR, true, k_log_line_fields, R_LINES),
    END,
};

static const field_t k_frame_fields[] = {
    STR_V("pc", true, 18, valid_address),
    STR_V("sp", false, 18, valid_address),
    STR("func", false, 128),
    STR("file", false, 256),
    INT("line", false, R_LINE),
    END,
};

static const field_t k_core_dump_fields[] = {
    STR("task", false, 32),
    STR("cause", false, 128),
    STR("summary", false, 4096),
    INT("size", false, R_DUMP),
    END,
};

static const field_t k_error_fields[] = {
    STR("message", true, 1024),
    STR("type", true, 64),
    STR("code", false, 64),
    ENUM("severity", false, k_severities),
    ENUM("reset_reason", false, k_reset_reasons),
    STR("firmware_version", true, ESPADMIN_MAX_APP_STRING_LEN),
    INT("uptime_ms", false, R_NONNEG),
    INT("free_heap", false, R_NONNEG),
    NESTED("backtrace", F_ARR, false, k_frame_fields, R_FRAMES),
    NESTED("core_dump", F_OBJ, false, k_core_dump_fields, 0),
    END,
};

static const field_t *const k_uplink_fields[] = {
    k_status_fields, k_metadata_fields, k_config_req_fields, k_ack_fields,
    k_ota_fields,    k_log_fields,      k_error_fields,
};

static void check_fields(const obj_t *o, const field_t *f)
{
    for (; f->key; f++) {
        switch (f->type) {
        case F_STR: {
            const char *s = o_str(o, f->key, f->required, f->arg);
            if (f->u.valid) {
                o_check(o, f->key, s, f->u.valid);
            }
            break;
        }
        case F_INT: o_int(o, f->key, f->required, f->arg); break;
        case F_BOOL: o_bool(o, f->key, f->required); break;
        case F_ENUM: o_enum(o, f->key, f->required, f->u.list); break;
        case F_OBJ: {
            const ej_node_t *v = o_value(o, f->key, f->required);
            if (v) {
                char path[64];
                name_of(o, f->key, path, sizeof(path));
                obj_t sub = object_at(o->r, path, v);
                check_fields(&sub, f->u.fields);
            }
            break;
        }
        case F_ARR: {
            const ej_node_t *v = o_array(o, f->key, f->required, f->arg);
            size_t i = 0;
            for (const ej_node_t *it = v ? v->child : NULL; it; it = it->next, i++) {
                char name[64], path[64];
                name_of(o, f->key, name, sizeof(name));
                index_path(path, sizeof(path), name, i);
                obj_t el = object_at(o->r, path, it);
                check_fields(&el, f->u.fields);
            }
            break;
        }
        default: break;
        }
    }
}

/* an outcome's reason goes with state "failed" only */
static void check_ota_reason(obj_t *o)
{
    if (o->r->err->code == ESPADMIN_OK) {
        bool failed = o_enum(o, "state", true, k_ota_states) == 5;
        bool reason = o_enum(o, "reason", false, k_ota_reasons) >= 0;
        if (failed != reason) {
            fail_key(o, "reason");
        }
    }
}

espadmin_perr_code_t espadmin_uplink_validate(espadmin_kind_t kind, const char *data, size_t len,
                                              espadmin_perr_t *err)
{
    static const size_t limits[] = {ESPADMIN_MAX_STATUS_SIZE, ESPADMIN_MAX_METADATA_SIZE,
                                    ESPADMIN_MAX_CONFIG_REQ_SIZE, ESPADMIN_MAX_ACK_SIZE,
                                    ESPADMIN_MAX_OTA_SIZE, ESPADMIN_MAX_LOG_SIZE,
                                    ESPADMIN_MAX_ERROR_SIZE};
    espadmin_perr_t local;
    if (err == NULL) {
        err = &local;
    }
    reset_err(err);
    if (kind >= ESPADMIN_KIND_CMD) {
        return err->code = ESPADMIN_E_UNKNOWN_KIND;
    }
    rd_t r = {err};
    ej_doc_t doc = {0};
    obj_t o;
    if (open_payload(&doc, &r, &o, data, len, limits[kind], ESPADMIN_JSON_MAX_DEPTH + 1,
                     ESPADMIN_JSON_MAX_NODES) == ESPADMIN_OK) {
        check_fields(&o, k_uplink_fields[kind]);
        if (kind == ESPADMIN_KIND_OTA) {
            check_ota_reason(&o);
        }
    }
    ej_free(&doc);
    return err->code;
}

/* ---- signing string and associated data ---- */

/* The n parts joined by newlines into buf; the length, or -1 when it does not fit. */
static int join_lines(char *buf, size_t cap, const char *const *parts, size_t n)
{
    size_t len = 0;
    if (cap == 0) {
        return -1;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            espadmin_append(buf, cap, &len, "\n");
        }
        espadmin_append(buf, cap, &len, parts[i]);
    }
    return len >= cap ? -1 : (int)len;
}

int espadmin_ota_signing_string(const espadmin_update_params_t *u, char *buf, size_t cap)
{
    char size[ESPADMIN_I64_TEXT_MAX], expires[ESPADMIN_I64_TEXT_MAX];
    espadmin_fmt_i64(size, u->size);
    espadmin_fmt_i64(expires, u->url_expires_at);
    const char *const parts[] = {"espadmin-ota-v1", u->version, size, u->sha256, u->url, expires};
    return join_lines(buf, cap, parts, 6);
}

int espadmin_secret_aad(const char *device_id, const char *key, int64_t version, char *buf,
                        size_t cap)
{
    char ver[ESPADMIN_I64_TEXT_MAX];
    espadmin_fmt_i64(ver, version);
    const char *const parts[] = {"espadmin-cfg-v1", device_id, key, ver};
    return join_lines(buf, cap, parts, 4);
}

/* ---- encoders ---- */

static int finish(ej_writer_t *w, espadmin_kind_t kind)
{
    int n = ejw_finish(w);
    if (n < 0) {
        return -1;
    }
    if (espadmin_uplink_validate(kind, w->buf, (size_t)n, NULL) != ESPADMIN_OK) {
        return -1;
    }
    return n;
}

static void head(ej_writer_t *w, char *buf, size_t cap)
{
    ejw_init(w, buf, cap);
    ejw_obj_begin(w);
    ejw_kint(w, "v", ESPADMIN_PROTOCOL_VERSION);
}

static void opt_str(ej_writer_t *w, const char *key, const char *v)
{
    if (v && *v) {
        ejw_kstring(w, key, v);
    }
}

/* "message", sanitized, when there is one */
static void opt_message(ej_writer_t *w, const char *message)
{
    if (message && *message) {
        char msg[ESPADMIN_MAX_MESSAGE_LEN + 1];
        espadmin_sanitize_text(msg, ESPADMIN_MAX_MESSAGE_LEN, message, strlen(message));
        opt_str(w, "message", msg);
    }
}

int espadmin_encode_status(char *buf, size_t cap, bool online)
{
    ej_writer_t w;
    head(&w, buf, cap);
    ejw_key(&w, "online");
    ejw_bool(&w, online);
    ejw_obj_end(&w);
    return finish(&w, ESPADMIN_KIND_STATUS);
}

int espadmin_encode_metadata(char *buf, size_t cap, const espadmin_metadata_t *m)
{
    ej_writer_t w;
    head(&w, buf, cap);
    ejw_kstring(&w, "firmware_version", m->firmware_version);
    opt_str(&w, "project", m->project);
    ejw_kstring(&w, "chip_model", m->chip_model);
    ejw_kint(&w, "chip_revision", m->chip_revision);
    ejw_kstring(&w, "idf_version", m->idf_version);
    ejw_kstring(&w, "mac", m->mac);
    opt_str(&w, "ip", m->ip);
    if (m->has_rssi) {
        ejw_kint(&w, "rssi", m->rssi);
    }
    ejw_kint(&w, "free_heap", m->free_heap);
    if (m->min_free_heap >= 0) {
        ejw_kint(&w, "min_free_heap", m->min_free_heap);
    }
    ejw_kint(&w, "uptime_ms", m->uptime_ms);
    ejw_kstring(&w, "reset_reason", m->reset_reason);
    ejw_kint(&w, "config_version", m->config_version);
    ejw_kint(&w, "protocol_version", ESPADMIN_PROTOCOL_VERSION);
    if (m->limit_command_bytes > 0) {
        ejw_key(&w, "limits");
        ejw_obj_begin(&w);
        ejw_kint(&w, "command_bytes", m->limit_command_bytes);
        ejw_kint(&w, "config_bytes", m->limit_config_bytes);
        ejw_obj_end(&w);
    }
    ejw_obj_end(&w);
    return finish(&w, ESPADMIN_KIND_METADATA);
}

int espadmin_encode_config_req(char *buf, size_t cap, int64_t config_version, const char *hash)
{
    ej_writer_t w;
    head(&w, buf, cap);
    ejw_kint(&w, "config_version", config_version);
    opt_str(&w, "hash", hash);
    ejw_obj_end(&w);
    return finish(&w, ESPADMIN_KIND_CONFIG_REQ);
}

int espadmin_encode_ack(char *buf, size_t cap, const char *id, const char *result,
                        const char *message, int64_t config_version)
{
    ej_writer_t w;
    head(&w, buf, cap);
    ejw_kstring(&w, "id", id);
    ejw_kstring(&w, "result", result);
    opt_message(&w, message);
    if (config_version >= 0) {
        ejw_key(&w, "data");
        ejw_obj_begin(&w);
        ejw_kint(&w, "config_version", config_version);
        ejw_obj_end(&w);
    }
    ejw_obj_end(&w);
    return finish(&w, ESPADMIN_KIND_ACK);
}

int espadmin_encode_ota(char *buf, size_t cap, const char *id, const char *version,
                        const char *state, int progress, const char *reason, const char *message)
{
    ej_writer_t w;
    head(&w, buf, cap);
    ejw_kstring(&w, "id", id);
    ejw_kstring(&w, "version", version);
    ejw_kstring(&w, "state", state);
    if (progress >= 0) {
        ejw_kint(&w, "progress", progress > 100 ? 100 : progress);
    }
    opt_str(&w, "reason", reason);
    opt_message(&w, message);
    ejw_obj_end(&w);
    return finish(&w, ESPADMIN_KIND_OTA);
}

static void hex_field(ej_writer_t *w, const char *key, uint32_t v)
{
    char s[11];
    snprintf(s, sizeof(s), "0x%" PRIx32, v);
    ejw_kstring(w, key, s);
}

int espadmin_encode_error(char *buf, size_t cap, const espadmin_error_report_t *e)
{
    ej_writer_t w;
    head(&w, buf, cap);
    ejw_kstring(&w, "message", e->message);
    ejw_kstring(&w, "type", e->type);
    opt_str(&w, "code", e->code);
    opt_str(&w, "severity", e->severity);
    opt_str(&w, "reset_reason", e->reset_reason);
    ejw_kstring(&w, "firmware_version", e->firmware_version);
    if (e->uptime_ms >= 0) {
        ejw_kint(&w, "uptime_ms", e->uptime_ms);
    }
    if (e->free_heap >= 0) {
        ejw_kint(&w, "free_heap", e->free_heap);
    }
    const espadmin_crash_t *c = e->crash;
    if (c && c->nframes > 0) {
        ejw_key(&w, "backtrace");
        ejw_arr_begin(&w);
        for (size_t i = 0; i < c->nframes; i++) {
            ejw_obj_begin(&w);
            hex_field(&w, "pc", c->frames[i].pc);
            if (c->frames[i].sp) {
                hex_field(&w, "sp", c->frames[i].sp);
            }
            ejw_obj_end(&w);
        }
        ejw_arr_end(&w);
    }
    const char *summary = c && c->summary[0] ? c->summary : e->core_dump_summary;
    if (c || (summary && *summary)) {
        ejw_key(&w, "core_dump");
        ejw_obj_begin(&w);
        if (c) {
            opt_str(&w, "task", c->task);
            opt_str(&w, "cause", c->reason);
        }
        opt_str(&w, "summary", summary);
        if (c && c->size > 0) {
            ejw_kint(&w, "size", c->size);
        }
        ejw_obj_end(&w);
    }
    ejw_obj_end(&w);
    return finish(&w, ESPADMIN_KIND_ERROR);
}

size_t espadmin_sanitize_text(char *dst, size_t max, const char *src, size_t len)
{
    const unsigned char *s = (const unsigned char *)src;
    size_t n = 0;
    size_t i = 0;
    while (i < len && s[i] != '\0') {
        if (s[i] == 0x1B) { /* ANSI escape: ESC [ params letter */
            i++;
            if (i < len && s[i] == '[') {
                i++;
                while (i < len && s[i] != '\0' && !((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) {
                    i++;
                }
                if (i < len && s[i] != '\0') {
                    i++;
                }
            }
            continue;
        }
        size_t k = 1;
        bool valid = true;
        if (s[i] >= 0x80) {
            /* reuse the strict check on the sequence */
            size_t want = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : 2;
            if (i + want <= len && ej_utf8_valid((const char *)s + i, want)) {
                k = want;
            } else {
                valid = false;
            }
        }
        if (n + k > max) {
            break;
        }
        if (valid) {
            memcpy(dst + n, s + i, k);
        } else {
            dst[n] = '?';
        }
        n += valid ? k : 1;
        i += k;
    }
    while (n > 0 && (dst[n - 1] == '\n' || dst[n - 1] == '\r')) {
        n--;
    }
    dst[n] = '\0';
    return n;
}
