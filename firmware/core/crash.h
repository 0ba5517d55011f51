/* Crash reports: what the last panic left, read once at boot and sent with the error report
 * (core/crash.c). Internal to the core. */
#ifndef ESPADMIN_CORE_CRASH_H
#define ESPADMIN_CORE_CRASH_H

#include "espadmin/platform.h"

/* Reads what the last panic left through the platform's crash_info, or NULL when the port
 * has none (or no memory). The record lives on the heap only until the report is out. */
espadmin_crash_t *espadmin_crash_load(const espadmin_platform_t *p);

/* The report carrying *c was acknowledged: erase the crash data (crash_clear) and free *c. */
void espadmin_crash_done(const espadmin_platform_t *p, espadmin_crash_t **c);

/* The error message of a crash: its panic reason, else a generic line naming the reset. */
void espadmin_crash_message(const espadmin_crash_t *c, const char *reset_reason, char *buf, size_t cap);

#endif
