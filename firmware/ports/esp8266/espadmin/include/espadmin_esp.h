/* ESP8266_RTOS_SDK v3.4 port of the ESP Admin agent: the same API as the ESP-IDF port
 * (ports/esp-idf/include/espadmin_esp.h), so an application calls the same functions on both. */
#ifndef ESPADMIN_ESP_H
#define ESPADMIN_ESP_H

#include "esp_err.h"
#include "espadmin/agent.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initialises the default NVS partition with nvs_flash_init() (never erases it: it holds the
 * provisioning), then counts this boot when it is one of the first of an updated image that
 * has not been confirmed yet; past CONFIG_ESPADMIN_OTA_MAX_UNCONFIRMED_BOOTS it switches back to
 * the previous image and restarts (v3.4 has no bootloader rollback). Call it first in
 * app_main, before anything that could crash. */
esp_err_t espadmin_esp_nvs_init(void);

/* Starts the agent task (call once the network is up). MQTT over TLS and https downloads
 * need a provisioned CA: the SDK has no certificate bundle. The provisioning is read from the NVS
 * namespace "espadmin" (docs/provisioning.md). An unprovisioned board does not fail: the task
 * logs why, checks again every CONFIG_ESPADMIN_PROVISION_RETRY_S and starts once the
 * provisioning is there. Returns ESP_ERR_INVALID_STATE when called twice. */
esp_err_t espadmin_esp_start(void);

/* Runs fn(agent, arg) on the agent task between two ticks and waits for it (for
 * espadmin_config_get and espadmin_report_error from application tasks). Do not call it from
 * an esp-mqtt event handler. Returns ESP_ERR_INVALID_STATE while the board is unprovisioned
 * (fn is not called). */
esp_err_t espadmin_esp_with_agent(void (*fn)(espadmin_agent_t *agent, void *arg), void *arg);

/* MQTT events the handler dropped because the agent's event queue was full. */
uint32_t espadmin_esp_dropped_events(void);

#ifdef __cplusplus
}
#endif
#endif
