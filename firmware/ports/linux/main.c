/* espadmin-agent: the ESP Admin agent as a simulated device on Linux.
 *
 *   espadmin-agent [--state-dir DIR] [--firmware-version v-1.0.0] [--fail-boot-version v-x.y.z]
 *                  [--log-interval-ms N] [--panic-backtrace "0xPC:0xSP …" [--panic-reason R]]
 *                  BUNDLE.json
 *
 * --panic-backtrace simulates a crash at start: the device "panics" with that backtrace,
 * reboots (re-executes itself without the flag) and reports the crash like an ESP32 reading
 * its core dump.
 *
 * Logs go to stderr, one line each: "<L> (<uptime ms>) <tag>: <message>". */
#include "platform_linux.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: espadmin-agent [--state-dir DIR] [--firmware-version v-x.y.z]\n"
                    "                      [--fail-boot-version v-x.y.z] [--log-interval-ms N]\n"
                    "                      [--panic-backtrace \"0xPC:0xSP ...\" [--panic-reason R]] BUNDLE.json\n");
}

int main(int argc, char **argv)
{
    linux_options_t opt = {.state_dir = "./espadmin-state", .first_version = "v-1.0.0", .argv = argv};
    long log_interval = 0;
    const char *panic_bt = NULL, *panic_reason = "LoadProhibited";
    /* argv without the panic flags, for the re-exec after the simulated panic */
    char **boot_argv = calloc((size_t)argc + 1, sizeof(char *));
    int boot_argc = 0;
    if (boot_argv == NULL) {
        return 1;
    }
    boot_argv[boot_argc++] = argv[0];
    for (int i = 1; i < argc; i++) {
        int first = i; /* the argument, and its value once i moved past it */
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--state-dir") == 0 && v) {
            opt.state_dir = v;
            i++;
        } else if (strcmp(a, "--firmware-version") == 0 && v) {
            opt.first_version = v;
            i++;
        } else if (strcmp(a, "--fail-boot-version") == 0 && v) {
            opt.fail_boot_version = v;
            i++;
        } else if (strcmp(a, "--log-interval-ms") == 0 && v) {
            log_interval = strtol(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--panic-backtrace") == 0 && v) {
            panic_bt = v;
            i++;
            continue;
        } else if (strcmp(a, "--panic-reason") == 0 && v) {
            panic_reason = v;
            i++;
            continue;
        } else if (a[0] == '-') {
            usage();
            return 2;
        } else {
            opt.bundle_path = a;
        }
        for (int j = first; j <= i; j++) {
            boot_argv[boot_argc++] = argv[j];
        }
    }
    opt.argv = boot_argv;
    if (opt.bundle_path == NULL) {
        usage();
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static espadmin_platform_t platform;
    if (linux_platform_init(&opt, &platform) != 0) {
        return 1;
    }
    if (panic_bt != NULL) {
        linux_platform_panic(panic_reason, panic_bt); /* does not return */
    }
    if (linux_platform_should_fail_boot()) {
        linux_log(ESPADMIN_LEVEL_ERROR, "sim", "image %s fails to boot (simulated); exiting",
                  opt.fail_boot_version);
        return 3; /* abnormal exit: the next start rolls back */
    }
    espadmin_agent_t *agent = espadmin_agent_init(&platform, NULL);
    if (agent == NULL) {
        linux_log(ESPADMIN_LEVEL_ERROR, "sim", "cannot start the agent");
        linux_platform_shutdown();
        return 1;
    }
    linux_platform_set_agent(agent);
    int64_t next_line = log_interval > 0 ? platform.now_ms(platform.ctx) + log_interval : 0;
    long counter = 0;
    while (!g_stop) {
        linux_platform_poll(20);
        int64_t now = platform.now_ms(platform.ctx);
        if (log_interval > 0 && now >= next_line) {
            next_line = now + log_interval;
            linux_log(ESPADMIN_LEVEL_INFO, "sim", "heartbeat %ld", ++counter);
        }
        espadmin_tick(agent, now);
    }
    linux_log(ESPADMIN_LEVEL_INFO, "sim", "stopping");
    platform.mqtt_disconnect(platform.ctx);
    linux_platform_set_agent(NULL);
    espadmin_agent_free(agent);
    linux_platform_shutdown();
    return 0;
}
