#include "espadmin/util.h"

#include <string.h>

/* ---- integers as text ---- */

size_t espadmin_fmt_u64(char *buf, uint64_t v)
{
    char tmp[ESPADMIN_I64_TEXT_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10u));
        v /= 10u;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        buf[i] = tmp[n - 1 - i];
    }
    buf[n] = '\0';
    return n;
}

size_t espadmin_fmt_i64(char *buf, int64_t v)
{
    if (v >= 0) {
        return espadmin_fmt_u64(buf, (uint64_t)v);
    }
    buf[0] = '-';
    /* the magnitude of INT64_MIN does not fit in int64_t: negate in unsigned arithmetic */
    return 1 + espadmin_fmt_u64(buf + 1, (uint64_t)0 - (uint64_t)v);
}

bool espadmin_append(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len >= cap || n >= cap - *len) {
        *len = cap; /* sticky: every later append fails too */
        return false;
    }
    memcpy(buf + *len, s, n + 1);
    *len += n;
    return true;
}

bool espadmin_append_i64(char *buf, size_t cap, size_t *len, int64_t v)
{
    char tmp[ESPADMIN_I64_TEXT_MAX];
    espadmin_fmt_i64(tmp, v);
    return espadmin_append(buf, cap, len, tmp);
}

size_t espadmin_copy(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    while (src != NULL && n + 1 < cap && src[n] != '\0') {
        dst[n] = src[n];
        n++;
    }
    dst[n] = '\0';
    return n;
}

/* ---- log ring ---- */
/* record: u16 size | u64 seq | i64 ms | u8 level | u8 tag_len | tag | msg */
#define REC_HEAD 20

void espadmin_logring_init(espadmin_logring_t *r, uint8_t *buf, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->buf = buf;
    r->cap = cap;
}

static void ring_write(espadmin_logring_t *r, size_t at, const void *src, size_t n)
{
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++) {
        r->buf[(at + i) % r->cap] = s[i];
    }
}

static void ring_read(const espadmin_logring_t *r, size_t at, void *dst, size_t n)
{
    uint8_t *d = dst;
    for (size_t i = 0; i < n; i++) {
        d[i] = r->buf[(at + i) % r->cap];
    }
}

bool espadmin_logring_push(espadmin_logring_t *r, espadmin_level_t level, const char *tag,
                           const char *msg, size_t msg_len, int64_t ms)
{
    char m[ESPADMIN_MAX_LOG_MSG_LEN + 1];
    char t[ESPADMIN_MAX_LOG_TAG_LEN + 1];
    size_t ml = espadmin_sanitize_text(m, ESPADMIN_MAX_LOG_MSG_LEN, msg ? msg : "", msg ? msg_len : 0);
    size_t tl = tag ? espadmin_sanitize_text(t, ESPADMIN_MAX_LOG_TAG_LEN, tag, strlen(tag)) : 0;
    uint64_t seq = r->next_seq++;
    if (ml == 0) {
        m[0] = '-'; /* msg is required and must not be empty */
        ml = 1;
    }
    size_t size = REC_HEAD + tl + ml;
    if (r->cap - r->used < size) {
        r->dropped++;
        return false;
    }
    size_t at = (r->head + r->used) % r->cap;
    uint16_t sz = (uint16_t)size;
    uint8_t head[REC_HEAD];
    memcpy(head, &sz, 2);
    memcpy(head + 2, &seq, 8);
    memcpy(head + 10, &ms, 8);
    head[18] = (uint8_t)level;
    head[19] = (uint8_t)tl;
    ring_write(r, at, head, REC_HEAD);
    ring_write(r, at + REC_HEAD, t, tl);
    ring_write(r, at + REC_HEAD + tl, m, ml);
    r->used += size;
    r->lines++;
    return true;
}

bool espadmin_logring_peek(const espadmin_logring_t *r, espadmin_logline_t *line)
{
    if (r->lines == 0) {
        return false;
    }
    uint16_t sz;
    uint8_t head[REC_HEAD];
    ring_read(r, r->head, head, REC_HEAD);
    memcpy(&sz, head, 2);
    memcpy(&line->seq, head + 2, 8);
    memcpy(&line->ms, head + 10, 8);
    line->level = (espadmin_level_t)head[18];
    uint8_t tl = head[19];
    ring_read(r, r->head + REC_HEAD, line->tag, tl);
    line->tag[tl] = '\0';
    size_t ml = sz - REC_HEAD - tl;
    ring_read(r, r->head + REC_HEAD + tl, line->msg, ml);
    line->msg[ml] = '\0';
    return true;
}

void espadmin_logring_pop(espadmin_logring_t *r)
{
    if (r->lines == 0) {
        return;
    }
    uint16_t sz;
    ring_read(r, r->head, &sz, 2);
    r->head = (r->head + sz) % r->cap;
    r->used -= sz;
    r->lines--;
}

void espadmin_logring_clear(espadmin_logring_t *r)
{
    r->head = 0;
    r->used = 0;
    r->lines = 0;
}

/* ---- backoff ---- */

void espadmin_backoff_init(espadmin_backoff_t *b, uint32_t base_ms, uint32_t max_ms)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
    b->attempt = 0;
}

uint32_t espadmin_backoff_next(espadmin_backoff_t *b, uint32_t random32)
{
    uint64_t ceiling = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && ceiling < b->max_ms; i++) {
        ceiling *= 2;
    }
    if (ceiling > b->max_ms) {
        ceiling = b->max_ms;
    }
    if (b->attempt < 32) {
        b->attempt++;
    }
    uint64_t half = ceiling / 2;
    return (uint32_t)(ceiling - half + (random32 % (half + 1)));
}

void espadmin_backoff_reset(espadmin_backoff_t *b) { b->attempt = 0; }

/* ---- reassembly ---- */

void espadmin_reasm_init(espadmin_reasm_t *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->cap = cap;
}

void espadmin_reasm_free(espadmin_reasm_t *r)
{
    espadmin_free(r->buf);
    r->buf = NULL;
    r->data = NULL;
    r->active = false;
}

char *espadmin_reasm_take(espadmin_reasm_t *r)
{
    char *b = r->buf;
    r->buf = NULL;
    return b;
}

static espadmin_reasm_result_t refuse(espadmin_reasm_t *r, bool skip_rest)
{
    espadmin_reasm_free(r);
    r->skipping = skip_rest;
    return ESPADMIN_REASM_REFUSED;
}

espadmin_reasm_result_t espadmin_reasm_feed(espadmin_reasm_t *r, const char *topic,
                                            size_t topic_len, size_t total_len, size_t offset,
                                            const void *data, size_t len)
{
    if (offset == 0) {
        /* a new message; an unfinished one (or one completed and not taken) is abandoned */
        espadmin_reasm_free(r);
        r->skipping = false;
        if (topic == NULL || topic_len == 0 || topic_len > ESPADMIN_MAX_TOPIC_LEN ||
            memchr(topic, '\0', topic_len) != NULL || total_len > r->cap || len > total_len) {
            return refuse(r, len < total_len);
        }
        memcpy(r->topic, topic, topic_len);
        r->topic[topic_len] = '\0';
        r->total = total_len;
        r->received = 0;
        if (len == total_len) {
            r->data = len ? data : "";
            r->received = len;
            return ESPADMIN_REASM_COMPLETE; /* whole: nothing to copy */
        }
        r->buf = espadmin_malloc(total_len);
        if (r->buf == NULL) {
            return refuse(r, true);
        }
        r->active = true;
    } else if (!r->active) {
        if (!r->skipping) {
            return ESPADMIN_REASM_REFUSED;
        }
        if (offset + len >= total_len) {
            r->skipping = false; /* the refused message is over */
        }
        return ESPADMIN_REASM_PENDING;
    } else if (offset != r->received || total_len != r->total) {
        return refuse(r, offset + len < total_len);
    }
    if (len > r->total - r->received) {
        return refuse(r, false);
    }
    if (len) {
        memcpy(r->buf + r->received, data, len);
    }
    r->received += len;
    if (r->received == r->total) {
        r->active = false;
        r->data = r->buf;
        return ESPADMIN_REASM_COMPLETE;
    }
    return ESPADMIN_REASM_PENDING;
}
