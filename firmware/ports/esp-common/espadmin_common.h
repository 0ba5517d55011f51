/* The part of the ESP Admin platform that ESP-IDF (ports/esp-idf) and ESP8266_RTOS_SDK v3.4
 * (ports/esp8266) share, compiled by both components against their own SDK headers. Internal:
 * applications include the port's espadmin_esp.h, never this file.
 *
 * What is here behaves the same on both SDKs: NVS as the core's key-value store, the esp-mqtt
 * event handler (copy and queue, never wait) and the strings kept for esp-mqtt, the OTA
 * download task over esp_http_client, the capture of log lines, and the agent task with its
 * event queue. Each port adds what its SDK shapes differently: the esp-mqtt configuration,
 * publish and subscribe, the OTA slots and what confirms an image, system information, crypto,
 * and the log hook (esp_log_set_vprintf on ESP-IDF, esp_log_set_putchar on the ESP8266).
 * The threading and lifetime rules are those of ports/esp-idf/espadmin_esp.c's header. */
#ifndef ESPADMIN_COMMON_H
#define ESPADMIN_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "esp_ota_ops.h"
#include "espadmin/agent.h"
#include "espadmin/platform.h"
#include "mqtt_client.h"
#include "sdkconfig.h"

#ifdef CONFIG_IDF_TARGET_ESP8266
#define ESPC_ESP8266 1
#else
#define ESPC_ESP8266 0
#endif

/* The protocol allows 2,048-byte URLs (docs/protocol.md); the request line and headers must
 * fit esp_http_client's transmit buffer (512 bytes by default). */
#define ESPC_HTTP_TX_BUFFER (2048 + 512)

/* Why the last ota_* or http_* call failed (the platform's last_error); agent task only. */
extern char espc_err[80];

char *espc_strdup(const char *s);

/* Sets every platform function this file provides (time, NVS, MQTT disconnect, OTA writes,
 * downloads, restart and reset reason, logs, crypto); the port sets the rest. */
void espc_platform_defaults(espadmin_platform_t *p);
/* sodium_init, and psa_crypto_init on Mbed TLS 4. */
esp_err_t espc_crypto_init(void);

/* OTA: the handle and slot of the image being written (agent task only). espc_ota_pick chooses
 * the next slot and checks the size fits (NO_SPACE, with espc_err, otherwise);
 * espc_ota_begin_failed reports a refused esp_ota_begin (NO_SPACE or ERR). */
extern esp_ota_handle_t espc_ota;
extern const esp_partition_t *espc_ota_part;
int espc_ota_pick(int64_t size);
int espc_ota_begin_failed(esp_err_t err);
/* Chip, SDK version, MAC, RSSI and heap; the port adds the project and the address. */
void espc_system_info(espadmin_sysinfo_t *si);

/* Clock, randomness, NVS and logs as the core's platform functions. */
int64_t espc_now(void *ctx);
int64_t espc_wall(void *ctx);
void espc_random(void *ctx, void *buf, size_t len);
int espc_kv_get(void *ctx, const char *ns, const char *key, void *buf, size_t *len);
int espc_kv_set(void *ctx, const char *ns, const char *key, const void *val, size_t len);
int espc_kv_erase(void *ctx, const char *ns, const char *key);
int espc_kv_erase_all(void *ctx, const char *ns);
int espc_kv_commit(void *ctx, const char *ns);
void espc_log(void *ctx, espadmin_level_t level, const char *tag, const char *msg);
void espc_log_lock(void *ctx, bool lock);
/* nvs_flash_init() without erasing (the partition holds the provisioning), saying why it failed. */
esp_err_t espc_nvs_flash_init(void);

/* MQTT. The port builds its SDK's esp_mqtt_client_config_t from the strings espc_mqtt_keep
 * copied (they live until the client is destroyed), then hands the new client to
 * espc_mqtt_start, which registers the handler and starts it. */
typedef struct {
    char *host;
    char *client_id;
    char *username;
    char *password;
    char *will_topic;
    char *will_msg;
    char *ca_pem; /* NULL unless TLS with a CA */
} espc_mqtt_keep_t;
const espc_mqtt_keep_t *espc_mqtt_keep(const espadmin_mqtt_config_t *c);
int espc_mqtt_start(esp_mqtt_client_handle_t client);
esp_mqtt_client_handle_t espc_mqtt_client(void); /* agent task only; NULL when disconnected */
void espc_mqtt_disconnect(void *ctx);

/* The download (http_*) and its CA: config "_ota_ca", provisioning "ota_ca", else for a URL on
 * server_url the broker's CA; NULL when there is none (ESP-IDF: the certificate bundle). */
int espc_http_open(void *ctx, const char *url);
int espc_http_read(void *ctx, void *buf, size_t cap);
void espc_http_close(void *ctx);
void espc_last_error(void *ctx, char *buf, size_t cap);
char *espc_download_ca(const char *url);

/* Logs: one piece of output text from the SDK's log hook (joined per task into lines). */
void espc_feed_log(const char *piece, size_t n);
/* Provided by each port: installs its SDK's log hook (called once by the agent task). */
void espc_port_install_log_hook(void);
espadmin_agent_t *espc_agent(void); /* NULL until the agent is initialised */

/* Creates the queue and the agent task that runs the core on platform p. */
esp_err_t espc_start(const espadmin_platform_t *p);

#endif
