/* Strict JSON parser (two passes: measure, then build into one arena) and bounded writer. */
#include "espadmin/json.h"

#include "espadmin/util.h"

#include <string.h>

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
    bool build;
    size_t nodes;   /* measure: nodes needed; build: next free node */
    size_t strings; /* measure: string bytes needed; build: next free byte */
    ej_node_t *node_buf;
    char *str_buf;
    int max_level;   /* values below this level are checked, not stored */
    unsigned skip;   /* > 0 while inside a value that is not stored */
    bool nodup;      /* rescanning: duplicate keys were checked already */
} parser_t;

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r' || *ps->p == '\n')) {
        ps->p++;
    }
}

/* Length of the UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

bool ej_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;
    while (p < end) {
        size_t n = utf8_seq(p, end);
        if (n == 0) {
            return false;
        }
        p += n;
    }
    return true;
}

/* The short escapes: each letter, then the character it stands for. */
static const char k_escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool hex4(parser_t *ps, uint32_t *out)
{
    if (ps->end - ps->p < 4) {
        return false;
    }
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0) {
            return false;
        }
        v = (v << 4) | (uint32_t)h;
    }
    ps->p += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Parses a string at ps->p (on the opening quote). In build mode stores the decoded,
 * NUL-terminated text and returns it through out/out_len. */
static bool parse_string(parser_t *ps, const char **out, size_t *out_len)
{
    ps->p++; /* opening quote */
    const unsigned char *start = ps->p;
    char *dst = ps->build && !ps->skip ? ps->str_buf + ps->strings : NULL;
    size_t n = 0;
    for (;;) {
        if (ps->p >= ps->end) {
            return false;
        }
        unsigned char c = *ps->p;
        if (c == '"') {
            ps->p++;
            break;
        }
        if (c < 0x20) {
            return false;
        }
        if (c == '\\') {
            ps->p++;
            if (ps->p >= ps->end) {
                return false;
            }
            unsigned char e = *ps->p++;
            if (e == 'u') {
                uint32_t cp;
                if (!hex4(ps, &cp) || cp == 0) {
                    return false;
                }
                if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return false; /* unpaired low surrogate */
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    uint32_t lo;
                    if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u') {
                        return false;
                    }
                    ps->p += 2;
                    if (!hex4(ps, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        return false;
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                char tmp[4];
                size_t k = put_utf8(tmp, cp);
                if (dst) {
                    memcpy(dst + n, tmp, k);
                }
                n += k;
                continue;
            }
            size_t i = 0;
            while (k_escapes[i] && (unsigned char)k_escapes[i] != e) {
                i += 2;
            }
            if (k_escapes[i] == '\0') {
                return false;
            }
            if (dst) {
                dst[n] = k_escapes[i + 1];
            }
            n++;
            continue;
        }
        size_t k = utf8_seq(ps->p, ps->end);
        if (k == 0) {
            return false;
        }
        if (dst) {
            memcpy(dst + n, ps->p, k);
        }
        n += k;
        ps->p += k;
    }
    if (dst) {
        dst[n] = '\0';
        *out = dst;
        *out_len = n;
        ps->strings += n + 1;
    } else if (!ps->skip) {
        /* decoded text is never longer than its source */
        ps->strings += (size_t)(ps->p - start) + 1;
    }
    return true;
}

/* Skips one or more digits; false when there is none. */
static bool digits(parser_t *ps)
{
    const unsigned char *from = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        ps->p++;
    }
    return ps->p > from;
}

static bool parse_number(parser_t *ps, ej_node_t *node)
{
    const unsigned char *start = ps->p;
    bool is_int = true;
    if (ps->p < ps->end && *ps->p == '-') {
        ps->p++;
    }
    if (ps->p < ps->end && *ps->p == '0') {
        ps->p++;
    } else if (!digits(ps)) {
        return false;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        is_int = false;
        ps->p++;
        if (!digits(ps)) {
            return false;
        }
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        is_int = false;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) {
            ps->p++;
        }
        if (!digits(ps)) {
            return false;
        }
    }
    size_t len = (size_t)(ps->p - start);
    if (node) {
        char *dst = ps->str_buf + ps->strings;
        memcpy(dst, start, len);
        dst[len] = '\0';
        node->str = dst;
        node->str_len = len;
        node->num_is_int = is_int;
    }
    if (!ps->skip) {
        ps->strings += len + 1;
    }
    return true;
}

static bool literal(parser_t *ps, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) {
        return false;
    }
    ps->p += n;
    return true;
}

static ej_node_t *new_node(parser_t *ps)
{
    if (ps->skip) {
        return NULL;
    }
    if (!ps->build) {
        ps->nodes++;
        return NULL;
    }
    ej_node_t *n = &ps->node_buf[ps->nodes++];
    memset(n, 0, sizeof(*n));
    return n;
}

static bool parse_value(parser_t *ps, int depth, ej_node_t **out);

/* The next code point of a well-formed JSON string at *pp (inside the quotes), escapes
 * decoded; UINT32_MAX at the closing quote. */
static uint32_t next_cp(const unsigned char **pp)
{
    const unsigned char *p = *pp;
    uint32_t cp = *p;
    if (cp == '"') {
        return UINT32_MAX;
    }
    if (cp == '\\') {
        const char *m = strchr(k_escapes, p[1]); /* a letter comes before its character */
        cp = m ? (uint32_t)(unsigned char)m[1] : p[1]; /* 'u': decoded below */
        p += 2;
        if (p[-1] == 'u') {
            for (int pair = 0; pair < 2; pair++) {
                uint32_t v = 0;
                for (int i = 0; i < 4; i++) {
                    v = v << 4 | (uint32_t)hexval(*p++);
                }
                if (pair == 0) {
                    cp = v;
                    if (cp < 0xD800 || cp > 0xDBFF) {
                        break;
                    }
                    p += 2; /* the low surrogate's "\\u" */
                } else {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (v - 0xDC00);
                }
            }
        }
    } else if (cp < 0x80) {
        p++;
    } else {
        size_t k = cp >= 0xF0 ? 4 : cp >= 0xE0 ? 3 : 2;
        cp &= 0x3Fu >> (k - 1);
        for (size_t i = 1; i < k; i++) {
            cp = cp << 6 | (p[i] & 0x3Fu);
        }
        p += k;
    }
    *pp = p;
    return cp;
}

/* Whether two well-formed JSON strings (each at its opening quote) decode to the same text. */
static bool same_string(const unsigned char *a, const unsigned char *b)
{
    a++;
    b++;
    for (;;) {
        uint32_t ca = next_cp(&a), cb = next_cp(&b);
        if (ca != cb) {
            return false;
        }
        if (ca == UINT32_MAX) {
            return true;
        }
    }
}

static bool parse_value(parser_t *ps, int depth, ej_node_t **out);

/* Whether the key at key (its opening quote) repeats one of the first n keys of the object
 * whose members start at members: a rescan of the text, for objects whose members are not
 * stored (no memory is needed to find a duplicate). */
static bool key_seen(const parser_t *ps, int depth, const unsigned char *members, size_t n,
                     const unsigned char *key)
{
    parser_t sp = *ps;
    sp.build = false;
    sp.skip = 1;
    sp.nodup = true;
    sp.p = members;
    for (size_t i = 0; i < n; i++) {
        const char *unused = NULL;
        size_t unused_len = 0;
        ej_node_t *v = NULL;
        skip_ws(&sp);
        const unsigned char *k = sp.p;
        if (!parse_string(&sp, &unused, &unused_len)) {
            return false;
        }
        if (same_string(k, key)) {
            return true;
        }
        skip_ws(&sp);
        sp.p++; /* ':' */
        if (!parse_value(&sp, depth, &v)) {
            return false;
        }
        skip_ws(&sp);
        sp.p++; /* ',' */
    }
    return false;
}

static bool parse_members(parser_t *ps, int depth, ej_node_t *node, bool object);

static bool parse_container(parser_t *ps, int depth, ej_node_t *node, bool object)
{
    if (depth > ESPADMIN_JSON_MAX_DEPTH) {
        return false;
    }
    bool skip_children = depth > ps->max_level;
    if (skip_children) {
        ps->skip++;
    }
    bool ok = parse_members(ps, depth, node, object);
    if (skip_children) {
        ps->skip--;
    }
    return ok;
}

static bool parse_members(parser_t *ps, int depth, ej_node_t *node, bool object)
{
    bool rescan = object && ps->skip && !ps->build && !ps->nodup;
    ps->p++; /* '{' or '[' */
    const unsigned char *members = ps->p;
    ej_node_t *last = NULL;
    size_t count = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
        ps->p++;
        return true;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(ps);
        if (object) {
            const unsigned char *key_at = ps->p;
            if (ps->p >= ps->end || *ps->p != '"' || !parse_string(ps, &key, &key_len)) {
                return false;
            }
            if (rescan && key_seen(ps, depth, members, count, key_at)) {
                return false; /* duplicate key */
            }
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                return false;
            }
            ps->p++;
            skip_ws(ps);
        }
        ej_node_t *child = NULL;
        if (!parse_value(ps, depth, &child)) {
            return false;
        }
        if (node && child) {
            if (object) {
                for (ej_node_t *c = node->child; c; c = c->next) {
                    if (c->key_len == key_len && memcmp(c->key, key, key_len) == 0) {
                        return false; /* duplicate key */
                    }
                }
                child->key = key;
                child->key_len = key_len;
            }
            if (last) {
                last->next = child;
            } else {
                node->child = child;
            }
            last = child;
        }
        count++;
        skip_ws(ps);
        if (ps->p >= ps->end) {
            return false;
        }
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == (object ? '}' : ']')) {
            ps->p++;
            break;
        }
        return false;
    }
    if (node) {
        node->count = count;
    }
    return true;
}

static bool parse_value(parser_t *ps, int depth, ej_node_t **out)
{
    skip_ws(ps);
    if (ps->p >= ps->end) {
        return false;
    }
    ej_node_t *node = new_node(ps);
    const unsigned char *start = ps->p;
    bool ok;
    switch (*ps->p) {
    case '{':
        if (node) {
            node->type = EJ_OBJECT;
        }
        ok = parse_container(ps, depth + 1, node, true);
        break;
    case '[':
        if (node) {
            node->type = EJ_ARRAY;
        }
        ok = parse_container(ps, depth + 1, node, false);
        break;
    case '"': {
        const char *s = NULL;
        size_t n = 0;
        ok = parse_string(ps, &s, &n);
        if (ok && node) {
            node->type = EJ_STRING;
            node->str = s;
            node->str_len = n;
        }
        break;
    }
    case 't':
        ok = literal(ps, "true");
        if (node) {
            node->type = EJ_TRUE;
        }
        break;
    case 'f':
        ok = literal(ps, "false");
        if (node) {
            node->type = EJ_FALSE;
        }
        break;
    case 'n':
        ok = literal(ps, "null");
        if (node) {
            node->type = EJ_NULL;
        }
        break;
    default:
        if (node) {
            node->type = EJ_NUMBER;
        }
        ok = parse_number(ps, node);
        break;
    }
    if (ok && node) {
        node->raw = (const char *)start;
        node->raw_len = (size_t)(ps->p - start);
        *out = node;
    }
    return ok;
}

static bool run(parser_t *ps, const char *data, size_t len, ej_node_t **root)
{
    ps->p = (const unsigned char *)data;
    ps->end = ps->p + len;
    skip_ws(ps);
    if (ps->p >= ps->end || *ps->p != '{') {
        return false;
    }
    if (!parse_value(ps, 0, root)) {
        return false;
    }
    skip_ws(ps);
    return ps->p == ps->end;
}

ej_result_t ej_parse(ej_doc_t *doc, const char *data, size_t len)
{
    return ej_parse_partial(doc, data, len, ESPADMIN_JSON_MAX_DEPTH + 1, ESPADMIN_JSON_MAX_NODES);
}

ej_result_t ej_parse_partial(ej_doc_t *doc, const char *data, size_t len, int max_level,
                             size_t max_nodes)
{
    doc->root = NULL;
    doc->arena = NULL;
    if (data == NULL) {
        return EJ_ERR_MALFORMED;
    }
    parser_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.max_level = max_level;
    if (!run(&ps, data, len, NULL)) {
        return EJ_ERR_MALFORMED;
    }
    size_t nodes = ps.nodes;
    size_t strings = ps.strings;
    if (nodes > max_nodes) {
        return EJ_ERR_TOO_LARGE; /* measured before anything is allocated */
    }
    void *arena = espadmin_malloc(nodes * sizeof(ej_node_t) + strings + 1);
    if (arena == NULL) {
        return EJ_ERR_NO_MEMORY;
    }
    memset(&ps, 0, sizeof(ps));
    ps.max_level = max_level;
    ps.build = true;
    ps.node_buf = arena;
    ps.str_buf = (char *)arena + nodes * sizeof(ej_node_t);
    ej_node_t *root = NULL;
    if (!run(&ps, data, len, &root)) {
        espadmin_free(arena); /* duplicate key: only the build pass sees keys */
        return EJ_ERR_MALFORMED;
    }
    doc->root = root;
    doc->arena = arena;
    return EJ_OK;
}

void ej_free(ej_doc_t *doc)
{
    if (doc) {
        espadmin_free(doc->arena);
        doc->arena = NULL;
        doc->root = NULL;
    }
}

#ifdef ESPADMIN_PROFILE_SMALL
bool ej_next_raw(const ej_node_t *arr, size_t *pos, const char **item, size_t *item_len)
{
    if (arr == NULL || arr->type != EJ_ARRAY) {
        return false;
    }
    parser_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.skip = 1;
    ps.nodup = true;
    ps.p = (const unsigned char *)arr->raw + (*pos ? *pos : 1);
    ps.end = (const unsigned char *)arr->raw + arr->raw_len;
    skip_ws(&ps);
    if (ps.p < ps.end && *ps.p == ',') {
        ps.p++;
        skip_ws(&ps);
    }
    if (ps.p >= ps.end || *ps.p == ']') {
        return false;
    }
    const unsigned char *start = ps.p;
    ej_node_t *unused = NULL;
    if (!parse_value(&ps, 1, &unused)) {
        return false;
    }
    *item = (const char *)start;
    *item_len = (size_t)(ps.p - start);
    *pos = (size_t)((const char *)ps.p - arr->raw);
    return true;
}
#endif

const ej_node_t *ej_get(const ej_node_t *obj, const char *key)
{
    if (obj == NULL || obj->type != EJ_OBJECT) {
        return NULL;
    }
    size_t n = strlen(key);
    for (const ej_node_t *c = obj->child; c; c = c->next) {
        if (c->key_len == n && memcmp(c->key, key, n) == 0) {
            return c;
        }
    }
    return NULL;
}

bool ej_int(const ej_node_t *n, int64_t *out, bool *overflow)
{
    if (overflow) {
        *overflow = false;
    }
    if (n == NULL || n->type != EJ_NUMBER || !n->num_is_int) {
        return false;
    }
    const char *s = n->str;
    bool neg = false;
    if (*s == '-') {
        neg = true;
        s++;
    }
    uint64_t v = 0;
    const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    for (; *s; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (limit - d) / 10u) {
            if (overflow) {
                *overflow = true;
            }
            return false;
        }
        v = v * 10u + d;
    }
    if (neg) {
        *out = v == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)v;
    } else {
        *out = (int64_t)v;
    }
    return true;
}

size_t ej_compact(const ej_node_t *n, char *out, size_t cap)
{
    size_t len = 0;
    bool in_string = false;
    for (size_t i = 0; i < n->raw_len; i++) {
        char c = n->raw[i];
        if (in_string) {
            if (c == '\\') {
                if (len < cap) {
                    out[len] = c;
                }
                len++;
                i++;
                c = n->raw[i];
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        } else if (c == '"') {
            in_string = true;
        }
        if (len < cap) {
            out[len] = c;
        }
        len++;
    }
    return len;
}

/* ---- writer ---- */

static void put(ej_writer_t *w, const char *s, size_t n)
{
    if (w->overflow) {
        return;
    }
    if (w->cap == 0 || n > w->cap - 1 - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void before_value(ej_writer_t *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth > 0) {
        if (!w->first[w->depth - 1]) {
            put(w, ",", 1);
        }
        w->first[w->depth - 1] = false;
    }
}

void ejw_init(ej_writer_t *w, char *buf, size_t cap)
{
    memset(w, 0, sizeof(*w));
    w->buf = buf;
    w->cap = cap;
}

static void open_(ej_writer_t *w, const char *c)
{
    before_value(w);
    put(w, c, 1);
    if (w->depth >= ESPADMIN_JSON_MAX_DEPTH) {
        w->overflow = true;
        return;
    }
    w->first[w->depth++] = true;
}

static void close_(ej_writer_t *w, const char *c)
{
    if (w->depth == 0) {
        w->overflow = true;
        return;
    }
    w->depth--;
    put(w, c, 1);
}

void ejw_obj_begin(ej_writer_t *w) { open_(w, "{"); }
void ejw_obj_end(ej_writer_t *w) { close_(w, "}"); }
void ejw_arr_begin(ej_writer_t *w) { open_(w, "["); }
void ejw_arr_end(ej_writer_t *w) { close_(w, "]"); }

static void put_escaped(ej_writer_t *w, const char *s, size_t n)
{
    put(w, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[8];
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c < 0x20) {
            static const char hex[] = "0123456789abcdef";
            memcpy(tmp, "\\u00", 4);
            tmp[4] = hex[c >> 4];
            tmp[5] = hex[c & 0xF];
            tmp[6] = '\0';
            esc = tmp;
        }
        if (esc) {
            put(w, s + run, i - run);
            put(w, esc, strlen(esc));
            run = i + 1;
        }
    }
    put(w, s + run, n - run);
    put(w, "\"", 1);
}

void ejw_key(ej_writer_t *w, const char *key)
{
    before_value(w);
    put_escaped(w, key, strlen(key));
    put(w, ":", 1);
    w->after_key = true;
}

void ejw_string_n(ej_writer_t *w, const char *s, size_t len)
{
    before_value(w);
    put_escaped(w, s, len);
}

void ejw_string(ej_writer_t *w, const char *s) { ejw_string_n(w, s, strlen(s)); }

void ejw_int(ej_writer_t *w, int64_t v)
{
    char tmp[ESPADMIN_I64_TEXT_MAX];
    size_t n = espadmin_fmt_i64(tmp, v);
    before_value(w);
    put(w, tmp, n);
}

void ejw_kstring(ej_writer_t *w, const char *key, const char *s)
{
    ejw_key(w, key);
    ejw_string(w, s);
}

void ejw_kint(ej_writer_t *w, const char *key, int64_t v)
{
    ejw_key(w, key);
    ejw_int(w, v);
}

void ejw_bool(ej_writer_t *w, bool v)
{
    before_value(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void ejw_raw(ej_writer_t *w, const char *json, size_t len)
{
    before_value(w);
    put(w, json, len);
}

int ejw_finish(ej_writer_t *w)
{
    if (w->overflow || w->depth != 0 || w->cap == 0) {
        return -1;
    }
    w->buf[w->len] = '\0';
    return (int)w->len;
}
