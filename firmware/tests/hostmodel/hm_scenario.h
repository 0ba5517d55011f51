/* The scenario side of the host models (not an SDK API): boots and reboots, the broker, the
 * download server, NVS and OTA set-up. Shared by the ESP-IDF model (include/hostmodel.h) and the
 * ESP8266_RTOS_SDK v3.4 model (esp8266/include/hostmodel.h, HM_ESP8266), which each include it
 * after their SDK declarations. */
#ifndef HM_SCENARIO_H
#define HM_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Boot: loads the persisted device state (NVS, OTA, reset reason) from state_path when it
 * exists, runs the modelled bootloader (ESP-IDF with app rollback: a NEW image becomes
 * PENDING_VERIFY; an image still PENDING_VERIFY from the last boot becomes ABORTED and the other
 * valid slot boots. ESP8266_RTOS_SDK v3.4: the slot esp_ota_set_boot_partition chose boots,
 * the other one only when it holds no image), and
 * returns the boot number (1 for the first). esp_restart saves the state and execs argv
 * again: every static of the port starts afresh, like on a board. */
int hm_boot(const char *state_path, char **argv);
/* Simulates a crash of the running image (reset reason panic): saves and re-executes. */
void hm_panic(void) __attribute__((noreturn));
#ifndef HM_ESP8266
/* A panic with core dumps to flash enabled: the panic handler writes the core dump (reason,
 * task, the backtrace's PCs, a1 = SP of the first frame), then the chip reboots. */
void hm_panic_core_dump(const char *reason, const char *task, const uint32_t *pcs, int depth, uint32_t sp)
    __attribute__((noreturn));
/* The whole core dump the panic wrote to the coredump partition (HM_CORE_SIZE bytes). */
#define HM_CORE_SIZE 12288
void hm_core_dump_image(uint8_t out[HM_CORE_SIZE]);
bool hm_core_dump_present(void);
#endif
int hm_restarts(void); /* esp_restart calls in this process */

/* Log (ESP-IDF): 1 = one vprintf call per line (v1), 2 = CONFIG_LOG_VERSION_2 (prefix, message,
 * newline as three calls). The ESP8266 model always writes one character at a time through
 * esp_log_set_putchar's hook, holding esp_log's recursive lock for the line, as v3.4's log.c. */
void hm_log_set_version(int v);

/* NVS: loads an NVS partition CSV (key,type,encoding,value; namespace rows; data and file
 * rows; u8/i8/u16/i16/u32/i32/string/hex2bin/base64/binary encodings). Returns 0 or -1. */
int hm_nvs_load_csv(const char *path);
int hm_nvs_set_str(const char *ns, const char *key, const char *value);

/* OTA: the image format of the model: "HMIMG1" magic, a 32-byte version, a flags byte
 * (HM_IMG_CRASHES: the image panics at boot), then any payload. */
#define HM_IMG_HEADER 40
#define HM_IMG_CRASHES 0x01
size_t hm_image_make(uint8_t *out, size_t cap, const char *version, uint8_t flags, size_t payload);
void hm_ota_install_factory(const char *version); /* first boot only: ota_0 valid, running */
#ifndef HM_ESP8266
esp_ota_img_states_t hm_ota_running_state(void);
void hm_ota_set_running_state(esp_ota_img_states_t st); /* behind the agent's back */
#endif
int hm_ota_running_slot(void); /* 0 (ota_0) or 1 (ota_1) */
const char *hm_running_version(void);
bool hm_running_image_crashes(void);

/* The broker side of esp-mqtt. */
typedef struct {
    char host[130];
    uint32_t port;
    esp_mqtt_transport_t transport;
    char client_id[130];
    char username[130];
    char password[130];
    char ca[8192];
    bool bundle;
} hm_connection_t;
void hm_broker_set_puback_delay_ms(int ms);
void hm_broker_set_connect_delay_ms(int ms); /* the TLS handshake, under the API lock */
void hm_broker_set_refuse(bool refuse);
void hm_broker_set_ca(const char *ca_pem); /* a TLS connection must present exactly this CA */
int hm_broker_connections(hm_connection_t *last);
/* Queues a message for delivery to the connected client, in fragments of frag bytes. */
void hm_broker_inject(const char *topic, const char *payload, size_t len, int frag);
/* Waits up to timeout_ms for a publish whose topic ends with suffix and whose payload holds
 * needle; copies the payload. Returns true when found. Published messages stay recorded. */
bool hm_broker_wait(const char *suffix, const char *needle, char *out, size_t cap, int timeout_ms);
int hm_broker_count(const char *suffix, const char *needle);

/* The download server behind esp_http_client. */
void hm_http_reset(void);
void hm_http_serve(const char *url, const uint8_t *data, size_t len);
void hm_http_redirect(const char *url, const char *location, int status);
void hm_http_set_handshake_ms(int ms);
void hm_http_set_drop_after(size_t bytes); /* the first response drops the link after bytes */
void hm_http_set_ca(const char *ca_pem);   /* https needs exactly this CA (NULL: the bundle) */
int hm_http_requests(void);
/* PUT requests: answered with status (201 by default); hm_http_uploaded copies the body of the
 * last complete upload to url (prefix match) and returns its length, or -1. */
void hm_http_set_upload_status(int status);
long hm_http_uploaded(const char *url_prefix, uint8_t *out, size_t cap);
int hm_http_range_requests(void);

/* Stack of a task created by xTaskCreate: bytes touched so far (painted stack). */
size_t hm_task_stack_used(const char *name);

#endif
