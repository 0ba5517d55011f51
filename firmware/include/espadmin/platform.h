/* The one interface between the portable core and a port (ESP-IDF, Linux, the test fake).
 * The core never calls anything else. All functions are called from the thread that runs the
 * core; only log_capture (agent.h) may be called by a port from other threads, under log_lock. */
#ifndef ESPADMIN_PLATFORM_H
#define ESPADMIN_PLATFORM_H

#include "espadmin/protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESPADMIN_PLATFORM_OK 0
#define ESPADMIN_PLATFORM_ERR (-1)
#define ESPADMIN_PLATFORM_NOT_FOUND (-2)
#define ESPADMIN_PLATFORM_TOO_SMALL (-3)
#define ESPADMIN_PLATFORM_AGAIN (-4)
/* Why ota_begin or ota_write refused (any other negative value is reported as "internal"). */
#define ESPADMIN_PLATFORM_NO_SPACE (-5)       /* no slot, or the image does not fit it */
#define ESPADMIN_PLATFORM_PENDING_VERIFY (-6) /* the running image still awaits confirmation */
#define ESPADMIN_PLATFORM_INVALID_IMAGE (-7)  /* the slot refused the data (not a firmware image) */

/* The namespace holding the provisioning bundle and the agent's own state. */
#define ESPADMIN_NVS_NAMESPACE "espadmin"

typedef enum {
    ESPADMIN_BOOT_VALID,          /* running image confirmed (or rollback not enabled) */
    ESPADMIN_BOOT_PENDING_VERIFY, /* first boot of a new image: confirm or roll back */
} espadmin_boot_state_t;

typedef struct {
    const char *host;
    uint16_t port;
    bool tls;
    const char *ca_pem; /* "" = system roots (tls) */
    const char *client_id;
    const char *username;
    const char *password;
    const char *will_topic;
    const char *will_payload;
    size_t will_len;
    int will_qos;
    bool will_retain;
    uint16_t keepalive_s;
} espadmin_mqtt_config_t;

typedef struct {
    char chip_model[33];
    int chip_revision;
    char idf_version[32];
    char project[32];
    char mac[18];
    char ip[46];
    bool has_rssi;
    int rssi;
    int64_t free_heap;
    int64_t min_free_heap; /* < 0 when unknown */
} espadmin_sysinfo_t;

typedef struct espadmin_platform {
    void *ctx;

    /* Time: monotonic ms since boot, and Unix ms or 0 when the wall clock is not set. */
    int64_t (*now_ms)(void *ctx);
    int64_t (*wall_ms)(void *ctx);
    void (*random)(void *ctx, void *buf, size_t len);

    /* Key-value storage (NVS-like; namespaces and keys of at most 15 characters). get writes at
     * most *len bytes and sets *len to the value's size (TOO_SMALL when buf is too short). */
    int (*kv_get)(void *ctx, const char *ns, const char *key, void *buf, size_t *len);
    int (*kv_set)(void *ctx, const char *ns, const char *key, const void *val, size_t len);
    int (*kv_erase)(void *ctx, const char *ns, const char *key);
    int (*kv_erase_all)(void *ctx, const char *ns);
    int (*kv_commit)(void *ctx, const char *ns);

    /* MQTT. connect starts a connection and returns at once; the port reports the outcome
     * with espadmin_on_connected / espadmin_on_disconnected. publish returns a message ID
     * (> 0 for QoS 1, reported later through espadmin_on_published; 0 for QoS 0) or < 0. */
    int (*mqtt_connect)(void *ctx, const espadmin_mqtt_config_t *cfg);
    void (*mqtt_disconnect)(void *ctx);
    int (*mqtt_subscribe)(void *ctx, const char *filter, int qos);
    int (*mqtt_publish)(void *ctx, const char *topic, const void *payload, size_t len, int qos,
                        bool retain);

    /* OTA slots. finish validates the written image; set_boot makes it the next boot image
     * (the version is what running_version reports after the switch on ports that cannot read
     * it from the image); rollback marks the running image invalid and boots the previous one
     * (it does not return when it succeeds). begin and write return OK or one of NO_SPACE,
     * PENDING_VERIFY, INVALID_IMAGE or ERR, which the core reports as the protocol's reasons
     * no_space, busy, invalid_image and internal. */
    int (*ota_begin)(void *ctx, int64_t size);
    int (*ota_write)(void *ctx, const void *data, size_t len);
    int (*ota_finish)(void *ctx);
    void (*ota_abort)(void *ctx);
    int (*ota_set_boot)(void *ctx, const char *version);
    int (*ota_mark_valid)(void *ctx);
    void (*ota_rollback)(void *ctx);
    void (*running_version)(void *ctx, char *buf, size_t cap);
    espadmin_boot_state_t (*boot_state)(void *ctx);

    /* Streamed HTTP(S) download. read returns > 0 bytes, 0 at the end, AGAIN when no data is
     * ready yet, or another negative value on error. */
    int (*http_open)(void *ctx, const char *url);
    int (*http_read)(void *ctx, void *buf, size_t cap);
    void (*http_close)(void *ctx);

    /* Optional: a short description of why the last failing ota_* or http_* call failed ("HTTP
     * 404", "TLS handshake failed", "timed out", "too many redirects", an esp_err name), for
     * the message of the failure report; buf[0] = '\0' when unknown. Called before http_close
     * or ota_abort. */
    void (*last_error)(void *ctx, char *buf, size_t cap);

    /* System. */
    void (*restart)(void *ctx);
    const char *(*reset_reason)(void *ctx); /* metadata enum: "poweron", "sw", "panic", … */
    void (*system_info)(void *ctx, espadmin_sysinfo_t *info);
    void (*log)(void *ctx, espadmin_level_t level, const char *tag, const char *msg);
    void (*log_lock)(void *ctx, bool lock); /* optional: guards the log ring */

    /* Crypto. */
    void *(*sha256_begin)(void *ctx);
    void (*sha256_update)(void *ctx, void *h, const void *data, size_t len);
    void (*sha256_finish)(void *ctx, void *h, uint8_t out[32]); /* also frees h; out may be NULL */
    bool (*ed25519_verify)(void *ctx, const uint8_t pub[32], const void *msg, size_t len,
                           const uint8_t sig[64]);
    bool (*aes_gcm_decrypt)(void *ctx, const uint8_t key[32], const uint8_t nonce[12],
                            const void *aad, size_t aad_len, const void *ct, size_t ct_len,
                            const uint8_t tag[16], void *out);

    /* Optional: crash reports (core/crash.c). crash_info fills *out with what the last panic
     * left (ESP-IDF: esp_core_dump_get_summary and esp_core_dump_get_panic_reason) and
     * returns true; it is called once, by init, after a crash reset. crash_clear erases it
     * (esp_core_dump_image_erase) once the broker has acknowledged the report. */
    bool (*crash_info)(void *ctx, espadmin_crash_t *out);
    void (*crash_clear)(void *ctx);
    /* Optional: the whole core dump, announced by crash_info's size. coredump_upload starts an
     * HTTP PUT of it to url in the port's own task and returns at once: OK, NOT_FOUND (no core
     * dump in flash) or ERR. coredump_poll returns AGAIN while it runs, OK once the server
     * answered 2xx, ERR otherwise (last_error says why). Then the core calls crash_clear. */
    int (*coredump_upload)(void *ctx, const char *url);
    int (*coredump_poll)(void *ctx);
} espadmin_platform_t;

#ifdef __cplusplus
}
#endif
#endif
