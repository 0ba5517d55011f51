/* What the scenarios of both ports share: scenario_lib.h. */
#include "scenario_lib.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *g_name;
char g_cmd_topic[ESPADMIN_MAX_TOPIC_LEN + 1];

void fail(const char *why)
{
    fprintf(stderr, "FAIL %s: %s\n", g_name, why);
    fflush(stderr);
    _exit(1);
}

void wait_restart(const char *why, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        vTaskDelay(pdMS_TO_TICKS(50));
    }
    fail(why);
}

/* The plain build runs each task on a painted stack: report its use on x86-64 and fail when a
 * task used more than its Kconfig size (a proxy: Xtensa and RISC-V frames differ). */
void check_stacks(void)
{
    size_t agent = hm_task_stack_used("espadmin"), dl = hm_task_stack_used("espadmin_dl");
    if (agent == 0) {
        return; /* a sanitizer build */
    }
    fprintf(stderr, "stack used on the host: espadmin %zu of %d bytes, espadmin_dl %zu of %d bytes\n", agent,
            CONFIG_ESPADMIN_TASK_STACK, dl, CONFIG_ESPADMIN_DOWNLOAD_TASK_STACK);
    CHECK(agent <= CONFIG_ESPADMIN_TASK_STACK, "agent task stack over its Kconfig size");
    CHECK(dl <= CONFIG_ESPADMIN_DOWNLOAD_TASK_STACK, "download task stack over its Kconfig size");
}

void pass(void)
{
    check_stacks();
    fprintf(stderr, "PASS %s\n", g_name);
    fflush(stderr);
    _exit(0);
}

void provision(bool tls, const char *ca)
{
    hm_nvs_set_str("espadmin", "device_id", DEVICE);
    hm_nvs_set_str("espadmin", "secret", "s3cret-s3cret-s3cret");
    hm_nvs_set_str("espadmin", "device_key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    hm_nvs_set_str("espadmin", "mqtt_host", "broker.local");
    hm_nvs_set_str("espadmin", "mqtt_port", tls ? "8883" : "1883");
    hm_nvs_set_str("espadmin", "mqtt_tls", tls ? "1" : "0");
    if (ca) {
        hm_nvs_set_str("espadmin", "mqtt_ca", ca);
    }
}

void start(void)
{
    ESP_ERROR_CHECK(espadmin_esp_start()); /* what examples/basic does */
}

void wait_online(void)
{
    CHECK(hm_broker_wait("/up/status", "\"online\":true", NULL, 0, WAIT_MS), "no online status");
}

void send_cmd(const char *json, int frag) { hm_broker_inject(g_cmd_topic, json, strlen(json), frag); }

void hex(const uint8_t *in, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", in[i]);
    }
}

/* Serves an image at url and sends the update command for it. */
void update(const char *id, const char *release, const char *image_version, uint8_t flags, const char *url,
                   bool serve_at_url)
{
    static uint8_t img[20000];
    size_t n = hm_image_make(img, sizeof(img), image_version, flags, 12000);
    if (serve_at_url) {
        hm_http_serve(url, img, n);
    }
    uint8_t h[32];
    unsigned hl = 32;
    EVP_Digest(img, n, h, &hl, EVP_sha256(), NULL);
    char sha[65];
    hex(h, 32, sha);
    char *cmd = malloc(8192);
    snprintf(cmd, 8192,
             "{\"v\":1,\"id\":\"%s\",\"name\":\"update\",\"expires_at\":9000000000000,\"params\":{\"version\":\"%s\","
             "\"size\":%zu,\"sha256\":\"%s\",\"url\":\"%s\",\"url_expires_at\":0}}",
             id, release, n, sha, url);
    send_cmd(cmd, 1000);
    free(cmd);
}

void serve_image(const char *url, const char *image_version)
{
    static uint8_t img[20000];
    size_t n = hm_image_make(img, sizeof(img), image_version, 0, 12000);
    hm_http_serve(url, img, n);
}

int scenario_boot(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SCENARIO STATE_FILE\n", argv[0]);
        exit(2);
    }
    g_name = argv[1];
    alarm(60); /* a frozen device fails the scenario */
    int boot = hm_boot(argv[2], argv);
    if (boot > 20) {
        fail("the device keeps rebooting"); /* each boot re-arms the alarm: a boot loop ends here */
    }
    if (boot == 1) {
        hm_ota_install_factory("v-1.0.0");
    }
    espadmin_topic(g_cmd_topic, sizeof(g_cmd_topic), "espadmin", DEVICE, ESPADMIN_KIND_CMD);
    return boot;
}
