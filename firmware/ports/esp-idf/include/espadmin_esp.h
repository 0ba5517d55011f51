/* ESP-IDF port of the ESP Admin agent. */
#ifndef ESPADMIN_ESP_H
#define ESPADMIN_ESP_H

#include "esp_err.h"
#include "espadmin/agent.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initialises the default NVS partition, encrypted when CONFIG_ESPADMIN_NVS_ENCRYPTION. */
esp_err_t espadmin_esp_nvs_init(void);

/* Starts the agent task (call once the network is up). The provisioning is read from the NVS
 * namespace "espadmin" (see firmware/README.md). */
esp_err_t espadmin_esp_start(void);

/* Runs fn with the agent locked (for espadmin_config_get and espadmin_report_error from
 * application tasks). */
void espadmin_esp_with_agent(void (*fn)(espadmin_agent_t *agent, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
