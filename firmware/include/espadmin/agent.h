/* The ESP Admin agent: a single-threaded, event-driven core. A port owns the threads and
 * calls these functions from one thread (or under one lock); the agent calls back only
 * through the espadmin_platform_t it was given. Heavy work (command execution, downloads,
 * publishing) happens in espadmin_tick; the event functions only record and queue. */
#ifndef ESPADMIN_AGENT_H
#define ESPADMIN_AGENT_H

#include "espadmin/platform.h"
#include "espadmin/protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct espadmin_agent espadmin_agent_t;

typedef struct {
    uint32_t ota_verify_timeout_ms;  /* new image must reach the server within this; 120000 */
    uint32_t backoff_base_ms;        /* first reconnect delay ceiling; 1000 */
    uint32_t backoff_max_ms;         /* cap; 60000 */
    uint32_t connect_timeout_ms;     /* a connection attempt without CONNACK; 30000 */
    uint32_t download_timeout_ms;    /* no data for this long fails the download; 60000 */
    uint32_t puback_wait_ms;         /* wait for the PUBACK before a restart; 2000 */
    size_t log_ring_bytes;           /* 8192, allocated only while debug is on */
    size_t inbox_slots;              /* complete messages queued for the tick; 2 (each holds
                                        its message in a block of the message's size) */
} espadmin_options_t;

/* Counters of what the agent refused or dropped since it started. */
typedef struct {
    uint32_t inbox_dropped;    /* messages not queued: oversize, fragments out of order, inbox
                                  full, or no memory for the message */
    uint32_t commands_refused; /* commands that did not decode (any error class) */
    uint32_t json_too_large;   /* of those: within 16 KiB but over ESPADMIN_JSON_MAX_NODES values */
    uint32_t no_memory;        /* allocations that failed (the work was refused, not crashed) */
    uint32_t uplinks_dropped;  /* uplinks not sent because they did not encode (out of memory
                                  for the encoder's self-check, or a value out of range) */
} espadmin_stats_t;

/* Reads the provisioning and the agent's state from storage and decides what the boot means
 * (crash report, OTA confirmation or rollback report). Returns NULL when the device is not
 * provisioned or memory is short. options may be NULL (defaults). */
espadmin_agent_t *espadmin_agent_init(const espadmin_platform_t *platform,
                                      const espadmin_options_t *options);
void espadmin_agent_free(espadmin_agent_t *a);

/* Connection events from the port. */
void espadmin_on_connected(espadmin_agent_t *a);
void espadmin_on_disconnected(espadmin_agent_t *a);
void espadmin_on_published(espadmin_agent_t *a, int msg_id);

/* A complete message. Returns 0 when queued, < 0 when refused (oversize, inbox full). */
int espadmin_on_message(espadmin_agent_t *a, const char *topic, const void *payload, size_t len);
/* One fragment as esp-mqtt delivers it: topic only with offset 0 (topic_len 0 otherwise). */
int espadmin_on_message_fragment(espadmin_agent_t *a, const char *topic, size_t topic_len,
                                 size_t total_len, size_t offset, const void *data, size_t len);

/* Does the pending work: connect/reconnect, boot publications, commands, downloads, log
 * batches, deadlines. Call it often (every 10–100 ms) with the platform's now_ms. */
void espadmin_tick(espadmin_agent_t *a, int64_t now_ms);

/* A log line from the port's log hook; kept only while debug is on at a matching level.
 * The port calls it under platform log_lock when other threads log. */
void espadmin_log_capture(espadmin_agent_t *a, espadmin_level_t level, const char *tag,
                          const char *msg, size_t len);

/* Queues an error report (sent when connected). Returns 0, or -1 when the queue is full. */
int espadmin_report_error(espadmin_agent_t *a, const char *type, const char *code,
                          const char *message);

/* The applied config: copies the value of key (a string's text, or the JSON text of any other
 * type) to buf and NUL-terminates it. Returns 0, ESPADMIN_PLATFORM_NOT_FOUND or _TOO_SMALL. */
int espadmin_config_get(espadmin_agent_t *a, const char *key, espadmin_cfg_type_t *type,
                        char *buf, size_t cap);
int64_t espadmin_config_version(const espadmin_agent_t *a);

void espadmin_get_stats(const espadmin_agent_t *a, espadmin_stats_t *out);
bool espadmin_is_connected(const espadmin_agent_t *a);
bool espadmin_debug_enabled(const espadmin_agent_t *a);
const char *espadmin_device_id(const espadmin_agent_t *a);
const char *espadmin_firmware_version(const espadmin_agent_t *a);

#ifdef __cplusplus
}
#endif
#endif
