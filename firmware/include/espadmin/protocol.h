/* The ESP Admin device protocol, version 1 (docs/protocol.md): topics, access rules, the
 * command decoder, uplink encoders and the validators that check every encoded payload. */
#ifndef ESPADMIN_PROTOCOL_H
#define ESPADMIN_PROTOCOL_H

#include "espadmin/profile.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESPADMIN_PROTOCOL_VERSION 1
#define ESPADMIN_MAX_SAFE_INTEGER 9007199254740991LL

#define ESPADMIN_MAX_ID_LEN 64
#define ESPADMIN_MAX_ROOT_LEN 64
#define ESPADMIN_MAX_TOPIC_LEN 256

#define ESPADMIN_MAX_COMMAND_SIZE 16384
#define ESPADMIN_MAX_STATUS_SIZE 256
#define ESPADMIN_MAX_METADATA_SIZE 2048
#define ESPADMIN_MAX_CONFIG_REQ_SIZE 256
#define ESPADMIN_MAX_ACK_SIZE 4096
#define ESPADMIN_MAX_OTA_SIZE 1024
#define ESPADMIN_MAX_LOG_SIZE 8192
#define ESPADMIN_MAX_ERROR_SIZE 16384
#define ESPADMIN_MAX_CORE_DUMP_SIZE 4194304 /* a full core dump announced and uploaded */

#define ESPADMIN_MAX_CONFIG_ENTRIES 64
#define ESPADMIN_MAX_CONFIG_KEY_LEN 15
#define ESPADMIN_MAX_CONFIG_VALUE_LEN 3999
#define ESPADMIN_MAX_SECRET_VALUE_LEN 5400
#define ESPADMIN_MAX_URL_LEN 2048
#define ESPADMIN_MAX_IMAGE_SIZE 33554432
#define ESPADMIN_MAX_DEBUG_DURATION_S 14400
#define ESPADMIN_DEFAULT_DEBUG_DURATION_S 900
#define ESPADMIN_MAX_LOG_LINES 64
#define ESPADMIN_MAX_LOG_MSG_LEN 512
#define ESPADMIN_MAX_LOG_TAG_LEN 32
#define ESPADMIN_MAX_MESSAGE_LEN 256
#define ESPADMIN_MAX_APP_STRING_LEN 31

/* Error classes (docs/protocol.md §2). */
typedef enum {
    ESPADMIN_OK = 0,
    ESPADMIN_E_TOO_LARGE,
    ESPADMIN_E_MALFORMED,
    ESPADMIN_E_UNSUPPORTED_VERSION,
    ESPADMIN_E_INVALID_FIELD,
    ESPADMIN_E_UNKNOWN_COMMAND,
    ESPADMIN_E_INVALID_TOPIC,
    ESPADMIN_E_UNKNOWN_KIND,
    ESPADMIN_E_NO_MEMORY,
} espadmin_perr_code_t;

typedef struct {
    espadmin_perr_code_t code;
    char field[64]; /* field path for ESPADMIN_E_INVALID_FIELD, e.g. "params.entries[2].key" */
} espadmin_perr_t;

/* "too_large", "malformed", … as in the protocol; "" for ESPADMIN_OK. */
const char *espadmin_perr_class(espadmin_perr_code_t code);

typedef enum {
    ESPADMIN_KIND_STATUS,
    ESPADMIN_KIND_METADATA,
    ESPADMIN_KIND_CONFIG_REQ,
    ESPADMIN_KIND_ACK,
    ESPADMIN_KIND_OTA,
    ESPADMIN_KIND_LOG,
    ESPADMIN_KIND_ERROR,
    ESPADMIN_KIND_CMD,
    ESPADMIN_KIND_COUNT
} espadmin_kind_t;

const char *espadmin_kind_name(espadmin_kind_t kind);

typedef enum {
    ESPADMIN_LEVEL_ERROR = 0,
    ESPADMIN_LEVEL_WARN,
    ESPADMIN_LEVEL_INFO,
    ESPADMIN_LEVEL_DEBUG,
    ESPADMIN_LEVEL_VERBOSE,
} espadmin_level_t;

const char *espadmin_level_name(espadmin_level_t level);

/* ---- topics and access rules (§1) ---- */

bool espadmin_valid_device_id(const char *id);
bool espadmin_valid_root(const char *root);
/* Writes "{root}/{id}/up/{kind}" (or ".../down/cmd" for ESPADMIN_KIND_CMD); returns the length
 * or -1 when it does not fit or exceeds ESPADMIN_MAX_TOPIC_LEN. */
int espadmin_topic(char *buf, size_t cap, const char *root, const char *id, espadmin_kind_t kind);
/* Writes "{root}/{id}/down/#". */
int espadmin_downlink_filter(char *buf, size_t cap, const char *root, const char *id);
/* Parses a topic; dir_up tells the direction. */
espadmin_perr_code_t espadmin_parse_topic(const char *root, const char *topic, char *device_id,
                                          size_t id_cap, bool *dir_up, espadmin_kind_t *kind);
bool espadmin_device_may_subscribe(const char *root, const char *id, const char *filter);
bool espadmin_device_may_receive(const char *root, const char *id, const char *topic);
bool espadmin_device_may_publish(const char *root, const char *id, const char *topic, bool retain);
bool espadmin_device_may_set_will(const char *root, const char *id, const char *topic,
                                  const char *payload, size_t len);

/* ---- commands (§4) ---- */

typedef enum {
    ESPADMIN_CMD_RESTART,
    ESPADMIN_CMD_CONFIG,
    ESPADMIN_CMD_UPDATE,
    ESPADMIN_CMD_DEBUG,
    ESPADMIN_CMD_COREDUMP, /* its url and url_expires_at are in update */
} espadmin_cmd_name_t;

typedef enum {
    ESPADMIN_CFG_STRING,
    ESPADMIN_CFG_INT,
    ESPADMIN_CFG_FLOAT,
    ESPADMIN_CFG_BOOL,
    ESPADMIN_CFG_JSON,
} espadmin_cfg_type_t;

const char *espadmin_cfg_type_name(espadmin_cfg_type_t t);

typedef struct {
    char key[ESPADMIN_MAX_CONFIG_KEY_LEN + 1];
    espadmin_cfg_type_t type;
    bool secret;
    /* Into espadmin_command_t.values, NUL-terminated: a string's decoded text, a secret's
     * sealed base64 text, or the compact JSON of any other value. */
    uint16_t value_off;
    uint16_t value_len;
} espadmin_cfg_entry_t;

typedef struct {
    char version[33];
    int64_t size;
    char sha256[65];
    char url[ESPADMIN_MAX_URL_LEN + 1];
    int64_t url_expires_at;
    char signature[89]; /* "" when absent */
} espadmin_update_params_t;

typedef struct {
    char id[ESPADMIN_MAX_ID_LEN + 1];
    espadmin_cmd_name_t name;
    int64_t expires_at;
    char restart_reason[129];
    struct {
        bool enabled;
        espadmin_level_t level;
        int32_t duration_s;
    } debug;
    union { /* a command is one or the other */
        struct {
            int64_t version;
            char hash[65];
            size_t count;
            espadmin_cfg_entry_t entries[ESPADMIN_MAX_CONFIG_ENTRIES];
        } config;
        espadmin_update_params_t update;
    };
    /* Where the entries' value_off points: values (decoded text, see espadmin_cfg_entry_t),
     * or, in the small profile (values_raw), the payload itself: each value's JSON text as
     * it was received, so a config is never copied whole. */
    const char *value_text;
    bool values_raw;
    size_t values_len;
    size_t values_cap; /* room in values; set by espadmin_command_new, kept by the decoder */
    /* A config's values, sized for the payload: they never exceed its text plus one NUL per
     * entry, so a restart or an update takes no room for them. Empty in the small profile. */
    char values[];
} espadmin_command_t;

/* The room in values a command decoded from a payload of len bytes may need. */
#ifdef ESPADMIN_PROFILE_SMALL
#define ESPADMIN_COMMAND_VALUES_CAP(len) ((void)(len), (size_t)0)
#else
#define ESPADMIN_COMMAND_VALUES_CAP(len) ((len) + ESPADMIN_MAX_CONFIG_ENTRIES)
#endif

/* Allocates (espadmin_malloc, util.h) a command with room for the values of a payload of
 * payload_len bytes (no more than a 16 KiB payload needs); free it with espadmin_free.
 * Returns NULL when memory is short. */
espadmin_command_t *espadmin_command_new(size_t payload_len);

/* Decodes a command payload, checking in the documented order. cmd comes from
 * espadmin_command_new for at least len bytes (ESPADMIN_E_NO_MEMORY otherwise). A payload over
 * the device's limit (ESPADMIN_DEVICE_MAX_COMMAND, profile.h) is too_large. In the small
 * profile the config values point into data, which must outlive cmd. */
espadmin_perr_code_t espadmin_command_decode(const char *data, size_t len,
                                             espadmin_command_t *cmd, espadmin_perr_t *err);
/* The command's "id" when the payload is within the size limit, well formed and its id valid;
 * otherwise "" (docs: PeekCommandID). Returns true when an id was found. */
bool espadmin_command_peek_id(const char *data, size_t len, char id[ESPADMIN_MAX_ID_LEN + 1]);

/* Validates an uplink payload the way the server decodes it. */
espadmin_perr_code_t espadmin_uplink_validate(espadmin_kind_t kind, const char *data, size_t len,
                                              espadmin_perr_t *err);

/* ---- helpers ---- */

bool espadmin_valid_release_version(const char *s);
bool espadmin_valid_ip(const char *s);
/* Strict standard base64 (padded). Returns the decoded length or -1. */
int espadmin_base64_decode(const char *in, size_t len, uint8_t *out, size_t cap);
/* The canonical OTA signing string (§4.4). Returns its length or -1. */
int espadmin_ota_signing_string(const espadmin_update_params_t *u, char *buf, size_t cap);
/* The associated data of a secret config value (§5). Returns its length or -1. */
int espadmin_secret_aad(const char *device_id, const char *key, int64_t version, char *buf,
                        size_t cap);

/* ---- uplink encoders; each returns the length or -1, and validates its own output ---- */

int espadmin_encode_status(char *buf, size_t cap, bool online);

typedef struct {
    const char *firmware_version;
    const char *project; /* optional */
    const char *chip_model;
    int chip_revision;
    const char *idf_version;
    const char *mac;
    const char *ip; /* optional */
    bool has_rssi;
    int rssi;
    int64_t free_heap;
    int64_t min_free_heap; /* < 0: absent */
    int64_t uptime_ms;
    const char *reset_reason;
    int64_t config_version;
    /* the device's limits ("limits"; docs/protocol.md §3.2); 0: absent */
    int64_t limit_command_bytes;
    int64_t limit_config_bytes;
} espadmin_metadata_t;
int espadmin_encode_metadata(char *buf, size_t cap, const espadmin_metadata_t *m);

int espadmin_encode_config_req(char *buf, size_t cap, int64_t config_version, const char *hash);

/* result: "ok", "error", "rejected"; message optional; config_version < 0: no data. */
int espadmin_encode_ack(char *buf, size_t cap, const char *id, const char *result,
                        const char *message, int64_t config_version);

/* reason only with state "failed"; progress < 0: absent. */
int espadmin_encode_ota(char *buf, size_t cap, const char *id, const char *version,
                        const char *state, int progress, const char *reason, const char *message);

/* What a panic left for the next boot (ESP-IDF: the core dump summary in flash and its panic
 * reason). Frames are innermost first, as the panic handler walked them. */
#define ESPADMIN_MAX_CRASH_FRAMES 32
typedef struct {
    uint32_t pc;
    uint32_t sp; /* 0: unknown */
} espadmin_frame_t;
typedef struct {
    char reason[129]; /* "LoadProhibited", "Load access fault", an abort or assert message; "" unknown */
    char task[33];    /* the task that crashed */
    espadmin_frame_t frames[ESPADMIN_MAX_CRASH_FRAMES];
    size_t nframes;
    bool corrupted;   /* the backtrace ended in a corrupted frame */
    char summary[257]; /* exception registers and the like, for people */
    int64_t size;     /* bytes of the whole core dump kept for upload (core_dump.size); 0: none */
} espadmin_crash_t;

typedef struct {
    const char *message;
    const char *type;
    const char *code;         /* optional */
    const char *severity;     /* optional */
    const char *reset_reason; /* optional */
    const char *firmware_version;
    int64_t uptime_ms; /* < 0: absent */
    int64_t free_heap; /* < 0: absent */
    const char *core_dump_summary; /* optional */
    /* optional: backtrace (nframes ≤ ESPADMIN_MAX_CRASH_FRAMES), task, panic reason, summary,
     * size; with it the report always has a core_dump object */
    const espadmin_crash_t *crash;
} espadmin_error_report_t;
int espadmin_encode_error(char *buf, size_t cap, const espadmin_error_report_t *e);

/* Copies at most max bytes of src to dst (NUL-terminated), cutting on a UTF-8 boundary,
 * replacing invalid bytes with '?' and dropping ANSI escape sequences and trailing newlines. */
size_t espadmin_sanitize_text(char *dst, size_t max, const char *src, size_t len);

#ifdef __cplusplus
}
#endif
#endif
