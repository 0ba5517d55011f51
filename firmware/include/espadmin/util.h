/* Building blocks of the core with their own tests: integer formatting, the log ring buffer,
 * reconnect backoff and MQTT fragment reassembly. None of them calls the platform. */
#ifndef ESPADMIN_UTIL_H
#define ESPADMIN_UTIL_H

#include "espadmin/protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- memory: every allocation of the core goes through these three. A build that defines
 * ESPADMIN_CUSTOM_ALLOC links its own (the unit tests count the core's heap this way; a port
 * may place the agent in a given heap); otherwise they are the C library's. ---- */

#ifdef ESPADMIN_CUSTOM_ALLOC
void *espadmin_malloc(size_t size);
void *espadmin_calloc(size_t count, size_t size);
void espadmin_free(void *ptr);
#else
#include <stdlib.h>
#define espadmin_malloc(size) malloc(size)
#define espadmin_calloc(count, size) calloc((count), (size))
#define espadmin_free(ptr) free(ptr)
#endif

/* ---- integers as decimal text, without printf: newlib-nano's printf (the default on
 * ESP32-C2 and ESP8266) has no 64-bit formats, so the core never passes an int64_t to a
 * printf-family function. ---- */

/* Longest text of an int64_t with its sign and NUL: "-9223372036854775808". */
#define ESPADMIN_I64_TEXT_MAX 21

/* Writes v in decimal to buf (at least ESPADMIN_I64_TEXT_MAX bytes), NUL-terminated;
 * returns the length. */
size_t espadmin_fmt_i64(char *buf, int64_t v);
size_t espadmin_fmt_u64(char *buf, uint64_t v);

/* Appends the NUL-terminated s to buf[*len..cap) and keeps it NUL-terminated. When s does not
 * fit (cap counts the NUL) it returns false and sets *len to cap, so every later append fails
 * too and the caller checks once at the end. */
bool espadmin_append(char *buf, size_t cap, size_t *len, const char *s);
bool espadmin_append_i64(char *buf, size_t cap, size_t *len, int64_t v);

/* Copies src (NULL: "") into dst of capacity cap (at least 1), truncated like
 * snprintf(dst, cap, "%s", src) and NUL-terminated; returns the length copied. One shared
 * function where a snprintf per call site costs more code on the device. */
size_t espadmin_copy(char *dst, size_t cap, const char *src);

/* ---- log ring: variable-size records in a fixed byte buffer; when full, new lines are
 * dropped and counted (their sequence numbers are used up, so the gap shows). ---- */

typedef struct {
    uint64_t seq;
    espadmin_level_t level;
    int64_t ms;
    char tag[ESPADMIN_MAX_LOG_TAG_LEN + 1];
    char msg[ESPADMIN_MAX_LOG_MSG_LEN + 1];
} espadmin_logline_t;

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t head; /* next byte to read */
    size_t used;
    size_t lines;
    uint64_t next_seq; /* sequence number of the next captured line */
    uint64_t dropped;  /* lines dropped since the counter was last taken */
} espadmin_logring_t;

void espadmin_logring_init(espadmin_logring_t *r, uint8_t *buf, size_t cap);
/* Captures one line (msg is sanitised and cut to 512 bytes, tag to 32). Returns false when
 * the line was dropped because the ring is full. */
bool espadmin_logring_push(espadmin_logring_t *r, espadmin_level_t level, const char *tag,
                           const char *msg, size_t msg_len, int64_t ms);
bool espadmin_logring_peek(const espadmin_logring_t *r, espadmin_logline_t *line);
void espadmin_logring_pop(espadmin_logring_t *r);
void espadmin_logring_clear(espadmin_logring_t *r);

/* ---- reconnect backoff: exponential with "equal jitter": the n-th delay is drawn uniformly
 * from [c/2, c] with c = min(max, base * 2^n). ---- */

typedef struct {
    uint32_t base_ms;
    uint32_t max_ms;
    uint32_t attempt;
} espadmin_backoff_t;

void espadmin_backoff_init(espadmin_backoff_t *b, uint32_t base_ms, uint32_t max_ms);
uint32_t espadmin_backoff_next(espadmin_backoff_t *b, uint32_t random32);
void espadmin_backoff_reset(espadmin_backoff_t *b);

/* ---- reassembly of MQTT messages delivered in fragments (esp-mqtt: the first fragment has
 * the topic and offset 0, later ones no topic). Fragments must arrive in order. A message that
 * comes in one piece is not copied; a fragmented one gets a buffer of exactly its announced
 * size while it is in flight (allocated at its first fragment, so nothing is held between
 * messages). ---- */

typedef enum {
    ESPADMIN_REASM_PENDING,  /* more fragments expected */
    ESPADMIN_REASM_COMPLETE, /* topic, data and received describe a complete message */
    ESPADMIN_REASM_REFUSED,  /* oversize, out of order, inconsistent or out of memory: discarded */
} espadmin_reasm_result_t;

typedef struct {
    char topic[ESPADMIN_MAX_TOPIC_LEN + 1];
    char *buf;        /* owned: the fragmented message in flight, or completed and not taken */
    const char *data; /* after COMPLETE: buf, or the fragment's own bytes when it came whole */
    size_t cap;       /* largest message accepted */
    size_t total;
    size_t received;
    bool active;   /* assembling */
    bool skipping; /* discarding the rest of a refused message */
} espadmin_reasm_t;

void espadmin_reasm_init(espadmin_reasm_t *r, size_t cap);
espadmin_reasm_result_t espadmin_reasm_feed(espadmin_reasm_t *r, const char *topic,
                                            size_t topic_len, size_t total_len, size_t offset,
                                            const void *data, size_t len);
/* After COMPLETE: hands the buffer holding r->data to the caller (who frees it with
 * espadmin_free), or returns NULL when the message came whole and r->data points into the
 * caller's own fragment. */
char *espadmin_reasm_take(espadmin_reasm_t *r);
/* Drops a message in flight and frees what the reassembler holds. */
void espadmin_reasm_free(espadmin_reasm_t *r);

#ifdef __cplusplus
}
#endif
#endif
