/* ESP-IDF port of the ESP Admin agent. */
#ifndef ESPADMIN_ESP_H
#define ESPADMIN_ESP_H

#include "esp_err.h"
#include "espadmin/agent.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initialises the default NVS partition with nvs_flash_init(), which is encrypted when
 * CONFIG_NVS_ENCRYPTION is set (either key-protection scheme). Never erases it: it holds the
 * provisioning. */
esp_err_t espadmin_esp_nvs_init(void);

/* Starts the agent task (call once the network is up). The provisioning is read from the NVS
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
