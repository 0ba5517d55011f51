/* The Linux port: a simulated device on libmosquitto, libcurl, OpenSSL and files. */
#ifndef ESPADMIN_PLATFORM_LINUX_H
#define ESPADMIN_PLATFORM_LINUX_H

#include "espadmin/agent.h"
#include "espadmin/platform.h"

typedef struct {
    const char *state_dir;
    const char *bundle_path;
    const char *first_version; /* version of slot 0 at the first start */
    const char *fail_boot_version;
    char **argv; /* for the re-exec on restart */
} linux_options_t;

/* Reads the bundle, runs the simulated bootloader (slot states, rollback, reset reason) and
 * fills the platform. Returns 0, or -1 with a message on stderr. */
int linux_platform_init(const linux_options_t *opt, espadmin_platform_t *p);
void linux_platform_set_agent(espadmin_agent_t *a);
/* One round of network work, waiting at most timeout_ms. */
void linux_platform_poll(int timeout_ms);
/* Marks a clean shutdown (the next start reports "poweron"). */
void linux_platform_shutdown(void);
/* True when the running image is the one --fail-boot-version names and it awaits
 * verification: the simulated image "fails to boot". */
bool linux_platform_should_fail_boot(void);
void linux_log(espadmin_level_t level, const char *tag, const char *fmt, ...);
/* Simulates a panic: keeps reason and backtrace ("0xPC:0xSP 0xPC:0xSP …", as ESP-IDF prints
 * it) in <state>/coredump.json, prints the panic like ESP-IDF and re-executes the program
 * (argv of the options, which must no longer ask for a panic) without a clean shutdown, so
 * the next boot's reset reason is "panic". Does not return. */
void linux_platform_panic(const char *reason, const char *backtrace);

#endif
