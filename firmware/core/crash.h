/* Crash reports: what the last panic left, read once at boot and sent with the error report
 * (core/crash.c). Internal to the core. */
#ifndef ESPADMIN_CORE_CRASH_H
#define ESPADMIN_CORE_CRASH_H

#include "espadmin/platform.h"

/* The port's account of its last failure (last_error) in buf, or fallback when it has none
 * (buf is then ""). Read before the failed operation is closed or aborted. */
const char *espadmin_platform_error(const espadmin_platform_t *p, char *buf, size_t cap, const char *fallback);

/* Reads what the last panic left through the platform's crash_info, or NULL when the port
 * has none (or no memory). The record lives on the heap only until the report is out. */
espadmin_crash_t *espadmin_crash_load(const espadmin_platform_t *p);

/* The report carrying *c was acknowledged: erase the crash data (crash_clear) unless the whole
 * core dump awaits the server's request (size > 0 and the port can upload), and free *c. */
void espadmin_crash_done(const espadmin_platform_t *p, espadmin_crash_t **c);

/* An upload of the whole core dump (command coredump) in progress. */
typedef struct {
    bool active;
    char id[ESPADMIN_MAX_ID_LEN + 1];
} espadmin_coredump_upload_t;

/* Starts the upload the command id asks for: 0 when it started, 1 when that command's upload
 * already runs (a redelivery: nothing to acknowledge yet), -1 with why in msg. */
int espadmin_coredump_start(const espadmin_platform_t *p, espadmin_coredump_upload_t *u, const char *id,
                            const char *url, char *msg, size_t cap);

/* Follows an active upload: 0 while it runs, 1 when the server took it (the core dump is
 * then erased), -1 with why in msg. */
int espadmin_coredump_poll(const espadmin_platform_t *p, espadmin_coredump_upload_t *u, char *msg, size_t cap);

/* The error message of a crash: its panic reason, else a generic line naming the reset. */
void espadmin_crash_message(const espadmin_crash_t *c, const char *reset_reason, char *buf, size_t cap);

#endif
