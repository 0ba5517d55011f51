/* A host model of the parts of the ESP8266_RTOS_SDK v3.4 runtime the ESP Admin port uses, so
 * the real ports/esp8266/espadmin/espadmin_esp8266.c (and ports/esp-common) compiles and runs
 * on Linux under ThreadSanitizer and AddressSanitizer. The declarations have v3.4's shapes, as
 * read from the SDK at 89a3f254b63819035f65d9c5dcdae8864f1a6a8a (tag v3.4), its esp-mqtt at
 * 01594bf118ae502b5a0ead040446f2be75d26223 and its Mbed TLS fork at
 * 9ef92c551eb8d92677034c3ec8078a8076febf41; only what the port and the example use is
 * declared. The runtime is tests/hostmodel/hostmodel.c compiled with -DHM_ESP8266: where v3.4
 * behaves as ESP-IDF does (FreeRTOS on pthreads, NVS and its CSV, esp_http_client's transfer,
 * esp-mqtt's task and API lock) it is the same code. What differs, and where it comes from:
 *  - esp_system.h: esp_read_mac, esp_chip_info, esp_reset_reason (with ESP_RST_FAST_SW),
 *    esp_get_idf_version (esp_idf_version.h, "v3.4"); no esp_mac.h, esp_chip_info.h,
 *    esp_netif.h, esp_crt_bundle.h or espcoredump;
 *  - tcpip_adapter.h: tcpip_adapter_get_ip_info and lwIP's ip4_addr_t;
 *  - esp_log.h: esp_log_set_putchar (no vprintf hook); esp_log_write (log.c) takes a recursive
 *    lock, writes "L (ms) tag: " and the message through the putchar function one character at
 *    a time, then '\n', and releases the lock;
 *  - esp_ota_ops.h: no rollback API, no esp_ota_abort, esp_ota_get_app_description; the
 *    bootloader boots the slot otadata names (what esp_ota_set_boot_partition chose), the other
 *    one only when that slot holds no valid image;
 *  - nvs.h: nvs_handle and nvs_open_mode (not *_t); a string or blob holds at most 1,984
 *    bytes (format version 1: ESP_ERR_NVS_VALUE_TOO_LONG);
 *  - esp_http_client.h: no crt_bundle_attach or keep_alive_enable, no
 *    esp_http_client_flush_response, esp_http_client_fetch_headers returns int;
 *  - mqtt_client.h: the flat esp_mqtt_client_config_t (host, port, transport, lwt_*,
 *    cert_pem, buffer_size, ...), esp_mqtt_client_subscribe as a function, no
 *    esp_mqtt_client_enqueue (esp_mqtt_client_publish only), the event with user_context and
 *    error_handle, esp_mqtt_client_register_event on the client's event loop;
 *  - Mbed TLS 2.x: mbedtls_sha256_starts_ret/update_ret/finish_ret, mbedtls_gcm_setkey with
 *    mbedtls_cipher_id_t. */
#ifndef HOSTMODEL_H
#define HOSTMODEL_H

#ifndef HM_ESP8266
#error "the ESP8266_RTOS_SDK model is compiled with -DHM_ESP8266"
#endif

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- esp_err.h (esp_common), and the codes of nvs.h, esp_ota_ops.h, esp_http_client.h ---- */
typedef int32_t esp_err_t;
#define ESP_OK 0
#define ESP_FAIL (-1)
#define ESP_ERR_NO_MEM 0x101
#define ESP_ERR_INVALID_ARG 0x102
#define ESP_ERR_INVALID_STATE 0x103
#define ESP_ERR_INVALID_SIZE 0x104
#define ESP_ERR_NOT_FOUND 0x105
#define ESP_ERR_TIMEOUT 0x107
#define ESP_ERR_NVS_BASE 0x1100
#define ESP_ERR_NVS_NOT_INITIALIZED (ESP_ERR_NVS_BASE + 0x01)
#define ESP_ERR_NVS_NOT_FOUND (ESP_ERR_NVS_BASE + 0x02)
#define ESP_ERR_NVS_TYPE_MISMATCH (ESP_ERR_NVS_BASE + 0x03)
#define ESP_ERR_NVS_READ_ONLY (ESP_ERR_NVS_BASE + 0x04)
#define ESP_ERR_NVS_INVALID_NAME (ESP_ERR_NVS_BASE + 0x08)
#define ESP_ERR_NVS_KEY_TOO_LONG (ESP_ERR_NVS_BASE + 0x0a)
#define ESP_ERR_NVS_INVALID_LENGTH (ESP_ERR_NVS_BASE + 0x0c)
#define ESP_ERR_NVS_NO_FREE_PAGES (ESP_ERR_NVS_BASE + 0x0d)
#define ESP_ERR_NVS_VALUE_TOO_LONG (ESP_ERR_NVS_BASE + 0x0e)
#define ESP_ERR_OTA_BASE 0x1500
#define ESP_ERR_OTA_PARTITION_CONFLICT (ESP_ERR_OTA_BASE + 0x01)
#define ESP_ERR_OTA_SELECT_INFO_INVALID (ESP_ERR_OTA_BASE + 0x02)
#define ESP_ERR_OTA_VALIDATE_FAILED (ESP_ERR_OTA_BASE + 0x03)
#define ESP_ERR_HTTP_BASE (0x7000)
#define ESP_ERR_HTTP_MAX_REDIRECT (ESP_ERR_HTTP_BASE + 1)
#define ESP_ERR_HTTP_CONNECT (ESP_ERR_HTTP_BASE + 2)
#define ESP_ERR_HTTP_WRITE_DATA (ESP_ERR_HTTP_BASE + 3)
#define ESP_ERR_HTTP_FETCH_HEADER (ESP_ERR_HTTP_BASE + 4)
#define ESP_ERR_HTTP_INVALID_TRANSPORT (ESP_ERR_HTTP_BASE + 5)
#define ESP_ERR_HTTP_CONNECTING (ESP_ERR_HTTP_BASE + 6)
#define ESP_ERR_HTTP_EAGAIN (ESP_ERR_HTTP_BASE + 7)
const char *esp_err_to_name(esp_err_t code);
void hm_error_check_failed(esp_err_t rc, const char *file, int line, const char *expr);
#define ESP_ERROR_CHECK(x)                                                                       \
    do {                                                                                         \
        esp_err_t err_rc_ = (x);                                                                 \
        if (err_rc_ != ESP_OK) hm_error_check_failed(err_rc_, __FILE__, __LINE__, #x);           \
    } while (0)

#include "../../hm_freertos.h"

/* ---- esp_log.h (components/log) ---- */
typedef enum { ESP_LOG_NONE, ESP_LOG_ERROR, ESP_LOG_WARN, ESP_LOG_INFO, ESP_LOG_DEBUG, ESP_LOG_VERBOSE, ESP_LOG_MAX } esp_log_level_t;
typedef int (*putchar_like_t)(int ch);
putchar_like_t esp_log_set_putchar(putchar_like_t func);
uint32_t esp_log_timestamp(void);
void esp_log_write(esp_log_level_t level, const char *tag, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
#ifndef LOG_LOCAL_LEVEL
#define LOG_LOCAL_LEVEL CONFIG_LOG_DEFAULT_LEVEL
#endif
#define ESP_LOG_LEVEL(level, tag, format, ...) esp_log_write(level, tag, format, ##__VA_ARGS__)
#define ESP_LOG_LEVEL_LOCAL(level, tag, format, ...)                                            \
    do {                                                                                        \
        if (LOG_LOCAL_LEVEL >= level) ESP_LOG_LEVEL(level, tag, format, ##__VA_ARGS__);          \
    } while (0)
#define ESP_LOGE(tag, format, ...) ESP_LOG_LEVEL_LOCAL(ESP_LOG_ERROR, tag, format, ##__VA_ARGS__)
#define ESP_LOGW(tag, format, ...) ESP_LOG_LEVEL_LOCAL(ESP_LOG_WARN, tag, format, ##__VA_ARGS__)
#define ESP_LOGI(tag, format, ...) ESP_LOG_LEVEL_LOCAL(ESP_LOG_INFO, tag, format, ##__VA_ARGS__)
#define ESP_LOGD(tag, format, ...) ESP_LOG_LEVEL_LOCAL(ESP_LOG_DEBUG, tag, format, ##__VA_ARGS__)
#define ESP_LOGV(tag, format, ...) ESP_LOG_LEVEL_LOCAL(ESP_LOG_VERBOSE, tag, format, ##__VA_ARGS__)

/* ---- esp_system.h, esp_idf_version.h, esp_timer.h (components/esp8266) ---- */
typedef enum { ESP_MAC_WIFI_STA, ESP_MAC_WIFI_SOFTAP } esp_mac_type_t;
typedef enum {
    ESP_RST_UNKNOWN = 0, ESP_RST_POWERON, ESP_RST_EXT, ESP_RST_SW, ESP_RST_PANIC, ESP_RST_INT_WDT,
    ESP_RST_TASK_WDT, ESP_RST_WDT, ESP_RST_DEEPSLEEP, ESP_RST_BROWNOUT, ESP_RST_SDIO, ESP_RST_FAST_SW,
} esp_reset_reason_t;
esp_err_t esp_read_mac(uint8_t *mac, esp_mac_type_t type);
void esp_restart(void) __attribute__((noreturn));
esp_reset_reason_t esp_reset_reason(void);
uint32_t esp_get_free_heap_size(void);
uint32_t esp_get_minimum_free_heap_size(void);
uint32_t esp_random(void);
void esp_fill_random(void *buf, size_t len);
typedef enum { CHIP_ESP8266 = 0, CHIP_ESP32 = 1 } esp_chip_model_t;
typedef struct {
    esp_chip_model_t model;
    uint32_t features;
    uint8_t cores;
    uint8_t revision;
} esp_chip_info_t;
void esp_chip_info(esp_chip_info_t *out_info);
#define ESP_IDF_VERSION_MAJOR 3
#define ESP_IDF_VERSION_MINOR 4
#define ESP_IDF_VERSION_PATCH 0
#define ESP_IDF_VERSION_VAL(major, minor, patch) ((major << 16) | (minor << 8) | (patch))
#define ESP_IDF_VERSION ESP_IDF_VERSION_VAL(ESP_IDF_VERSION_MAJOR, ESP_IDF_VERSION_MINOR, ESP_IDF_VERSION_PATCH)
const char *esp_get_idf_version(void);
int64_t esp_timer_get_time(void);

/* ---- tcpip_adapter.h, with lwIP's ip4_addr_t (lwip/ip4_addr.h) ---- */
typedef struct ip4_addr {
    uint32_t addr;
} ip4_addr_t;
#define ip4_addr1(ipaddr) (((const uint8_t *)(&(ipaddr)->addr))[0])
#define ip4_addr2(ipaddr) (((const uint8_t *)(&(ipaddr)->addr))[1])
#define ip4_addr3(ipaddr) (((const uint8_t *)(&(ipaddr)->addr))[2])
#define ip4_addr4(ipaddr) (((const uint8_t *)(&(ipaddr)->addr))[3])
#define ip4_addr1_16(ipaddr) ((uint16_t)ip4_addr1(ipaddr))
#define ip4_addr2_16(ipaddr) ((uint16_t)ip4_addr2(ipaddr))
#define ip4_addr3_16(ipaddr) ((uint16_t)ip4_addr3(ipaddr))
#define ip4_addr4_16(ipaddr) ((uint16_t)ip4_addr4(ipaddr))
#define IP2STR(ipaddr) ip4_addr1_16(ipaddr), ip4_addr2_16(ipaddr), ip4_addr3_16(ipaddr), ip4_addr4_16(ipaddr)
#define IPSTR "%d.%d.%d.%d"
typedef struct {
    ip4_addr_t ip;
    ip4_addr_t netmask;
    ip4_addr_t gw;
} tcpip_adapter_ip_info_t;
typedef enum {
    TCPIP_ADAPTER_IF_STA = 0, TCPIP_ADAPTER_IF_AP, TCPIP_ADAPTER_IF_ETH, TCPIP_ADAPTER_IF_TEST, TCPIP_ADAPTER_IF_MAX
} tcpip_adapter_if_t;
esp_err_t tcpip_adapter_get_ip_info(tcpip_adapter_if_t tcpip_if, tcpip_adapter_ip_info_t *ip_info);

/* ---- esp_wifi.h (the AP record's leading fields; the port reads rssi) ---- */
typedef struct {
    uint8_t bssid[6];
    uint8_t ssid[33];
    uint8_t primary;
    int second;
    int8_t rssi;
} wifi_ap_record_t;
esp_err_t esp_wifi_sta_get_ap_info(wifi_ap_record_t *ap_info);

/* ---- esp_event_base.h ---- */
typedef const char *esp_event_base_t;
typedef void *esp_event_loop_handle_t;
typedef void (*esp_event_handler_t)(void *event_handler_arg, esp_event_base_t event_base, int32_t event_id,
                                    void *event_data);
#define ESP_EVENT_ANY_ID -1

/* ---- esp_app_format.h (bootloader_support), esp_partition.h (spi_flash), esp_ota_ops.h ---- */
typedef struct {
    uint32_t magic_word;
    uint32_t secure_version;
    uint32_t reserv1[2];
    char version[32];
    char project_name[32];
    char time[16];
    char date[16];
    char idf_ver[32];
    uint8_t app_elf_sha256[32];
    uint32_t reserv2[20];
} esp_app_desc_t;
typedef enum { ESP_PARTITION_TYPE_APP = 0x00, ESP_PARTITION_TYPE_DATA = 0x01 } esp_partition_type_t;
typedef enum {
    ESP_PARTITION_SUBTYPE_APP_FACTORY = 0x00,
    ESP_PARTITION_SUBTYPE_APP_OTA_MIN = 0x10,
    ESP_PARTITION_SUBTYPE_APP_OTA_0 = ESP_PARTITION_SUBTYPE_APP_OTA_MIN + 0,
    ESP_PARTITION_SUBTYPE_APP_OTA_1 = ESP_PARTITION_SUBTYPE_APP_OTA_MIN + 1,
    ESP_PARTITION_SUBTYPE_DATA_OTA = 0x00,
    ESP_PARTITION_SUBTYPE_DATA_PHY = 0x01,
    ESP_PARTITION_SUBTYPE_DATA_NVS = 0x02,
    ESP_PARTITION_SUBTYPE_ANY = 0xff,
} esp_partition_subtype_t;
typedef struct {
    esp_partition_type_t type;
    esp_partition_subtype_t subtype;
    uint32_t address;
    uint32_t size;
    char label[17];
    bool encrypted;
} esp_partition_t;
#define OTA_SIZE_UNKNOWN 0xffffffff
typedef uint32_t esp_ota_handle_t;
esp_err_t esp_ota_begin(const esp_partition_t *partition, size_t image_size, esp_ota_handle_t *out_handle);
esp_err_t esp_ota_write(esp_ota_handle_t handle, const void *data, size_t size);
esp_err_t esp_ota_end(esp_ota_handle_t handle);
esp_err_t esp_ota_set_boot_partition(const esp_partition_t *partition);
const esp_partition_t *esp_ota_get_boot_partition(void);
const esp_partition_t *esp_ota_get_running_partition(void);
const esp_partition_t *esp_ota_get_next_update_partition(const esp_partition_t *start_from);
const esp_app_desc_t *esp_ota_get_app_description(void);

/* ---- nvs.h, nvs_flash.h ---- */
typedef uint32_t nvs_handle;
typedef enum { NVS_READONLY, NVS_READWRITE } nvs_open_mode;
esp_err_t nvs_flash_init(void);
esp_err_t nvs_open(const char *name, nvs_open_mode open_mode, nvs_handle *out_handle);
void nvs_close(nvs_handle handle);
esp_err_t nvs_get_u8(nvs_handle handle, const char *key, uint8_t *out_value);
esp_err_t nvs_get_i8(nvs_handle handle, const char *key, int8_t *out_value);
esp_err_t nvs_get_u16(nvs_handle handle, const char *key, uint16_t *out_value);
esp_err_t nvs_get_i16(nvs_handle handle, const char *key, int16_t *out_value);
esp_err_t nvs_get_u32(nvs_handle handle, const char *key, uint32_t *out_value);
esp_err_t nvs_get_i32(nvs_handle handle, const char *key, int32_t *out_value);
esp_err_t nvs_get_str(nvs_handle handle, const char *key, char *out_value, size_t *length);
esp_err_t nvs_get_blob(nvs_handle handle, const char *key, void *out_value, size_t *length);
esp_err_t nvs_set_u8(nvs_handle handle, const char *key, uint8_t value);
esp_err_t nvs_set_u16(nvs_handle handle, const char *key, uint16_t value);
esp_err_t nvs_set_i32(nvs_handle handle, const char *key, int32_t value);
esp_err_t nvs_set_str(nvs_handle handle, const char *key, const char *value);
esp_err_t nvs_set_blob(nvs_handle handle, const char *key, const void *value, size_t length);
esp_err_t nvs_erase_key(nvs_handle handle, const char *key);
esp_err_t nvs_erase_all(nvs_handle handle);
esp_err_t nvs_commit(nvs_handle handle);

/* ---- esp_http_client.h ---- */
typedef struct hm_http *esp_http_client_handle_t;
typedef enum {
    HTTP_METHOD_GET = 0, HTTP_METHOD_POST, HTTP_METHOD_PUT, HTTP_METHOD_PATCH, HTTP_METHOD_DELETE,
    HTTP_METHOD_HEAD, HTTP_METHOD_NOTIFY, HTTP_METHOD_SUBSCRIBE, HTTP_METHOD_UNSUBSCRIBE, HTTP_METHOD_OPTIONS,
    HTTP_METHOD_MAX,
} esp_http_client_method_t;
typedef enum { HTTP_AUTH_TYPE_NONE = 0, HTTP_AUTH_TYPE_BASIC, HTTP_AUTH_TYPE_DIGEST } esp_http_client_auth_type_t;
typedef enum { HTTP_TRANSPORT_UNKNOWN = 0x0, HTTP_TRANSPORT_OVER_TCP, HTTP_TRANSPORT_OVER_SSL } esp_http_client_transport_t;
typedef struct {
    const char *url;
    const char *host;
    int port;
    const char *username;
    const char *password;
    esp_http_client_auth_type_t auth_type;
    const char *path;
    const char *query;
    const char *cert_pem;
    const char *client_cert_pem;
    const char *client_key_pem;
    esp_http_client_method_t method;
    int timeout_ms;
    bool disable_auto_redirect;
    int max_redirection_count;
    void *event_handler;
    esp_http_client_transport_t transport_type;
    int buffer_size;
    int buffer_size_tx;
    void *user_data;
    bool is_async;
    bool use_global_ca_store;
    bool skip_cert_common_name_check;
} esp_http_client_config_t;
esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *config);
esp_err_t esp_http_client_set_header(esp_http_client_handle_t client, const char *key, const char *value);
esp_err_t esp_http_client_open(esp_http_client_handle_t client, int write_len);
int esp_http_client_write(esp_http_client_handle_t client, const char *buffer, int len);
int esp_http_client_fetch_headers(esp_http_client_handle_t client);
int esp_http_client_read(esp_http_client_handle_t client, char *buffer, int len);
int esp_http_client_get_status_code(esp_http_client_handle_t client);
int esp_http_client_get_content_length(esp_http_client_handle_t client);
esp_err_t esp_http_client_close(esp_http_client_handle_t client);
esp_err_t esp_http_client_cleanup(esp_http_client_handle_t client);
esp_err_t esp_http_client_set_redirection(esp_http_client_handle_t client);
bool esp_http_client_is_complete_data_received(esp_http_client_handle_t client);

/* ---- mqtt_client.h (esp-mqtt 01594bf) ---- */
typedef struct esp_mqtt_client *esp_mqtt_client_handle_t;
typedef enum {
    MQTT_EVENT_ANY = -1,
    MQTT_EVENT_ERROR = 0,
    MQTT_EVENT_CONNECTED,
    MQTT_EVENT_DISCONNECTED,
    MQTT_EVENT_SUBSCRIBED,
    MQTT_EVENT_UNSUBSCRIBED,
    MQTT_EVENT_PUBLISHED,
    MQTT_EVENT_DATA,
    MQTT_EVENT_BEFORE_CONNECT,
} esp_mqtt_event_id_t;
typedef enum {
    MQTT_TRANSPORT_UNKNOWN = 0x0,
    MQTT_TRANSPORT_OVER_TCP,
    MQTT_TRANSPORT_OVER_SSL,
    MQTT_TRANSPORT_OVER_WS,
    MQTT_TRANSPORT_OVER_WSS,
} esp_mqtt_transport_t;
typedef enum { MQTT_PROTOCOL_UNDEFINED = 0, MQTT_PROTOCOL_V_3_1, MQTT_PROTOCOL_V_3_1_1 } esp_mqtt_protocol_ver_t;
typedef struct esp_mqtt_error_codes esp_mqtt_error_codes_t;
typedef struct {
    esp_mqtt_event_id_t event_id;
    esp_mqtt_client_handle_t client;
    void *user_context;
    char *data;
    int data_len;
    int total_data_len;
    int current_data_offset;
    char *topic;
    int topic_len;
    int msg_id;
    int session_present;
    esp_mqtt_error_codes_t *error_handle;
} esp_mqtt_event_t;
typedef esp_mqtt_event_t *esp_mqtt_event_handle_t;
typedef esp_err_t (*mqtt_event_callback_t)(esp_mqtt_event_handle_t event);
typedef struct {
    mqtt_event_callback_t event_handle;
    esp_event_loop_handle_t event_loop_handle;
    const char *host;
    const char *uri;
    uint32_t port;
    const char *client_id;
    const char *username;
    const char *password;
    const char *lwt_topic;
    const char *lwt_msg;
    int lwt_qos;
    int lwt_retain;
    int lwt_msg_len;
    int disable_clean_session;
    int keepalive;
    bool disable_auto_reconnect;
    void *user_context;
    int task_prio;
    int task_stack;
    int buffer_size;
    const char *cert_pem;
    size_t cert_len;
    const char *client_cert_pem;
    size_t client_cert_len;
    const char *client_key_pem;
    size_t client_key_len;
    esp_mqtt_transport_t transport;
    int refresh_connection_after_ms;
    const struct psk_key_hint *psk_hint_key;
    bool use_global_ca_store;
    int reconnect_timeout_ms;
    const char **alpn_protos;
    const char *clientkey_password;
    int clientkey_password_len;
    esp_mqtt_protocol_ver_t protocol_ver;
    int out_buffer_size;
    bool skip_cert_common_name_check;
    bool use_secure_element;
    void *ds_data;
} esp_mqtt_client_config_t;
esp_mqtt_client_handle_t esp_mqtt_client_init(const esp_mqtt_client_config_t *config);
esp_err_t esp_mqtt_client_start(esp_mqtt_client_handle_t client);
esp_err_t esp_mqtt_client_disconnect(esp_mqtt_client_handle_t client);
esp_err_t esp_mqtt_client_stop(esp_mqtt_client_handle_t client);
int esp_mqtt_client_subscribe(esp_mqtt_client_handle_t client, const char *topic, int qos);
int esp_mqtt_client_publish(esp_mqtt_client_handle_t client, const char *topic, const char *data, int len, int qos,
                            int retain);
esp_err_t esp_mqtt_client_destroy(esp_mqtt_client_handle_t client);
esp_err_t esp_mqtt_client_register_event(esp_mqtt_client_handle_t client, esp_mqtt_event_id_t event,
                                         esp_event_handler_t event_handler, void *event_handler_arg);

/* ---- Mbed TLS 2.x (the SDK's fork): sha256.h, gcm.h, cipher.h; libsodium ---- */
#define MBEDTLS_VERSION_MAJOR 2
typedef enum { MBEDTLS_CIPHER_ID_NONE = 0, MBEDTLS_CIPHER_ID_NULL, MBEDTLS_CIPHER_ID_AES } mbedtls_cipher_id_t;
typedef struct {
    void *md; /* the model's OpenSSL digest */
} mbedtls_sha256_context;
typedef struct {
    uint8_t key[32];
} mbedtls_gcm_context;
void mbedtls_sha256_init(mbedtls_sha256_context *ctx);
void mbedtls_sha256_free(mbedtls_sha256_context *ctx);
int mbedtls_sha256_starts_ret(mbedtls_sha256_context *ctx, int is224);
int mbedtls_sha256_update_ret(mbedtls_sha256_context *ctx, const unsigned char *input, size_t ilen);
int mbedtls_sha256_finish_ret(mbedtls_sha256_context *ctx, unsigned char output[32]);
void mbedtls_gcm_init(mbedtls_gcm_context *ctx);
int mbedtls_gcm_setkey(mbedtls_gcm_context *ctx, mbedtls_cipher_id_t cipher, const unsigned char *key,
                       unsigned int keybits);
int mbedtls_gcm_auth_decrypt(mbedtls_gcm_context *ctx, size_t length, const unsigned char *iv, size_t iv_len,
                             const unsigned char *add, size_t add_len, const unsigned char *tag, size_t tag_len,
                             const unsigned char *input, unsigned char *output);
void mbedtls_gcm_free(mbedtls_gcm_context *ctx);
int sodium_init(void);
int crypto_sign_ed25519_verify_detached(const unsigned char *sig, const unsigned char *m,
                                        unsigned long long mlen, const unsigned char *pk);

#include "../../hm_scenario.h"

#ifdef __cplusplus
}
#endif
#endif
