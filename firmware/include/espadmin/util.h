/* Building blocks of the core with their own tests: the log ring buffer, reconnect backoff
 * and MQTT fragment reassembly. None of them calls the platform. */
#ifndef ESPADMIN_UTIL_H
#define ESPADMIN_UTIL_H

#include "espadmin/protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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
 * the topic and offset 0, later ones no topic). Fragments must arrive in order. ---- */

typedef enum {
    ESPADMIN_REASM_PENDING,  /* more fragments expected */
    ESPADMIN_REASM_COMPLETE, /* topic and data hold a complete message */
    ESPADMIN_REASM_REFUSED,  /* oversize, out of order or inconsistent: message discarded */
} espadmin_reasm_result_t;

typedef struct {
    char topic[ESPADMIN_MAX_TOPIC_LEN + 1];
    char *buf;
    size_t cap;
    size_t total;
    size_t received;
    bool active;   /* assembling */
    bool skipping; /* discarding the rest of a refused message */
} espadmin_reasm_t;

void espadmin_reasm_init(espadmin_reasm_t *r, char *buf, size_t cap);
espadmin_reasm_result_t espadmin_reasm_feed(espadmin_reasm_t *r, const char *topic,
                                            size_t topic_len, size_t total_len, size_t offset,
                                            const void *data, size_t len);

#ifdef __cplusplus
}
#endif
#endif
