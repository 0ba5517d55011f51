/* Minimal ESP8266_RTOS_SDK v3.4 application with the ESP Admin agent: NVS (and the boot check
 * of a new image), Wi-Fi station, SNTP, then the agent. The provisioning comes from the NVS
 * partition flashed at 0x9000 (docs/provisioning.md); an unprovisioned board keeps running and
 * the agent waits for it. MQTT over TLS and https downloads need the CA in the provisioning:
 * the SDK has no certificate bundle. */
#include <string.h>

#include "esp_event.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_wifi.h"
#include "espadmin_esp.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/task.h"
#include "lwip/apps/sntp.h"
#include "tcpip_adapter.h"

static const char *TAG = "app";
static EventGroupHandle_t s_events;
#define GOT_IP BIT0

static void on_wifi(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    (void)data;
    if (base == WIFI_EVENT && (id == WIFI_EVENT_STA_START || id == WIFI_EVENT_STA_DISCONNECTED)) {
        esp_wifi_connect();
    } else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
        xEventGroupSetBits(s_events, GOT_IP);
    }
}

static void show_interval(espadmin_agent_t *agent, void *arg)
{
    (void)arg;
    char value[32];
    espadmin_cfg_type_t type;
    if (espadmin_config_get(agent, "interval_s", &type, value, sizeof(value)) == 0) {
        ESP_LOGI(TAG, "config interval_s = %s", value);
    }
}

void app_main(void)
{
    /* first: an updated image that keeps crashing before it is confirmed is counted here, and
     * the previous one boots again after CONFIG_ESPADMIN_OTA_MAX_UNCONFIRMED_BOOTS */
    esp_err_t err = espadmin_esp_nvs_init();
    if (err != ESP_OK) {
        /* the reason is logged; the agent will report the board unprovisioned and wait */
        ESP_LOGE(TAG, "NVS unavailable: %s", esp_err_to_name(err));
    }
    tcpip_adapter_init();
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    s_events = xEventGroupCreate();
    ESP_ERROR_CHECK(esp_event_handler_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_wifi, NULL));
    ESP_ERROR_CHECK(esp_event_handler_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_wifi, NULL));
    wifi_config_t wc;
    memset(&wc, 0, sizeof(wc));
    strncpy((char *)wc.sta.ssid, CONFIG_EXAMPLE_WIFI_SSID, sizeof(wc.sta.ssid) - 1);
    strncpy((char *)wc.sta.password, CONFIG_EXAMPLE_WIFI_PASSWORD, sizeof(wc.sta.password) - 1);
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(ESP_IF_WIFI_STA, &wc));
    ESP_ERROR_CHECK(esp_wifi_start());
    xEventGroupWaitBits(s_events, GOT_IP, pdFALSE, pdTRUE, portMAX_DELAY);

    sntp_setoperatingmode(SNTP_OPMODE_POLL); /* commands are checked for expiry once the clock is set */
    sntp_setservername(0, "pool.ntp.org");
    sntp_init();

    err = espadmin_esp_start();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "agent not started: %s", esp_err_to_name(err));
    }
    for (;;) {
        espadmin_esp_with_agent(show_interval, NULL); /* ESP_ERR_INVALID_STATE until provisioned */
        vTaskDelay(pdMS_TO_TICKS(60000));
    }
}
