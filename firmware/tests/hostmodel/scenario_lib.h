/* What the host-model scenarios of both ports share (scenarios.c runs the ESP-IDF port,
 * scenarios_esp8266.c the ESP8266_RTOS_SDK v3.4 port): the provisioning, the broker and download
 * server helpers, and how a scenario passes or fails. A scenario program is run as
 * NAME STATE_FILE; a restart of the device re-executes it (hm_scenario.h hm_boot). */
#ifndef SCENARIO_LIB_H
#define SCENARIO_LIB_H

#include "espadmin/protocol.h"
#include "espadmin_esp.h"
#include "hostmodel.h"

#include <stdbool.h>
#include <stdint.h>

#define DEVICE "01hzx4a0b1c2d3e4f5g6h7j8k9"
#define CA_PEM "-----BEGIN CERTIFICATE-----\nMIIBhostmodelTestCAonlyNotARealCertificate0123456789abcdefABCDEF\n-----END CERTIFICATE-----\n"
#define OTA_CA "-----BEGIN CERTIFICATE-----\nMIIBdownloadServerPrivateCA\n-----END CERTIFICATE-----\n"
#define WAIT_MS 20000

extern const char *g_name;
extern char g_cmd_topic[ESPADMIN_MAX_TOPIC_LEN + 1];

void fail(const char *why) __attribute__((noreturn));
#define CHECK(cond, why)                                                                          \
    do {                                                                                          \
        if (!(cond)) fail(why);                                                                   \
    } while (0)
/* Fails unless the device restarts (re-executing this program) within timeout_ms: the wait is
 * a poll with a deadline, and the restart ends it. */
void wait_restart(const char *why, int timeout_ms) __attribute__((noreturn));
void check_stacks(void);
void pass(void) __attribute__((noreturn));
void provision(bool tls, const char *ca);
void start(void);
void wait_online(void);
void send_cmd(const char *json, int frag);
void hex(const uint8_t *in, size_t n, char *out);
/* Serves an image at url (when serve_at_url) and sends the update command for it. */
void update(const char *id, const char *release, const char *image_version, uint8_t flags, const char *url,
            bool serve_at_url);
void serve_image(const char *url, const char *image_version);
/* Common start of main: the usage check, the alarm, hm_boot, the factory image at first boot
 * and the command topic. Returns the boot number. */
int scenario_boot(int argc, char **argv);

#endif
