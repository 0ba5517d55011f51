/* An in-memory platform with an injected clock for the agent tests. */
#ifndef FAKE_PLATFORM_H
#define FAKE_PLATFORM_H

#include "espadmin/agent.h"
#include "espadmin/platform.h"

#define FAKE_MAX_KV 256
#define FAKE_MAX_PUBS 512

typedef struct {
    char ns[16];
    char key[16];
    char *val;
    size_t len;
} fake_kv_t;

typedef struct {
    char topic[257];
    char *payload;
    size_t len;
    int qos;
    bool retain;
    int mid;
} fake_pub_t;

typedef struct {
    int64_t now;
    int64_t wall;
    uint32_t rand_state;
    fake_kv_t kv[FAKE_MAX_KV];
    size_t nkv;
    bool fail_kv_set_key; /* fail writes of fail_key */
    char fail_key[16];

    int connects;
    int disconnects;
    bool connect_fails;
    char last_password[129];
    char subscribed[257];
    fake_pub_t pubs[FAKE_MAX_PUBS];
    size_t npubs;
    int next_mid;

    /* OTA */
    char running[33];
    char boot_version[33];
    espadmin_boot_state_t boot;
    bool ota_open;
    size_t ota_written;
    bool marked_valid;
    int rollbacks;
    int restarts;
    const char *reset;

    /* HTTP: serves http_data in chunks of http_chunk */
    const uint8_t *http_data;
    size_t http_len;
    size_t http_pos;
    size_t http_chunk;
    bool http_open_;
    bool http_stall;

    /* failures: ota_begin_rc / ota_write_rc returned instead of OK when non-zero, http_fail makes
     * reads fail; err is what last_error reports */
    int ota_begin_rc;
    int ota_write_rc;
    bool http_fail;
    char err[96];

    /* crash data "in flash": reported by crash_info while has_crash, erased by crash_clear */
    bool has_crash;
    espadmin_crash_t crash;
    int crash_clears;
    /* the whole core dump's upload: the URL asked for, and what poll answers (AGAIN while 0) */
    char coredump_url[ESPADMIN_MAX_URL_LEN + 1];
    int coredump_uploads;
    int coredump_result;

    espadmin_platform_t p;
} fake_t;

void fake_init(fake_t *f);
void fake_free(fake_t *f);
void fake_provision(fake_t *f, const char *ota_pubkey_b64);
void fake_kv_put(fake_t *f, const char *ns, const char *key, const char *val);
const char *fake_kv_get(fake_t *f, const char *ns, const char *key);
/* Publications on topic kind "up/<kind>" since index from; returns count. */
size_t fake_count(fake_t *f, const char *kind);
const fake_pub_t *fake_last(fake_t *f, const char *kind);
void fake_clear_pubs(fake_t *f);

#define FAKE_DEVICE "01hzx3k9qv4m7c2d8e5f6g7h8j"
#define FAKE_ROOT "espadmin"
#define FAKE_CMD_TOPIC "espadmin/01hzx3k9qv4m7c2d8e5f6g7h8j/down/cmd"

#endif
