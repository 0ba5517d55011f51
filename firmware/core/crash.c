/* Crash reports. After a panic, ESP-IDF keeps the core dump (and its summary: the crashing
 * task, the backtrace's PCs, the exception registers) in the flash partition "coredump"; the
 * port reads it into an espadmin_crash_t, which the core sends with the boot's error report
 * and erases only once the broker has acknowledged that report, so a crash that happens
 * before the device reaches the server is reported at a later boot rather than lost. */
#include "crash.h"

#include "espadmin/util.h"

#include <stdio.h>
#include <string.h>

static void clean(char *s, size_t cap)
{
    char tmp[257];
    s[cap - 1] = '\0'; /* the port may have filled the buffer to its end */
    size_t n = strlen(s);
    size_t max = cap - 1 < sizeof(tmp) - 1 ? cap - 1 : sizeof(tmp) - 1;
    espadmin_sanitize_text(tmp, max, s, n);
    memcpy(s, tmp, strlen(tmp) + 1);
}

espadmin_crash_t *espadmin_crash_load(const espadmin_platform_t *p)
{
    if (p->crash_info == NULL) {
        return NULL;
    }
    espadmin_crash_t *c = espadmin_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    if (!p->crash_info(p->ctx, c)) {
        espadmin_free(c);
        return NULL;
    }
    /* The port copied strings from flash: make them bounded, valid UTF-8 without controls. */
    clean(c->reason, sizeof(c->reason));
    clean(c->task, sizeof(c->task));
    clean(c->summary, sizeof(c->summary));
    if (c->nframes > ESPADMIN_MAX_CRASH_FRAMES) {
        c->nframes = ESPADMIN_MAX_CRASH_FRAMES;
    }
    /* A zero PC ends a walked stack; frames after it are noise. */
    for (size_t i = 0; i < c->nframes; i++) {
        if (c->frames[i].pc == 0) {
            c->nframes = i;
            break;
        }
    }
    return c;
}

void espadmin_crash_done(const espadmin_platform_t *p, espadmin_crash_t **c)
{
    if (*c == NULL) {
        return;
    }
    bool awaits_upload = (*c)->size > 0 && p->coredump_upload != NULL;
    if (p->crash_clear && !awaits_upload) {
        p->crash_clear(p->ctx);
    }
    espadmin_free(*c);
    *c = NULL;
}

const char *espadmin_platform_error(const espadmin_platform_t *p, char *buf, size_t cap, const char *fallback)
{
    buf[0] = '\0';
    if (p->last_error) {
        p->last_error(p->ctx, buf, cap);
        buf[cap - 1] = '\0';
    }
    return buf[0] ? buf : fallback;
}

/* Why an upload failed: the port's account, else what the core knows. */
static void why(const espadmin_platform_t *p, char *msg, size_t cap)
{
    if (espadmin_platform_error(p, msg, cap, NULL) == NULL) {
        espadmin_copy(msg, cap, "upload failed");
    }
}

int espadmin_coredump_start(const espadmin_platform_t *p, espadmin_coredump_upload_t *u, const char *id,
                            const char *url, char *msg, size_t cap)
{
    if (u->active) {
        espadmin_copy(msg, cap, "busy");
        return strcmp(u->id, id) == 0 ? 1 : -1;
    }
    int rc = p->coredump_upload ? p->coredump_upload(p->ctx, url) : ESPADMIN_PLATFORM_NOT_FOUND;
    if (rc != ESPADMIN_PLATFORM_OK) {
        if (rc == ESPADMIN_PLATFORM_NOT_FOUND) {
            espadmin_copy(msg, cap, "no core dump");
        } else {
            why(p, msg, cap);
        }
        return -1;
    }
    u->active = true;
    espadmin_copy(u->id, sizeof(u->id), id);
    return 0;
}

int espadmin_coredump_poll(const espadmin_platform_t *p, espadmin_coredump_upload_t *u, char *msg, size_t cap)
{
    int rc = p->coredump_poll(p->ctx);
    if (rc == ESPADMIN_PLATFORM_AGAIN) {
        return 0;
    }
    u->active = false;
    if (rc == ESPADMIN_PLATFORM_OK) {
        if (p->crash_clear) {
            p->crash_clear(p->ctx); /* the server has it */
        }
        return 1;
    }
    why(p, msg, cap);
    return -1;
}

void espadmin_crash_message(const espadmin_crash_t *c, const char *reset_reason, char *buf, size_t cap)
{
    if (c && c->reason[0]) {
        espadmin_copy(buf, cap, c->reason);
    } else {
        snprintf(buf, cap, "device restarted after an abnormal reset (%s)", reset_reason);
    }
}
