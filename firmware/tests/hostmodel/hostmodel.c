/* The host model of the ESP-IDF runtime (see include/hostmodel.h for what is modelled and
 * which ESP-IDF behaviour each part follows), and with -DHM_ESP8266 of the ESP8266_RTOS_SDK
 * v3.4 runtime (esp8266/include/hostmodel.h: the same code where v3.4 behaves the same, the
 * #if HM_ESP8266 parts where its API or behaviour differs). */
#include "hostmodel.h"
#ifndef HM_ESP8266
#include "esp_core_dump.h"
#endif

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#ifndef HM_STACK_SCALE
#define HM_STACK_SCALE 1 /* sanitizer builds give each task a larger host stack */
#endif
#define STACK_PAINT 0xa5

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t g_start_us;
static int64_t now_ms(void) { return (mono_us() - g_start_us) / 1000; }
static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void deadline_of(struct timespec *ts, TickType_t wait)
{
    clock_gettime(CLOCK_REALTIME, ts);
    uint64_t ms = (uint64_t)wait * portTICK_PERIOD_MS;
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

const char *esp_err_to_name(esp_err_t code)
{
    switch (code) {
    case ESP_OK: return "ESP_OK";
    case ESP_FAIL: return "ESP_FAIL";
    case ESP_ERR_NO_MEM: return "ESP_ERR_NO_MEM";
    case ESP_ERR_INVALID_ARG: return "ESP_ERR_INVALID_ARG";
    case ESP_ERR_INVALID_STATE: return "ESP_ERR_INVALID_STATE";
    case ESP_ERR_NOT_FOUND: return "ESP_ERR_NOT_FOUND";
    case ESP_ERR_NVS_NOT_FOUND: return "ESP_ERR_NVS_NOT_FOUND";
    case ESP_ERR_NVS_TYPE_MISMATCH: return "ESP_ERR_NVS_TYPE_MISMATCH";
    case ESP_ERR_NVS_INVALID_LENGTH: return "ESP_ERR_NVS_INVALID_LENGTH";
    case ESP_ERR_OTA_VALIDATE_FAILED: return "ESP_ERR_OTA_VALIDATE_FAILED";
#ifndef HM_ESP8266
    case ESP_ERR_OTA_ROLLBACK_FAILED: return "ESP_ERR_OTA_ROLLBACK_FAILED";
    case ESP_ERR_OTA_ROLLBACK_INVALID_STATE: return "ESP_ERR_OTA_ROLLBACK_INVALID_STATE";
#endif
    case ESP_ERR_OTA_PARTITION_CONFLICT: return "ESP_ERR_OTA_PARTITION_CONFLICT";
    case ESP_ERR_HTTP_CONNECT: return "ESP_ERR_HTTP_CONNECT";
    case ESP_ERR_HTTP_WRITE_DATA: return "ESP_ERR_HTTP_WRITE_DATA";
    default: return "ESP_ERR_(model)";
    }
}

void hm_error_check_failed(esp_err_t rc, const char *file, int line, const char *expr)
{
    fprintf(stderr, "ESP_ERROR_CHECK failed: esp_err_t 0x%x (%s) at %s:%d: %s\n", (unsigned)rc,
            esp_err_to_name(rc), file, line, expr);
    abort();
}

/* ================= FreeRTOS ================= */

struct hm_task {
    char name[16];
    TaskFunction_t fn;
    void *arg;
    uint8_t *stack;
    size_t stack_size;
    uint8_t *entry; /* the stack pointer when the task function was entered */
    struct hm_task *next;
};

static pthread_mutex_t g_tasks_mu = PTHREAD_MUTEX_INITIALIZER;
static struct hm_task *g_tasks;
static struct hm_task g_main_task = {.name = "main"};
static __thread struct hm_task *t_self;

static void *task_trampoline(void *p)
{
    struct hm_task *t = p;
    t_self = t;
    /* glibc keeps the thread's control block and TLS at the top of a caller-given stack: count
     * only what lies below the task function's entry */
    t->entry = __builtin_frame_address(0);
    t->fn(t->arg);
    fprintf(stderr, "hostmodel: task %s returned without vTaskDelete (FreeRTOS aborts)\n", t->name);
    abort();
}

BaseType_t xTaskCreate(TaskFunction_t fn, const char *name, uint32_t stack_bytes, void *arg,
                       UBaseType_t prio, TaskHandle_t *out)
{
    (void)prio;
    struct hm_task *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return pdFAIL;
    }
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->fn = fn;
    t->arg = arg;
    size_t size = (size_t)stack_bytes * HM_STACK_SCALE;
    if (size < (size_t)PTHREAD_STACK_MIN) {
        size = PTHREAD_STACK_MIN;
    }
    size = (size + 4095) & ~(size_t)4095;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
#if HM_STACK_SCALE == 1
    /* a painted stack of exactly the declared size, so stack use can be measured */
    if (posix_memalign((void **)&t->stack, 4096, size) != 0) {
        free(t);
        return pdFAIL;
    }
    memset(t->stack, STACK_PAINT, size);
    t->stack_size = size;
    pthread_attr_setstack(&attr, t->stack, size);
#else
    pthread_attr_setstacksize(&attr, size); /* the sanitizers need their own stacks */
#endif
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&g_tasks_mu);
    t->next = g_tasks;
    g_tasks = t; /* kept (never freed) so stack use can be read after the task ended */
    pthread_mutex_unlock(&g_tasks_mu);
    pthread_t th;
    int rc = pthread_create(&th, &attr, task_trampoline, t);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        return pdFAIL;
    }
    if (out) {
        *out = t;
    }
    return pdPASS;
}

void vTaskDelete(TaskHandle_t t)
{
    if (t != NULL && t != t_self) {
        fprintf(stderr, "hostmodel: deleting another task is not modelled\n");
        abort();
    }
    pthread_exit(NULL);
}

void vTaskDelay(TickType_t ticks) { sleep_ms((int)(ticks * portTICK_PERIOD_MS)); }
TickType_t xTaskGetTickCount(void) { return (TickType_t)(now_ms() / portTICK_PERIOD_MS); }
TaskHandle_t xTaskGetCurrentTaskHandle(void) { return t_self ? t_self : &g_main_task; }

static size_t stack_used(const struct hm_task *t)
{
    if (t->stack == NULL || t->entry == NULL) {
        return 0;
    }
    size_t i = 0;
    while (i < t->stack_size && t->stack[i] == STACK_PAINT) {
        i++;
    }
    return (size_t)(t->entry - (t->stack + i));
}

UBaseType_t uxTaskGetStackHighWaterMark(TaskHandle_t t)
{
    t = t ? t : xTaskGetCurrentTaskHandle();
    return t->stack && t->entry ? (UBaseType_t)((size_t)(t->entry - t->stack) - stack_used(t)) : 0;
}

size_t hm_task_stack_used(const char *name)
{
    size_t most = 0;
    pthread_mutex_lock(&g_tasks_mu);
    for (struct hm_task *t = g_tasks; t; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            size_t u = stack_used(t);
            most = u > most ? u : most;
        }
    }
    pthread_mutex_unlock(&g_tasks_mu);
    return most;
}

enum { Q_QUEUE, Q_MUTEX, Q_RECURSIVE, Q_BINARY };

struct hm_queue {
    int kind;
    pthread_mutex_t mu; /* the queue's own lock; for mutexes, the mutex itself */
    pthread_cond_t cv;
    size_t cap, isz, head, count;
    uint8_t *buf;
};

QueueHandle_t xQueueCreate(UBaseType_t len, UBaseType_t item_size)
{
    struct hm_queue *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->kind = Q_QUEUE;
    q->cap = len;
    q->isz = item_size;
    q->buf = calloc(len, item_size ? item_size : 1);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    return q;
}

static bool wait_cv(struct hm_queue *q, TickType_t wait, const struct timespec *dl)
{
    if (wait == 0) {
        return false;
    }
    if (wait == portMAX_DELAY) {
        pthread_cond_wait(&q->cv, &q->mu);
        return true;
    }
    return pthread_cond_timedwait(&q->cv, &q->mu, dl) == 0;
}

BaseType_t xQueueSend(QueueHandle_t q, const void *item, TickType_t wait)
{
    struct timespec dl;
    deadline_of(&dl, wait);
    pthread_mutex_lock(&q->mu);
    while (q->count == q->cap) {
        if (!wait_cv(q, wait, &dl) && q->count == q->cap) {
            pthread_mutex_unlock(&q->mu);
            return pdFALSE;
        }
    }
    memcpy(q->buf + ((q->head + q->count) % q->cap) * q->isz, item, q->isz);
    q->count++;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return pdTRUE;
}

BaseType_t xQueueReceive(QueueHandle_t q, void *item, TickType_t wait)
{
    struct timespec dl;
    deadline_of(&dl, wait);
    pthread_mutex_lock(&q->mu);
    while (q->count == 0) {
        if (!wait_cv(q, wait, &dl) && q->count == 0) {
            pthread_mutex_unlock(&q->mu);
            return pdFALSE;
        }
    }
    if (item) {
        memcpy(item, q->buf + q->head * q->isz, q->isz);
    }
    q->head = (q->head + 1) % q->cap;
    q->count--;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return pdTRUE;
}

UBaseType_t uxQueueMessagesWaiting(QueueHandle_t q)
{
    pthread_mutex_lock(&q->mu);
    UBaseType_t n = (UBaseType_t)q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void vQueueDelete(QueueHandle_t q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->buf);
    free(q);
}

static SemaphoreHandle_t new_mutex(int kind)
{
    struct hm_queue *q = calloc(1, sizeof(*q));
    if (q == NULL) {
        return NULL;
    }
    q->kind = kind;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, kind == Q_RECURSIVE ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_init(&q->mu, &a);
    pthread_mutexattr_destroy(&a);
    return q;
}

SemaphoreHandle_t xSemaphoreCreateMutex(void) { return new_mutex(Q_MUTEX); }
SemaphoreHandle_t xSemaphoreCreateRecursiveMutex(void) { return new_mutex(Q_RECURSIVE); }

SemaphoreHandle_t xSemaphoreCreateBinary(void)
{
    SemaphoreHandle_t s = xQueueCreate(1, 0);
    if (s) {
        s->kind = Q_BINARY;
    }
    return s;
}

static BaseType_t mutex_take(SemaphoreHandle_t s, TickType_t wait)
{
    if (wait == 0) {
        return pthread_mutex_trylock(&s->mu) == 0 ? pdTRUE : pdFALSE;
    }
    if (wait == portMAX_DELAY) {
        return pthread_mutex_lock(&s->mu) == 0 ? pdTRUE : pdFALSE;
    }
    struct timespec dl;
    deadline_of(&dl, wait);
    return pthread_mutex_timedlock(&s->mu, &dl) == 0 ? pdTRUE : pdFALSE;
}

BaseType_t xSemaphoreTake(SemaphoreHandle_t s, TickType_t wait)
{
    if (s->kind == Q_MUTEX) {
        return mutex_take(s, wait);
    }
    if (s->kind == Q_RECURSIVE) {
        fprintf(stderr, "hostmodel: xSemaphoreTake on a recursive mutex\n");
        abort();
    }
    return xQueueReceive(s, NULL, wait);
}

BaseType_t xSemaphoreGive(SemaphoreHandle_t s)
{
    if (s->kind == Q_MUTEX) {
        return pthread_mutex_unlock(&s->mu) == 0 ? pdTRUE : pdFALSE;
    }
    if (s->kind == Q_RECURSIVE) {
        abort();
    }
    return xQueueSend(s, "", 0);
}

BaseType_t xSemaphoreTakeRecursive(SemaphoreHandle_t s, TickType_t wait)
{
    if (s->kind != Q_RECURSIVE) {
        abort();
    }
    return mutex_take(s, wait);
}

BaseType_t xSemaphoreGiveRecursive(SemaphoreHandle_t s)
{
    return pthread_mutex_unlock(&s->mu) == 0 ? pdTRUE : pdFALSE;
}

void vSemaphoreDelete(SemaphoreHandle_t s) { vQueueDelete(s); }

/* ================= esp_log ================= */

#ifndef HM_ESP8266
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static vprintf_like_t g_vprintf;
static int g_log_version = 1;

void hm_log_set_version(int v) { g_log_version = v; }

vprintf_like_t esp_log_set_vprintf(vprintf_like_t func)
{
    pthread_mutex_lock(&g_log_mu);
    vprintf_like_t prev = g_vprintf ? g_vprintf : vprintf;
    g_vprintf = func;
    pthread_mutex_unlock(&g_log_mu);
    return prev;
}

static int out_v(const char *fmt, va_list ap)
{
    pthread_mutex_lock(&g_log_mu);
    vprintf_like_t f = g_vprintf ? g_vprintf : vprintf;
    pthread_mutex_unlock(&g_log_mu);
    return f(fmt, ap);
}

static int out_f(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = out_v(fmt, ap);
    va_end(ap);
    return r;
}

void esp_log_write(esp_log_level_t level, const char *tag, const char *format, ...)
{
    static const char letters[] = " EWIDV";
    if (level > ESP_LOG_INFO || level == ESP_LOG_NONE) {
        return; /* CONFIG_LOG_DEFAULT_LEVEL_INFO */
    }
    unsigned long ts = (unsigned long)now_ms();
    va_list ap;
    va_start(ap, format);
    if (g_log_version == 2) {
        /* log_format_text.c esp_log_format: prefix, message, newline: three calls */
        char tsb[24];
        snprintf(tsb, sizeof(tsb), "%lu", ts);
        out_f("%s%c %s%s%s%s%s", "", letters[level], "(", tsb, ") ", tag ? tag : "", tag ? ": " : "");
        out_v(format, ap);
        out_f("%s", "\n");
    } else {
        /* v1: LOG_FORMAT(letter, format) makes the whole line one esp_log_write call */
        char msg[512];
        vsnprintf(msg, sizeof(msg), format, ap);
        out_f("%c (%lu) %s: %s\n", letters[level], ts, tag, msg);
    }
    va_end(ap);
}

#else
/* components/log/log.c (v3.4): one recursive lock around the whole line; the line goes out
 * through the putchar function one character at a time. */
static pthread_mutex_t g_log_mu;
static pthread_once_t g_log_once = PTHREAD_ONCE_INIT;
static putchar_like_t g_putchar;

void hm_log_set_version(int v) { (void)v; }

static void log_mu_init(void)
{
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&g_log_mu, &a);
    pthread_mutexattr_destroy(&a);
}

putchar_like_t esp_log_set_putchar(putchar_like_t func)
{
    pthread_once(&g_log_once, log_mu_init);
    pthread_mutex_lock(&g_log_mu);
    putchar_like_t prev = g_putchar ? g_putchar : putchar;
    g_putchar = func;
    pthread_mutex_unlock(&g_log_mu);
    return prev;
}

uint32_t esp_log_timestamp(void) { return (uint32_t)now_ms(); }

static int log_write_str(const char *s)
{
    putchar_like_t f = g_putchar ? g_putchar : putchar;
    int ret = 0;
    for (; *s && ret != EOF; s++) {
        ret = f((unsigned char)*s);
    }
    return ret;
}

void esp_log_write(esp_log_level_t level, const char *tag, const char *format, ...)
{
    static const char letters[] = "NEWIDV";
    if (level > ESP_LOG_INFO || level == ESP_LOG_NONE) {
        return; /* CONFIG_LOG_DEFAULT_LEVEL_INFO */
    }
    pthread_once(&g_log_once, log_mu_init);
    pthread_mutex_lock(&g_log_mu);
    char *buf = NULL;
    int ret = asprintf(&buf, "%c (%u) %s: ", letters[level], (unsigned)now_ms(), tag);
    if (ret >= 0) {
        ret = log_write_str(buf);
        free(buf);
        buf = NULL;
        va_list ap;
        va_start(ap, format);
        ret = ret == EOF ? -1 : vasprintf(&buf, format, ap);
        va_end(ap);
        if (ret >= 0) {
            ret = log_write_str(buf);
            free(buf);
        }
    }
    if (ret > 0) {
        (g_putchar ? g_putchar : putchar)('\n');
    }
    pthread_mutex_unlock(&g_log_mu);
}

#endif

/* ================= system ================= */

static char g_state_path[512];
static char **g_argv;
static esp_reset_reason_t g_reset_reason = ESP_RST_POWERON;
static int g_boot_count;
static int g_restarts;

static void state_save(esp_reset_reason_t next_reason);

static void reboot(esp_reset_reason_t reason) __attribute__((noreturn));
static void reboot(esp_reset_reason_t reason)
{
    state_save(reason);
    fflush(stdout);
    fflush(stderr);
    execv("/proc/self/exe", g_argv);
    perror("hostmodel: execv");
    abort();
}

void esp_restart(void)
{
    __atomic_add_fetch(&g_restarts, 1, __ATOMIC_RELAXED);
    if (g_argv == NULL) {
        fprintf(stderr, "hostmodel: esp_restart without hm_boot\n");
        abort();
    }
    reboot(ESP_RST_SW);
}

void hm_panic(void) { reboot(ESP_RST_PANIC); }

#ifndef HM_ESP8266
/* ---- the "coredump" partition (esp_core_dump.h), kept across reboots in the state file ---- */

static pthread_mutex_t g_cd_mu = PTHREAD_MUTEX_INITIALIZER;
static bool g_cd_present;
static esp_core_dump_summary_t g_cd;
static char g_cd_reason[200];
static uint8_t g_cd_image[HM_CORE_SIZE]; /* the partition's content: the ELF core dump */
static const esp_partition_t g_cd_part = {.type = ESP_PARTITION_TYPE_DATA, .subtype = ESP_PARTITION_SUBTYPE_DATA_COREDUMP,
                                          .address = 0x3F0000, .size = 0x10000, .label = "coredump"};

void hm_core_dump_image(uint8_t out[HM_CORE_SIZE])
{
    for (size_t i = 0; i < HM_CORE_SIZE; i++) {
        out[i] = (uint8_t)(i * 7 + 3);
    }
    memcpy(out, "\x7f" "ELF", 4); /* what ESP-IDF's ELF core dump starts with, after its header */
}

const esp_partition_t *esp_partition_find_first(esp_partition_type_t type, int subtype, const char *label)
{
    (void)label;
    return type == ESP_PARTITION_TYPE_DATA && subtype == ESP_PARTITION_SUBTYPE_DATA_COREDUMP ? &g_cd_part : NULL;
}

esp_err_t esp_partition_read(const esp_partition_t *partition, size_t src_offset, void *dst, size_t size)
{
    if (partition != &g_cd_part || src_offset + size > partition->size) {
        return ESP_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&g_cd_mu);
    for (size_t i = 0; i < size; i++) {
        size_t at = src_offset + i;
        ((uint8_t *)dst)[i] = at < HM_CORE_SIZE ? g_cd_image[at] : 0xFF;
    }
    pthread_mutex_unlock(&g_cd_mu);
    return ESP_OK;
}

void hm_panic_core_dump(const char *reason, const char *task, const uint32_t *pcs, int depth, uint32_t sp)
{
    pthread_mutex_lock(&g_cd_mu);
    memset(&g_cd, 0, sizeof(g_cd));
    snprintf(g_cd.exc_task, sizeof(g_cd.exc_task), "%s", task);
    g_cd.exc_pc = pcs[0];
    for (int i = 0; i < depth && i < 16; i++) {
        g_cd.exc_bt_info.bt[i] = pcs[i];
    }
    g_cd.exc_bt_info.depth = (uint32_t)(depth < 16 ? depth : 16);
    g_cd.exc_bt_info.corrupted = depth > 16;
    g_cd.ex_info.exc_cause = 28; /* LoadProhibited */
    g_cd.ex_info.exc_a[1] = sp;
    snprintf(g_cd_reason, sizeof(g_cd_reason), "%s", reason);
    hm_core_dump_image(g_cd_image);
    g_cd_present = true;
    pthread_mutex_unlock(&g_cd_mu);
    reboot(ESP_RST_PANIC);
}

bool hm_core_dump_present(void)
{
    pthread_mutex_lock(&g_cd_mu);
    bool p = g_cd_present;
    pthread_mutex_unlock(&g_cd_mu);
    return p;
}

esp_err_t esp_core_dump_image_check(void) { return hm_core_dump_present() ? ESP_OK : ESP_ERR_NOT_FOUND; }

esp_err_t esp_core_dump_image_get(size_t *out_addr, size_t *out_size)
{
    if (!hm_core_dump_present()) {
        return ESP_ERR_NOT_FOUND;
    }
    *out_addr = g_cd_part.address;
    *out_size = HM_CORE_SIZE;
    return ESP_OK;
}

esp_err_t esp_core_dump_image_erase(void)
{
    pthread_mutex_lock(&g_cd_mu);
    g_cd_present = false;
    memset(&g_cd, 0xFF, sizeof(g_cd)); /* erased flash */
    memset(g_cd_image, 0xFF, sizeof(g_cd_image));
    pthread_mutex_unlock(&g_cd_mu);
    return ESP_OK;
}

esp_err_t esp_core_dump_get_summary(esp_core_dump_summary_t *summary)
{
    if (summary == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&g_cd_mu);
    esp_err_t rc = g_cd_present ? ESP_OK : ESP_FAIL;
    if (g_cd_present) {
        *summary = g_cd;
    }
    pthread_mutex_unlock(&g_cd_mu);
    return rc;
}

esp_err_t esp_core_dump_get_panic_reason(char *reason_buffer, size_t buffer_size)
{
    if (reason_buffer == NULL || buffer_size == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    pthread_mutex_lock(&g_cd_mu);
    esp_err_t rc = !g_cd_present ? ESP_FAIL : g_cd_reason[0] ? ESP_OK : ESP_ERR_NOT_FOUND;
    if (rc == ESP_OK) {
        snprintf(reason_buffer, buffer_size, "%s", g_cd_reason);
    }
    pthread_mutex_unlock(&g_cd_mu);
    return rc;
}
#endif
int hm_restarts(void) { return __atomic_load_n(&g_restarts, __ATOMIC_RELAXED); }
esp_reset_reason_t esp_reset_reason(void) { return g_reset_reason; }
uint32_t esp_get_free_heap_size(void) { return 200000; }
uint32_t esp_get_minimum_free_heap_size(void) { return 180000; }
#ifdef HM_ESP8266
const char *esp_get_idf_version(void) { return "v3.4-hostmodel"; }
#else
const char *esp_get_idf_version(void) { return "v5.5-hostmodel"; }
#endif
int64_t esp_timer_get_time(void) { return mono_us() - g_start_us; }

void esp_fill_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
}

uint32_t esp_random(void)
{
    uint32_t r;
    esp_fill_random(&r, sizeof(r));
    return r;
}

void esp_chip_info(esp_chip_info_t *out)
{
    memset(out, 0, sizeof(*out));
#ifdef HM_ESP8266
    out->model = CHIP_ESP8266;
    out->revision = 1;
    out->cores = 1;
#else
    out->revision = 3;
    out->cores = 2;
#endif
}

esp_err_t esp_read_mac(uint8_t *mac, esp_mac_type_t type)
{
    (void)type;
    static const uint8_t m[6] = {0x24, 0x0a, 0xc4, 0x12, 0x34, 0x56};
    memcpy(mac, m, 6);
    return ESP_OK;
}

#ifdef HM_ESP8266
esp_err_t tcpip_adapter_get_ip_info(tcpip_adapter_if_t tcpip_if, tcpip_adapter_ip_info_t *ip_info)
{
    if (tcpip_if != TCPIP_ADAPTER_IF_STA) {
        return ESP_ERR_INVALID_ARG;
    }
    static const uint8_t ip[4] = {192, 168, 4, 23};
    memset(ip_info, 0, sizeof(*ip_info));
    memcpy(&ip_info->ip.addr, ip, 4);
    return ESP_OK;
}
#else
esp_netif_t *esp_netif_get_handle_from_ifkey(const char *key) { (void)key; return NULL; }
esp_err_t esp_netif_get_ip_info(esp_netif_t *netif, esp_netif_ip_info_t *info)
{
    (void)netif;
    (void)info;
    return ESP_FAIL;
}
esp_err_t esp_crt_bundle_attach(void *conf) { (void)conf; return ESP_OK; }
#endif
esp_err_t esp_wifi_sta_get_ap_info(wifi_ap_record_t *ap) { ap->rssi = -60; return ESP_OK; }

/* ================= NVS ================= */

#ifdef HM_ESP8266
/* v3.4's names; its nvs.h has no nvs_type_t: the model's own item types (nvs_types.hpp) */
typedef nvs_handle nvs_handle_t;
typedef nvs_open_mode nvs_open_mode_t;
typedef enum {
    NVS_TYPE_U8 = 0x01, NVS_TYPE_I8 = 0x11, NVS_TYPE_U16 = 0x02, NVS_TYPE_I16 = 0x12,
    NVS_TYPE_U32 = 0x04, NVS_TYPE_I32 = 0x14, NVS_TYPE_U64 = 0x08, NVS_TYPE_I64 = 0x18,
    NVS_TYPE_STR = 0x21, NVS_TYPE_BLOB = 0x42, NVS_TYPE_ANY = 0xff,
} nvs_type_t;
#endif

typedef struct {
    char ns[16];
    char key[16];
    nvs_type_t type;
    uint8_t *data; /* strings with their NUL */
    size_t len;
    int64_t num;
} nvs_entry_t;

#define MAX_ENTRIES 128
#define MAX_HANDLES 32
static pthread_mutex_t g_nvs_mu = PTHREAD_MUTEX_INITIALIZER;
static nvs_entry_t g_nvs[MAX_ENTRIES];
static int g_nvs_n;
static char g_ns[16][16];
static int g_ns_n;
static bool g_nvs_ready;
static struct {
    bool used;
    char ns[16];
    nvs_open_mode_t mode;
} g_handles[MAX_HANDLES];

static bool ns_known(const char *ns)
{
    for (int i = 0; i < g_ns_n; i++) {
        if (strcmp(g_ns[i], ns) == 0) {
            return true;
        }
    }
    return false;
}

static void ns_add(const char *ns)
{
    if (!ns_known(ns) && g_ns_n < 16) {
        snprintf(g_ns[g_ns_n++], 16, "%s", ns);
    }
}

static nvs_entry_t *find(const char *ns, const char *key)
{
    for (int i = 0; i < g_nvs_n; i++) {
        if (strcmp(g_nvs[i].ns, ns) == 0 && strcmp(g_nvs[i].key, key) == 0) {
            return &g_nvs[i];
        }
    }
    return NULL;
}

static void drop(nvs_entry_t *e)
{
    free(e->data);
    *e = g_nvs[--g_nvs_n];
    memset(&g_nvs[g_nvs_n], 0, sizeof(g_nvs[0]));
}

/* Stores a value, replacing an entry of another type (called with g_nvs_mu held). */
static esp_err_t put(const char *ns, const char *key, nvs_type_t type, const void *data, size_t len, int64_t num)
{
    if (strlen(key) > 15) {
        return ESP_ERR_NVS_KEY_TOO_LONG;
    }
#ifdef HM_ESP8266
    /* v3.4's NVS (format version 1, no multi-page blobs): nvs_page.cpp refuses a string or blob
     * over Page::BLOB_MAX_SIZE, 1,984 bytes */
    if ((type == NVS_TYPE_STR || type == NVS_TYPE_BLOB) && len > 1984) {
        return ESP_ERR_NVS_VALUE_TOO_LONG;
    }
#else
    if ((type == NVS_TYPE_STR && len > 4000) || (type == NVS_TYPE_BLOB && len > 508000)) {
        return ESP_ERR_NVS_INVALID_LENGTH;
    }
#endif
    nvs_entry_t *e = find(ns, key);
    if (e) {
        drop(e);
    }
    if (g_nvs_n == MAX_ENTRIES) {
        return ESP_ERR_NVS_NO_FREE_PAGES;
    }
    e = &g_nvs[g_nvs_n++];
    snprintf(e->ns, sizeof(e->ns), "%s", ns);
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->type = type;
    e->num = num;
    e->len = len;
    e->data = NULL;
    if (data) {
        e->data = malloc(len ? len : 1);
        memcpy(e->data, data, len);
    }
    ns_add(ns);
    return ESP_OK;
}

esp_err_t nvs_flash_init(void)
{
    pthread_mutex_lock(&g_nvs_mu);
    g_nvs_ready = true;
    pthread_mutex_unlock(&g_nvs_mu);
    return ESP_OK;
}

esp_err_t nvs_open(const char *ns, nvs_open_mode_t mode, nvs_handle_t *out)
{
    esp_err_t err = ESP_OK;
    pthread_mutex_lock(&g_nvs_mu);
    if (!g_nvs_ready) {
        err = ESP_ERR_NVS_NOT_INITIALIZED;
    } else if (strlen(ns) > 15) {
        err = ESP_ERR_NVS_KEY_TOO_LONG;
    } else if (mode == NVS_READONLY && !ns_known(ns)) {
        err = ESP_ERR_NVS_NOT_FOUND;
    } else {
        err = ESP_ERR_NO_MEM;
        for (int i = 1; i < MAX_HANDLES; i++) {
            if (!g_handles[i].used) {
                g_handles[i].used = true;
                g_handles[i].mode = mode;
                snprintf(g_handles[i].ns, sizeof(g_handles[i].ns), "%s", ns);
                if (mode == NVS_READWRITE) {
                    ns_add(ns);
                }
                *out = (nvs_handle_t)i;
                err = ESP_OK;
                break;
            }
        }
    }
    pthread_mutex_unlock(&g_nvs_mu);
    return err;
}

void nvs_close(nvs_handle_t h)
{
    pthread_mutex_lock(&g_nvs_mu);
    if (h < MAX_HANDLES) {
        g_handles[h].used = false;
    }
    pthread_mutex_unlock(&g_nvs_mu);
}

static esp_err_t get_typed(nvs_handle_t h, const char *key, nvs_type_t type, nvs_entry_t *copy)
{
    esp_err_t err;
    pthread_mutex_lock(&g_nvs_mu);
    if (h == 0 || h >= MAX_HANDLES || !g_handles[h].used) {
        err = ESP_ERR_INVALID_ARG;
    } else {
        nvs_entry_t *e = find(g_handles[h].ns, key);
        if (e == NULL) {
            err = ESP_ERR_NVS_NOT_FOUND;
        } else if (e->type != type) {
            err = ESP_ERR_NVS_TYPE_MISMATCH; /* nvs::Page::findItem: key found, other type */
        } else {
            *copy = *e;
            copy->data = NULL;
            if (e->data) {
                copy->data = malloc(e->len ? e->len : 1);
                memcpy(copy->data, e->data, e->len);
            }
            err = ESP_OK;
        }
    }
    pthread_mutex_unlock(&g_nvs_mu);
    return err;
}

#define GET_INT(fn, ctype, nvstype)                                                              \
    esp_err_t fn(nvs_handle_t h, const char *key, ctype *out)                                    \
    {                                                                                            \
        nvs_entry_t e;                                                                           \
        esp_err_t err = get_typed(h, key, nvstype, &e);                                          \
        if (err == ESP_OK) {                                                                     \
            *out = (ctype)e.num;                                                                 \
            free(e.data);                                                                        \
        }                                                                                        \
        return err;                                                                              \
    }
GET_INT(nvs_get_u8, uint8_t, NVS_TYPE_U8)
GET_INT(nvs_get_i8, int8_t, NVS_TYPE_I8)
GET_INT(nvs_get_u16, uint16_t, NVS_TYPE_U16)
GET_INT(nvs_get_i16, int16_t, NVS_TYPE_I16)
GET_INT(nvs_get_u32, uint32_t, NVS_TYPE_U32)
GET_INT(nvs_get_i32, int32_t, NVS_TYPE_I32)

static esp_err_t get_bytes(nvs_handle_t h, const char *key, nvs_type_t type, void *out, size_t *len)
{
    nvs_entry_t e;
    esp_err_t err = get_typed(h, key, type, &e);
    if (err != ESP_OK) {
        return err;
    }
    if (out == NULL) {
        *len = e.len;
    } else if (*len < e.len) {
        *len = e.len;
        err = ESP_ERR_NVS_INVALID_LENGTH;
    } else {
        memcpy(out, e.data, e.len);
        *len = e.len;
    }
    free(e.data);
    return err;
}

esp_err_t nvs_get_str(nvs_handle_t h, const char *key, char *out, size_t *len)
{
    return get_bytes(h, key, NVS_TYPE_STR, out, len);
}

esp_err_t nvs_get_blob(nvs_handle_t h, const char *key, void *out, size_t *len)
{
    return get_bytes(h, key, NVS_TYPE_BLOB, out, len);
}

static esp_err_t set_any(nvs_handle_t h, const char *key, nvs_type_t type, const void *data, size_t len, int64_t num)
{
    esp_err_t err;
    pthread_mutex_lock(&g_nvs_mu);
    if (h == 0 || h >= MAX_HANDLES || !g_handles[h].used) {
        err = ESP_ERR_INVALID_ARG;
    } else if (g_handles[h].mode != NVS_READWRITE) {
        err = ESP_ERR_NVS_READ_ONLY;
    } else {
        err = put(g_handles[h].ns, key, type, data, len, num);
    }
    pthread_mutex_unlock(&g_nvs_mu);
    return err;
}

esp_err_t nvs_set_u8(nvs_handle_t h, const char *key, uint8_t v) { return set_any(h, key, NVS_TYPE_U8, NULL, 0, v); }
esp_err_t nvs_set_u16(nvs_handle_t h, const char *key, uint16_t v) { return set_any(h, key, NVS_TYPE_U16, NULL, 0, v); }
esp_err_t nvs_set_i32(nvs_handle_t h, const char *key, int32_t v) { return set_any(h, key, NVS_TYPE_I32, NULL, 0, v); }
esp_err_t nvs_set_str(nvs_handle_t h, const char *key, const char *v)
{
    return set_any(h, key, NVS_TYPE_STR, v, strlen(v) + 1, 0);
}
esp_err_t nvs_set_blob(nvs_handle_t h, const char *key, const void *v, size_t len)
{
    return set_any(h, key, NVS_TYPE_BLOB, v, len, 0);
}

esp_err_t nvs_erase_key(nvs_handle_t h, const char *key)
{
    esp_err_t err = ESP_ERR_NVS_NOT_FOUND;
    pthread_mutex_lock(&g_nvs_mu);
    if (h == 0 || h >= MAX_HANDLES || !g_handles[h].used) {
        err = ESP_ERR_INVALID_ARG;
    } else if (g_handles[h].mode != NVS_READWRITE) {
        err = ESP_ERR_NVS_READ_ONLY;
    } else {
        nvs_entry_t *e = find(g_handles[h].ns, key);
        if (e) {
            drop(e);
            err = ESP_OK;
        }
    }
    pthread_mutex_unlock(&g_nvs_mu);
    return err;
}

esp_err_t nvs_erase_all(nvs_handle_t h)
{
    esp_err_t err = ESP_OK;
    pthread_mutex_lock(&g_nvs_mu);
    if (h == 0 || h >= MAX_HANDLES || !g_handles[h].used) {
        err = ESP_ERR_INVALID_ARG;
    } else if (g_handles[h].mode != NVS_READWRITE) {
        err = ESP_ERR_NVS_READ_ONLY;
    } else {
        for (int i = g_nvs_n - 1; i >= 0; i--) {
            if (strcmp(g_nvs[i].ns, g_handles[h].ns) == 0) {
                drop(&g_nvs[i]);
            }
        }
    }
    pthread_mutex_unlock(&g_nvs_mu);
    return err;
}

esp_err_t nvs_commit(nvs_handle_t h)
{
    (void)h;
    return ESP_OK; /* the model writes through */
}

int hm_nvs_set_str(const char *ns, const char *key, const char *value)
{
    pthread_mutex_lock(&g_nvs_mu);
    esp_err_t err = put(ns, key, NVS_TYPE_STR, value, strlen(value) + 1, 0);
    pthread_mutex_unlock(&g_nvs_mu);
    return err == ESP_OK ? 0 : -1;
}

/* ---- the NVS partition CSV ---- */

/* Reads one CSV record (RFC 4180: quoted fields, doubled quotes, line breaks inside quotes).
 * Returns the number of fields, 0 at the end of input, -1 on a malformed record. */
static int csv_record(const char **pp, char fields[4][8192])
{
    const char *p = *pp;
    if (*p == '\0') {
        return 0;
    }
    int nf = 0;
    for (;;) {
        if (nf == 4) {
            return -1;
        }
        char *out = fields[nf];
        size_t n = 0;
        if (*p == '"') {
            p++;
            for (;;) {
                if (*p == '\0') {
                    return -1;
                }
                if (*p == '"') {
                    if (p[1] == '"') {
                        p += 2;
                        if (n < 8191) out[n++] = '"';
                        continue;
                    }
                    p++;
                    break;
                }
                if (n < 8191) out[n++] = *p;
                p++;
            }
        } else {
            while (*p && *p != ',' && *p != '\n' && *p != '\r') {
                if (n < 8191) out[n++] = *p;
                p++;
            }
        }
        out[n] = '\0';
        nf++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\r') p++;
        if (*p == '\n') p++;
        break;
    }
    *pp = p;
    return nf;
}

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static long b64decode(const char *in, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val((unsigned char)*in);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap) return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)n;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

int hm_nvs_load_csv(const char *path)
{
    size_t size;
    char *text = slurp(path, &size);
    if (text == NULL) {
        return -1;
    }
    static char f[4][8192];
    static uint8_t bin[8192];
    const char *p = text;
    char ns[16] = "";
    int rc = 0;
    int nf = csv_record(&p, f); /* header */
    if (nf != 4 || strcmp(f[0], "key") != 0) {
        rc = -1;
    }
    pthread_mutex_lock(&g_nvs_mu);
    while (rc == 0 && (nf = csv_record(&p, f)) > 0) {
        for (int i = nf; i < 4; i++) f[i][0] = '\0';
        const char *key = f[0], *type = f[1], *enc = f[2], *val = f[3];
        esp_err_t err = ESP_OK;
        if (strcmp(type, "namespace") == 0) {
            if (strlen(key) >= sizeof(ns)) {
                rc = -1;
                break;
            }
            memcpy(ns, key, strlen(key) + 1);
            ns_add(ns);
            continue;
        }
        if (ns[0] == '\0' || (strcmp(type, "data") != 0 && strcmp(type, "file") != 0)) {
            rc = -1;
            break;
        }
        char *filedata = NULL;
        size_t filelen = 0;
        if (strcmp(type, "file") == 0) {
            filedata = slurp(val, &filelen);
            if (filedata == NULL) {
                rc = -1;
                break;
            }
            val = filedata;
        }
        char *end = NULL;
        long long num = strtoll(val, &end, 0);
        bool isnum = end && end != val && *end == '\0';
        if (strcmp(enc, "u8") == 0 && isnum && num >= 0 && num <= 255) {
            err = put(ns, key, NVS_TYPE_U8, NULL, 0, num);
        } else if (strcmp(enc, "i8") == 0 && isnum && num >= -128 && num <= 127) {
            err = put(ns, key, NVS_TYPE_I8, NULL, 0, num);
        } else if (strcmp(enc, "u16") == 0 && isnum && num >= 0 && num <= 65535) {
            err = put(ns, key, NVS_TYPE_U16, NULL, 0, num);
        } else if (strcmp(enc, "i16") == 0 && isnum && num >= -32768 && num <= 32767) {
            err = put(ns, key, NVS_TYPE_I16, NULL, 0, num);
        } else if (strcmp(enc, "u32") == 0 && isnum && num >= 0 && num <= 4294967295LL) {
            err = put(ns, key, NVS_TYPE_U32, NULL, 0, num);
        } else if (strcmp(enc, "i32") == 0 && isnum && num >= INT32_MIN && num <= INT32_MAX) {
            err = put(ns, key, NVS_TYPE_I32, NULL, 0, num);
        } else if (strcmp(enc, "string") == 0) {
            err = put(ns, key, NVS_TYPE_STR, val, strlen(val) + 1, 0);
        } else if (strcmp(enc, "base64") == 0) {
            long n = b64decode(val, bin, sizeof(bin));
            err = n < 0 ? ESP_FAIL : put(ns, key, NVS_TYPE_BLOB, bin, (size_t)n, 0);
        } else if (strcmp(enc, "hex2bin") == 0) {
            size_t n = strlen(val) / 2;
            for (size_t i = 0; i < n && i < sizeof(bin); i++) {
                unsigned v;
                sscanf(val + 2 * i, "%2x", &v);
                bin[i] = (uint8_t)v;
            }
            err = n > sizeof(bin) ? ESP_FAIL : put(ns, key, NVS_TYPE_BLOB, bin, n, 0);
        } else if (strcmp(enc, "binary") == 0 && filedata) {
            err = put(ns, key, NVS_TYPE_BLOB, filedata, filelen, 0);
        } else {
            err = ESP_FAIL;
        }
        free(filedata);
        if (err != ESP_OK) {
            fprintf(stderr, "hostmodel: NVS CSV row %s,%s,%s refused\n", key, type, enc);
            rc = -1;
        }
    }
    pthread_mutex_unlock(&g_nvs_mu);
    free(text);
    return nf < 0 ? -1 : rc;
}

/* ================= partitions and OTA ================= */

#ifdef HM_ESP8266
/* v3.4 has no image states; the model keeps ESP-IDF's names for its own bookkeeping, and its
 * bootloader (below) ignores them */
typedef enum {
    ESP_OTA_IMG_NEW, ESP_OTA_IMG_PENDING_VERIFY, ESP_OTA_IMG_VALID, ESP_OTA_IMG_INVALID, ESP_OTA_IMG_ABORTED,
    ESP_OTA_IMG_UNDEFINED = -1,
} esp_ota_img_states_t;
#endif

typedef struct {
    esp_partition_t part;
    esp_ota_img_states_t state;
    bool has_image;
    uint8_t header[HM_IMG_HEADER];
} slot_t;

static pthread_mutex_t g_ota_mu = PTHREAD_MUTEX_INITIALIZER;
static slot_t g_slots[2] = {
#ifdef HM_ESP8266
    /* examples/esp8266/partitions.csv: 2 MB flash, two slots of 960 KiB */
    {.part = {.type = 0, .subtype = 0x10, .address = 0x10000, .size = 0xF0000, .label = "ota_0"}, .state = ESP_OTA_IMG_UNDEFINED},
    {.part = {.type = 0, .subtype = 0x11, .address = 0x110000, .size = 0xF0000, .label = "ota_1"}, .state = ESP_OTA_IMG_UNDEFINED},
#else
    {.part = {.type = 0, .subtype = 0x10, .address = 0x20000, .size = 0x1e0000, .label = "ota_0"}, .state = ESP_OTA_IMG_UNDEFINED},
    {.part = {.type = 0, .subtype = 0x11, .address = 0x200000, .size = 0x1e0000, .label = "ota_1"}, .state = ESP_OTA_IMG_UNDEFINED},
#endif
};
static int g_running;
static int g_boot;
static struct {
    bool open;
    int slot;
    size_t len;
    uint8_t header[HM_IMG_HEADER];
} g_write;
static esp_app_desc_t g_app_desc = {.magic_word = 0xABCD5432, .project_name = "espadmin-hostmodel"};

static int slot_of(const esp_partition_t *p)
{
    for (int i = 0; i < 2; i++) {
        if (p == &g_slots[i].part) {
            return i;
        }
    }
    return -1;
}

size_t hm_image_make(uint8_t *out, size_t cap, const char *version, uint8_t flags, size_t payload)
{
    size_t n = HM_IMG_HEADER + payload;
    if (cap < n) {
        return 0;
    }
    memset(out, 0, HM_IMG_HEADER);
    memcpy(out, "HMIMG1", 6);
    snprintf((char *)out + 6, 32, "%s", version);
    out[38] = flags;
    for (size_t i = 0; i < payload; i++) {
        out[HM_IMG_HEADER + i] = (uint8_t)(i * 13 + 7);
    }
    return n;
}

void hm_ota_install_factory(const char *version)
{
    pthread_mutex_lock(&g_ota_mu);
    hm_image_make(g_slots[0].header, sizeof(g_slots[0].header), version, 0, 0);
    g_slots[0].has_image = true;
    g_slots[0].state = ESP_OTA_IMG_VALID;
    g_running = g_boot = 0;
    snprintf(g_app_desc.version, sizeof(g_app_desc.version), "%s", version);
    pthread_mutex_unlock(&g_ota_mu);
}

int hm_ota_running_slot(void)
{
    pthread_mutex_lock(&g_ota_mu);
    int r = g_running;
    pthread_mutex_unlock(&g_ota_mu);
    return r;
}

#ifndef HM_ESP8266
esp_ota_img_states_t hm_ota_running_state(void)
{
    pthread_mutex_lock(&g_ota_mu);
    esp_ota_img_states_t s = g_slots[g_running].state;
    pthread_mutex_unlock(&g_ota_mu);
    return s;
}

void hm_ota_set_running_state(esp_ota_img_states_t st)
{
    pthread_mutex_lock(&g_ota_mu);
    g_slots[g_running].state = st;
    pthread_mutex_unlock(&g_ota_mu);
}

#endif

const char *hm_running_version(void) { return g_app_desc.version; }
bool hm_running_image_crashes(void) { return (g_slots[g_running].header[38] & HM_IMG_CRASHES) != 0; }

#ifdef HM_ESP8266
/* v3.4's second-stage bootloader: no rollback; it boots the slot otadata selects (what
 * esp_ota_set_boot_partition wrote) and tries the other one only when that holds no image. */
static void bootloader(void)
{
    int b = g_boot;
    if (!g_slots[b].has_image) {
        b = 1 - b;
        g_boot = b;
    }
    g_running = b;
    memcpy(g_app_desc.version, g_slots[b].header + 6, 32);
    g_app_desc.version[31] = '\0';
}
#else
/* The second-stage bootloader with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE. */
static void bootloader(void)
{
    int b = g_boot;
    slot_t *s = &g_slots[b];
    if (s->state == ESP_OTA_IMG_NEW) {
        s->state = ESP_OTA_IMG_PENDING_VERIFY;
    } else if (s->state == ESP_OTA_IMG_PENDING_VERIFY) {
        s->state = ESP_OTA_IMG_ABORTED; /* booted once and never confirmed */
    }
    if (s->state == ESP_OTA_IMG_ABORTED || s->state == ESP_OTA_IMG_INVALID || !s->has_image) {
        b = 1 - b;
        g_boot = b;
    }
    g_running = b;
    memcpy(g_app_desc.version, g_slots[b].header + 6, 32);
    g_app_desc.version[31] = '\0';
}

#endif

#ifdef HM_ESP8266
const esp_app_desc_t *esp_ota_get_app_description(void) { return &g_app_desc; }
#else
const esp_app_desc_t *esp_app_get_description(void) { return &g_app_desc; }
#endif
const esp_partition_t *esp_ota_get_running_partition(void) { return &g_slots[g_running].part; }
const esp_partition_t *esp_ota_get_boot_partition(void) { return &g_slots[g_boot].part; }

const esp_partition_t *esp_ota_get_next_update_partition(const esp_partition_t *start_from)
{
    (void)start_from;
    return &g_slots[1 - g_running].part;
}

esp_err_t esp_ota_begin(const esp_partition_t *partition, size_t image_size, esp_ota_handle_t *out)
{
    (void)image_size;
    esp_err_t err = ESP_OK;
    pthread_mutex_lock(&g_ota_mu);
    int s = slot_of(partition);
    if (s < 0) {
        err = ESP_ERR_INVALID_ARG;
#ifndef HM_ESP8266
    } else if (g_slots[g_running].state == ESP_OTA_IMG_PENDING_VERIFY) {
        err = ESP_ERR_OTA_ROLLBACK_INVALID_STATE; /* app_update: confirm the running app first */
#endif
    } else if (s == g_running) {
        err = ESP_ERR_OTA_PARTITION_CONFLICT;
    } else {
        g_write.open = true;
        g_write.slot = s;
        g_write.len = 0;
        g_slots[s].has_image = false;
        g_slots[s].state = ESP_OTA_IMG_UNDEFINED;
        *out = 1;
    }
    pthread_mutex_unlock(&g_ota_mu);
    return err;
}

esp_err_t esp_ota_write(esp_ota_handle_t h, const void *data, size_t size)
{
    pthread_mutex_lock(&g_ota_mu);
    esp_err_t err = ESP_OK;
    if (h != 1 || !g_write.open) {
        err = ESP_ERR_INVALID_ARG;
    } else {
        const uint8_t *p = data;
        for (size_t i = 0; i < size && g_write.len + i < HM_IMG_HEADER; i++) {
            g_write.header[g_write.len + i] = p[i];
        }
        g_write.len += size;
        if (g_write.len > g_slots[g_write.slot].part.size) {
            err = ESP_ERR_INVALID_SIZE;
        }
    }
    pthread_mutex_unlock(&g_ota_mu);
    return err;
}

esp_err_t esp_ota_end(esp_ota_handle_t h)
{
    pthread_mutex_lock(&g_ota_mu);
    esp_err_t err = ESP_OK;
    if (h != 1 || !g_write.open) {
        err = ESP_ERR_INVALID_ARG;
    } else {
        g_write.open = false;
        if (g_write.len < HM_IMG_HEADER || memcmp(g_write.header, "HMIMG1", 6) != 0) {
            err = ESP_ERR_OTA_VALIDATE_FAILED;
        } else {
            memcpy(g_slots[g_write.slot].header, g_write.header, HM_IMG_HEADER);
            g_slots[g_write.slot].has_image = true;
        }
    }
    pthread_mutex_unlock(&g_ota_mu);
    return err;
}

#ifndef HM_ESP8266 /* v3.4: no esp_ota_abort; esp_ota_end releases the handle */
esp_err_t esp_ota_abort(esp_ota_handle_t h)
{
    pthread_mutex_lock(&g_ota_mu);
    if (h == 1) {
        g_write.open = false;
    }
    pthread_mutex_unlock(&g_ota_mu);
    return ESP_OK;
}

#endif

esp_err_t esp_ota_set_boot_partition(const esp_partition_t *partition)
{
    pthread_mutex_lock(&g_ota_mu);
    esp_err_t err = ESP_OK;
    int s = slot_of(partition);
    if (s < 0 || !g_slots[s].has_image) {
        err = ESP_ERR_OTA_VALIDATE_FAILED;
    } else {
        g_boot = s;
        if (s != g_running) {
            g_slots[s].state = ESP_OTA_IMG_NEW;
        }
    }
    pthread_mutex_unlock(&g_ota_mu);
    return err;
}

#ifndef HM_ESP8266 /* the app rollback API, not in v3.4 */
esp_err_t esp_ota_mark_app_valid_cancel_rollback(void)
{
    pthread_mutex_lock(&g_ota_mu);
    g_slots[g_running].state = ESP_OTA_IMG_VALID;
    pthread_mutex_unlock(&g_ota_mu);
    return ESP_OK;
}

esp_err_t esp_ota_mark_app_invalid_rollback_and_reboot(void)
{
    pthread_mutex_lock(&g_ota_mu);
    int other = 1 - g_running;
    bool ok = g_slots[other].has_image && g_slots[other].state == ESP_OTA_IMG_VALID;
    if (ok) {
        g_slots[g_running].state = ESP_OTA_IMG_INVALID;
        g_boot = other;
    }
    pthread_mutex_unlock(&g_ota_mu);
    if (!ok) {
        return ESP_ERR_OTA_ROLLBACK_FAILED;
    }
    esp_restart();
}

esp_err_t esp_ota_get_state_partition(const esp_partition_t *partition, esp_ota_img_states_t *out)
{
    pthread_mutex_lock(&g_ota_mu);
    int s = slot_of(partition);
    esp_err_t err = ESP_OK;
    if (s < 0 || g_slots[s].state == ESP_OTA_IMG_UNDEFINED) {
        err = ESP_ERR_NOT_FOUND;
    } else {
        *out = g_slots[s].state;
    }
    pthread_mutex_unlock(&g_ota_mu);
    return err;
}
#endif

/* ================= boot, state across restarts ================= */

static void state_save(esp_reset_reason_t next_reason)
{
    FILE *f = fopen(g_state_path, "wb");
    if (f == NULL) {
        perror("hostmodel: state");
        abort();
    }
    int reason = (int)next_reason;
    fwrite(&g_boot_count, sizeof(int), 1, f);
    fwrite(&reason, sizeof(int), 1, f);
    pthread_mutex_lock(&g_ota_mu);
    fwrite(&g_boot, sizeof(int), 1, f);
    fwrite(g_slots, sizeof(g_slots), 1, f);
    pthread_mutex_unlock(&g_ota_mu);
    pthread_mutex_lock(&g_nvs_mu);
    fwrite(&g_nvs_n, sizeof(int), 1, f);
    for (int i = 0; i < g_nvs_n; i++) {
        nvs_entry_t *e = &g_nvs[i];
        fwrite(e, sizeof(*e), 1, f);
        if (e->data) {
            fwrite(e->data, 1, e->len, f);
        }
    }
    fwrite(&g_ns_n, sizeof(int), 1, f);
    fwrite(g_ns, sizeof(g_ns), 1, f);
    pthread_mutex_unlock(&g_nvs_mu);
#ifndef HM_ESP8266
    pthread_mutex_lock(&g_cd_mu);
    fwrite(&g_cd_present, sizeof(g_cd_present), 1, f);
    fwrite(&g_cd, sizeof(g_cd), 1, f);
    fwrite(g_cd_reason, sizeof(g_cd_reason), 1, f);
    fwrite(g_cd_image, sizeof(g_cd_image), 1, f);
    pthread_mutex_unlock(&g_cd_mu);
#endif
    fclose(f);
}

static bool rd(void *p, size_t n, FILE *f) { return fread(p, 1, n, f) == n; }

int hm_boot(const char *state_path, char **argv)
{
    g_start_us = mono_us();
    snprintf(g_state_path, sizeof(g_state_path), "%s", state_path);
    g_argv = argv;
    FILE *f = fopen(state_path, "rb");
    if (f) {
        int reason = 0;
        bool ok = rd(&g_boot_count, sizeof(int), f) && rd(&reason, sizeof(int), f) &&
                  rd(&g_boot, sizeof(int), f) && rd(g_slots, sizeof(g_slots), f) && rd(&g_nvs_n, sizeof(int), f);
        for (int i = 0; ok && i < g_nvs_n; i++) {
            nvs_entry_t *e = &g_nvs[i];
            ok = rd(e, sizeof(*e), f);
            if (ok && e->data) {
                e->data = malloc(e->len ? e->len : 1);
                ok = rd(e->data, e->len, f);
            }
        }
        ok = ok && rd(&g_ns_n, sizeof(int), f) && rd(g_ns, sizeof(g_ns), f);
#ifndef HM_ESP8266
        ok = ok && rd(&g_cd_present, sizeof(g_cd_present), f) && rd(&g_cd, sizeof(g_cd), f) &&
             rd(g_cd_reason, sizeof(g_cd_reason), f) && rd(g_cd_image, sizeof(g_cd_image), f);
#endif
        fclose(f);
        if (!ok) {
            fprintf(stderr, "hostmodel: cannot read the state %s\n", state_path);
            abort();
        }
        g_reset_reason = (esp_reset_reason_t)reason;
        bootloader();
    }
    return ++g_boot_count;
}

/* ================= esp_http_client and its server ================= */

typedef struct {
    char url[2200];
    uint8_t *data;
    size_t len;
    char location[2200];
    int status; /* 0: serve data; 3xx: redirect */
} resource_t;

static pthread_mutex_t g_http_mu = PTHREAD_MUTEX_INITIALIZER;
static resource_t g_res[8];
static int g_res_n;
static int g_handshake_ms;
static size_t g_drop_after;
static char *g_http_ca;
static int g_requests;
static int g_range_requests;

void hm_http_reset(void)
{
    pthread_mutex_lock(&g_http_mu);
    for (int i = 0; i < g_res_n; i++) {
        free(g_res[i].data);
    }
    g_res_n = 0;
    g_handshake_ms = 0;
    g_drop_after = 0;
    free(g_http_ca);
    g_http_ca = NULL;
    pthread_mutex_unlock(&g_http_mu);
}

void hm_http_serve(const char *url, const uint8_t *data, size_t len)
{
    pthread_mutex_lock(&g_http_mu);
    resource_t *r = &g_res[g_res_n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->url, sizeof(r->url), "%s", url);
    r->data = malloc(len);
    memcpy(r->data, data, len);
    r->len = len;
    pthread_mutex_unlock(&g_http_mu);
}

void hm_http_redirect(const char *url, const char *location, int status)
{
    pthread_mutex_lock(&g_http_mu);
    resource_t *r = &g_res[g_res_n++];
    memset(r, 0, sizeof(*r));
    snprintf(r->url, sizeof(r->url), "%s", url);
    snprintf(r->location, sizeof(r->location), "%s", location);
    r->status = status;
    pthread_mutex_unlock(&g_http_mu);
}

void hm_http_set_handshake_ms(int ms) { pthread_mutex_lock(&g_http_mu); g_handshake_ms = ms; pthread_mutex_unlock(&g_http_mu); }
void hm_http_set_drop_after(size_t bytes) { pthread_mutex_lock(&g_http_mu); g_drop_after = bytes; pthread_mutex_unlock(&g_http_mu); }
void hm_http_set_ca(const char *ca_pem)
{
    pthread_mutex_lock(&g_http_mu);
    free(g_http_ca);
    g_http_ca = ca_pem ? strdup(ca_pem) : NULL;
    pthread_mutex_unlock(&g_http_mu);
}
int hm_http_requests(void) { pthread_mutex_lock(&g_http_mu); int n = g_requests; pthread_mutex_unlock(&g_http_mu); return n; }
int hm_http_range_requests(void) { pthread_mutex_lock(&g_http_mu); int n = g_range_requests; pthread_mutex_unlock(&g_http_mu); return n; }

struct hm_http {
    char url[2200];          /* copied, like esp_http_client_set_url */
    const char *cert_pem;    /* kept: esp-tls reads it during the handshake */
    esp_err_t (*bundle)(void *);
    int buffer_size_tx;
    char range[64];
    int status;
    char location[2200];
    uint8_t *body; /* a copy of the served bytes */
    size_t pos, end, total;
    size_t drop_at; /* 0: no drop */
    bool open;
    /* PUT: the body as it is written, up to the length open announced */
    bool put;
    uint8_t *sent;
    size_t sent_len, write_len;
};

static int g_upload_status = 201;
static char g_upload_url[2200];
static uint8_t *g_upload;
static long g_upload_len = -1;

void hm_http_set_upload_status(int status)
{
    pthread_mutex_lock(&g_http_mu);
    g_upload_status = status;
    pthread_mutex_unlock(&g_http_mu);
}

long hm_http_uploaded(const char *url_prefix, uint8_t *out, size_t cap)
{
    pthread_mutex_lock(&g_http_mu);
    long n = -1;
    if (g_upload_len >= 0 && strncmp(g_upload_url, url_prefix, strlen(url_prefix)) == 0) {
        n = g_upload_len;
        memcpy(out, g_upload, (size_t)n < cap ? (size_t)n : cap);
    }
    pthread_mutex_unlock(&g_http_mu);
    return n;
}

esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *cfg)
{
    if (cfg == NULL || cfg->url == NULL || strlen(cfg->url) >= sizeof(((struct hm_http *)0)->url)) {
        return NULL;
    }
    struct hm_http *c = calloc(1, sizeof(*c));
    snprintf(c->url, sizeof(c->url), "%s", cfg->url);
    c->cert_pem = cfg->cert_pem;
#ifndef HM_ESP8266 /* v3.4: no certificate bundle */
    c->bundle = cfg->crt_bundle_attach;
#endif
    c->buffer_size_tx = cfg->buffer_size_tx > 0 ? cfg->buffer_size_tx : 512; /* DEFAULT_HTTP_BUF_SIZE */
    c->put = cfg->method == HTTP_METHOD_PUT;
    return c;
}

esp_err_t esp_http_client_set_header(esp_http_client_handle_t c, const char *key, const char *value)
{
    if (strcmp(key, "Range") == 0) {
        snprintf(c->range, sizeof(c->range), "%s", value);
    }
    return ESP_OK;
}

esp_err_t esp_http_client_open(esp_http_client_handle_t c, int write_len)
{
    (void)write_len;
    free(c->body);
    c->body = NULL;
    c->open = false;
    const char *path = strstr(c->url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    path = path ? path : "/";
    /* the request line and the default headers must fit buffer_size_tx */
    size_t req = strlen("GET ") + strlen(path) + strlen(" HTTP/1.1\r\n") + strlen("User-Agent: ESP32 HTTP Client/1.0\r\n") +
                 strlen("Host: \r\n") + 64 + (c->range[0] ? strlen("Range: \r\n") + strlen(c->range) : 0) + 2;
    if ((int)req > c->buffer_size_tx) {
        ESP_LOGE("HTTP_CLIENT", "Out of buffer");
        return ESP_ERR_HTTP_WRITE_DATA;
    }
    pthread_mutex_lock(&g_http_mu);
    int delay = g_handshake_ms;
    char *ca = g_http_ca ? strdup(g_http_ca) : NULL;
    g_requests++;
    if (c->range[0]) {
        g_range_requests++;
    }
    pthread_mutex_unlock(&g_http_mu);
    sleep_ms(delay);
    if (strncmp(c->url, "https://", 8) == 0) {
        bool trusted;
        if (c->cert_pem) {
            trusted = ca && strcmp(c->cert_pem, ca) == 0; /* reads the caller's pointer now */
        } else {
            trusted = c->bundle != NULL && ca == NULL;
        }
        free(ca);
        if (!trusted) {
            ESP_LOGE("esp-tls-mbedtls", "Failed to verify peer certificate!");
            return ESP_ERR_HTTP_CONNECT;
        }
    } else {
        free(ca);
    }
    if (c->put) { /* the body follows through esp_http_client_write */
        if (write_len < 0) {
            return ESP_ERR_INVALID_ARG;
        }
        free(c->sent);
        c->sent = malloc((size_t)write_len + 1);
        c->sent_len = 0;
        c->write_len = (size_t)write_len;
        c->status = 0;
        c->pos = c->end = 0;
        c->open = c->sent != NULL;
        return c->open ? ESP_OK : ESP_ERR_NO_MEM;
    }
    pthread_mutex_lock(&g_http_mu);
    resource_t *r = NULL;
    for (int i = 0; i < g_res_n; i++) {
        if (strcmp(g_res[i].url, c->url) == 0) {
            r = &g_res[i];
        }
    }
    c->status = 404;
    c->pos = c->end = c->total = 0;
    c->drop_at = 0;
    if (r && r->status) {
        c->status = r->status;
        snprintf(c->location, sizeof(c->location), "%s", r->location);
    } else if (r) {
        long long from = 0;
        if (c->range[0] && sscanf(c->range, "bytes=%lld-", &from) == 1 && from >= 0 && (size_t)from <= r->len) {
            c->status = 206;
        } else {
            c->status = 200;
            from = 0;
        }
        c->body = malloc(r->len ? r->len : 1);
        memcpy(c->body, r->data, r->len);
        c->total = r->len;
        c->pos = (size_t)from;
        c->end = r->len;
        if (g_drop_after) {
            c->drop_at = c->pos + g_drop_after;
            g_drop_after = 0; /* only the first response is cut */
        }
    }
    pthread_mutex_unlock(&g_http_mu);
    c->open = true;
    return ESP_OK;
}

int esp_http_client_write(esp_http_client_handle_t c, const char *buf, int len)
{
    if (!c->open || !c->put || len < 0 || c->sent_len + (size_t)len > c->write_len) {
        return -1; /* more than announced: esp_http_client would send it, the server refuse it */
    }
    memcpy(c->sent + c->sent_len, buf, (size_t)len);
    c->sent_len += (size_t)len;
    return len;
}

#ifdef HM_ESP8266
int esp_http_client_fetch_headers(esp_http_client_handle_t c)
#else
int64_t esp_http_client_fetch_headers(esp_http_client_handle_t c)
#endif
{
    if (!c->open) {
        return ESP_FAIL;
    }
    if (c->put) { /* the server has the request: record it and answer */
        pthread_mutex_lock(&g_http_mu);
        c->status = c->sent_len == c->write_len ? g_upload_status : 400;
        if (c->status >= 200 && c->status < 300) {
            free(g_upload);
            g_upload = c->sent;
            c->sent = NULL;
            g_upload_len = (long)c->sent_len;
            snprintf(g_upload_url, sizeof(g_upload_url), "%s", c->url);
        }
        pthread_mutex_unlock(&g_http_mu);
        return 0;
    }
    return (int64_t)(c->end - c->pos);
}

int esp_http_client_get_status_code(esp_http_client_handle_t c) { return c->status; }
#ifdef HM_ESP8266
int esp_http_client_get_content_length(esp_http_client_handle_t c) { return (int)(c->end - c->pos); }
#else
int64_t esp_http_client_get_content_length(esp_http_client_handle_t c) { return (int64_t)(c->end - c->pos); }
#endif

int esp_http_client_read(esp_http_client_handle_t c, char *buf, int len)
{
    if (!c->open) {
        return -1;
    }
    if (c->drop_at && c->pos >= c->drop_at) {
        c->open = false;
        return -1; /* connection reset by peer */
    }
    size_t n = c->end - c->pos;
    if ((size_t)len < n) {
        n = (size_t)len;
    }
    if (c->drop_at && c->pos + n > c->drop_at) {
        n = c->drop_at - c->pos;
    }
    memcpy(buf, c->body + c->pos, n);
    c->pos += n;
    return (int)n;
}

bool esp_http_client_is_complete_data_received(esp_http_client_handle_t c) { return c->open && c->pos == c->end; }

#ifndef HM_ESP8266 /* not in v3.4 */
esp_err_t esp_http_client_flush_response(esp_http_client_handle_t c, int *len)
{
    if (len) {
        *len = (int)(c->end - c->pos);
    }
    c->pos = c->end;
    return ESP_OK;
}
#endif

esp_err_t esp_http_client_set_redirection(esp_http_client_handle_t c)
{
    if (c->location[0] == '\0') {
        return ESP_ERR_INVALID_ARG;
    }
    snprintf(c->url, sizeof(c->url), "%s", c->location);
    c->location[0] = '\0';
    return ESP_OK;
}

esp_err_t esp_http_client_close(esp_http_client_handle_t c)
{
    c->open = false;
    return ESP_OK;
}

esp_err_t esp_http_client_cleanup(esp_http_client_handle_t c)
{
    free(c->body);
    free(c->sent);
    free(c);
    return ESP_OK;
}

/* ================= esp-mqtt and its broker ================= */

typedef struct {
    char *topic;
    char *payload;
    size_t len;
} msg_t;

static pthread_mutex_t g_broker_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_broker_cv = PTHREAD_COND_INITIALIZER;
static msg_t *g_published;
static int g_published_n, g_published_cap;
static msg_t g_inbox[16];
static int g_inbox_frag[16];
static int g_inbox_n;
static int g_puback_ms;
static int g_connect_ms;
static bool g_refuse;
static char *g_broker_ca;
static int g_connections;
static hm_connection_t g_last_conn;

void hm_broker_set_puback_delay_ms(int ms) { pthread_mutex_lock(&g_broker_mu); g_puback_ms = ms; pthread_mutex_unlock(&g_broker_mu); }
void hm_broker_set_connect_delay_ms(int ms) { pthread_mutex_lock(&g_broker_mu); g_connect_ms = ms; pthread_mutex_unlock(&g_broker_mu); }
void hm_broker_set_refuse(bool refuse) { pthread_mutex_lock(&g_broker_mu); g_refuse = refuse; pthread_mutex_unlock(&g_broker_mu); }
void hm_broker_set_ca(const char *ca_pem)
{
    pthread_mutex_lock(&g_broker_mu);
    free(g_broker_ca);
    g_broker_ca = ca_pem ? strdup(ca_pem) : NULL;
    pthread_mutex_unlock(&g_broker_mu);
}

int hm_broker_connections(hm_connection_t *last)
{
    pthread_mutex_lock(&g_broker_mu);
    int n = g_connections;
    if (last) {
        *last = g_last_conn;
    }
    pthread_mutex_unlock(&g_broker_mu);
    return n;
}

void hm_broker_inject(const char *topic, const char *payload, size_t len, int frag)
{
    pthread_mutex_lock(&g_broker_mu);
    if (g_inbox_n < 16) {
        g_inbox[g_inbox_n].topic = strdup(topic);
        g_inbox[g_inbox_n].payload = malloc(len ? len : 1);
        memcpy(g_inbox[g_inbox_n].payload, payload, len);
        g_inbox[g_inbox_n].len = len;
        g_inbox_frag[g_inbox_n] = frag > 0 ? frag : (int)len;
        g_inbox_n++;
    }
    pthread_mutex_unlock(&g_broker_mu);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int find_published(const char *suffix, const char *needle, int from)
{
    for (int i = from; i < g_published_n; i++) {
        if (ends_with(g_published[i].topic, suffix) && (needle == NULL || strstr(g_published[i].payload, needle))) {
            return i;
        }
    }
    return -1;
}

bool hm_broker_wait(const char *suffix, const char *needle, char *out, size_t cap, int timeout_ms)
{
    int64_t until = now_ms() + timeout_ms;
    pthread_mutex_lock(&g_broker_mu);
    int i;
    while ((i = find_published(suffix, needle, 0)) < 0 && now_ms() < until) {
        struct timespec dl;
        deadline_of(&dl, pdMS_TO_TICKS(50));
        pthread_cond_timedwait(&g_broker_cv, &g_broker_mu, &dl);
    }
    if (i >= 0 && out) {
        snprintf(out, cap, "%s", g_published[i].payload);
    }
    pthread_mutex_unlock(&g_broker_mu);
    return i >= 0;
}

int hm_broker_count(const char *suffix, const char *needle)
{
    pthread_mutex_lock(&g_broker_mu);
    int n = 0;
    for (int i = 0; (i = find_published(suffix, needle, i)) >= 0; i++) {
        n++;
    }
    pthread_mutex_unlock(&g_broker_mu);
    return n;
}

enum { ST_INIT, ST_CONNECTED, ST_WAIT };

typedef struct {
    int mid;
    int64_t due;
} puback_t;

struct esp_mqtt_client {
    esp_mqtt_client_config_t cfg; /* the caller's pointers, kept as given */
    pthread_mutex_t api;          /* MQTT_API_LOCK: recursive */
    esp_event_handler_t handler;
    void *handler_arg;
    pthread_t th;
    bool started;
    bool run;
    bool disconnect_req;
    bool subscribed;
    int state;
    int next_mid;
    puback_t pubacks[64];
    int npubacks;
};

static void dispatch(esp_mqtt_client_handle_t c, esp_mqtt_event_t *e)
{
    e->client = c;
    if (c->handler) {
        c->handler(c->handler_arg, "MQTT_EVENTS", (int32_t)e->event_id, e);
    }
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    /* reads the caller's memory now, like the transport and the CONNECT packet do */
    snprintf(dst, cap, "%s", src ? src : "");
}

/* esp_mqtt_task: MQTT_API_LOCK around the state machine, the connect and every dispatch. */
static void *mqtt_task(void *p)
{
    esp_mqtt_client_handle_t c = p;
    for (;;) {
        pthread_mutex_lock(&c->api);
        if (!c->run) {
            pthread_mutex_unlock(&c->api);
            break;
        }
        esp_mqtt_event_t e = {0};
        if (c->state == ST_INIT) {
            e.event_id = MQTT_EVENT_BEFORE_CONNECT;
            dispatch(c, &e);
            pthread_mutex_lock(&g_broker_mu);
            int delay = g_connect_ms;
            pthread_mutex_unlock(&g_broker_mu);
            sleep_ms(delay); /* esp_transport_connect, TLS handshake included */
            hm_connection_t conn;
            memset(&conn, 0, sizeof(conn));
#ifdef HM_ESP8266
            /* the flat configuration of esp-mqtt 01594bf (host, port, transport, lwt_*) */
            copy_str(conn.host, sizeof(conn.host), c->cfg.host);
            conn.port = c->cfg.port;
            conn.transport = c->cfg.transport;
            copy_str(conn.client_id, sizeof(conn.client_id), c->cfg.client_id);
            copy_str(conn.username, sizeof(conn.username), c->cfg.username);
            copy_str(conn.password, sizeof(conn.password), c->cfg.password);
            if (c->cfg.cert_pem) {
                copy_str(conn.ca, sizeof(conn.ca), c->cfg.cert_pem);
            }
            conn.bundle = false; /* v3.4: no certificate bundle */
            if (c->cfg.lwt_topic) {
                char will[256];
                copy_str(will, sizeof(will), c->cfg.lwt_topic);
                if (c->cfg.lwt_msg) {
                    copy_str(will, sizeof(will), c->cfg.lwt_msg);
                }
            }
#else
            copy_str(conn.host, sizeof(conn.host), c->cfg.broker.address.hostname);
            conn.port = c->cfg.broker.address.port;
            conn.transport = c->cfg.broker.address.transport;
            copy_str(conn.client_id, sizeof(conn.client_id), c->cfg.credentials.client_id);
            copy_str(conn.username, sizeof(conn.username), c->cfg.credentials.username);
            copy_str(conn.password, sizeof(conn.password), c->cfg.credentials.authentication.password);
            if (c->cfg.broker.verification.certificate) {
                copy_str(conn.ca, sizeof(conn.ca), c->cfg.broker.verification.certificate);
            }
            conn.bundle = c->cfg.broker.verification.crt_bundle_attach != NULL;
            if (c->cfg.session.last_will.topic) {
                char will[256];
                copy_str(will, sizeof(will), c->cfg.session.last_will.topic);
                if (c->cfg.session.last_will.msg) {
                    copy_str(will, sizeof(will), c->cfg.session.last_will.msg);
                }
            }
#endif
            pthread_mutex_lock(&g_broker_mu);
            bool ok = !g_refuse;
            if (conn.transport == MQTT_TRANSPORT_OVER_SSL) {
                ok = ok && (g_broker_ca ? strcmp(conn.ca, g_broker_ca) == 0 : conn.bundle);
            }
            g_connections++;
            g_last_conn = conn;
            pthread_mutex_unlock(&g_broker_mu);
            if (ok) {
                c->state = ST_CONNECTED;
                e.event_id = MQTT_EVENT_CONNECTED;
                dispatch(c, &e);
            } else {
                c->state = ST_WAIT;
                e.event_id = MQTT_EVENT_ERROR;
                dispatch(c, &e);
                e.event_id = MQTT_EVENT_DISCONNECTED;
                dispatch(c, &e);
            }
        } else if (c->state == ST_CONNECTED) {
            if (c->disconnect_req) {
                c->state = ST_WAIT;
                e.event_id = MQTT_EVENT_DISCONNECTED;
                dispatch(c, &e);
            } else {
                int64_t now = now_ms();
                for (int i = 0; i < c->npubacks;) {
                    if (c->pubacks[i].due <= now) {
                        e.event_id = MQTT_EVENT_PUBLISHED;
                        e.msg_id = c->pubacks[i].mid;
                        c->pubacks[i] = c->pubacks[--c->npubacks];
                        dispatch(c, &e);
                    } else {
                        i++;
                    }
                }
                msg_t m = {0};
                int frag = 0;
                pthread_mutex_lock(&g_broker_mu);
                if (c->subscribed && g_inbox_n > 0) {
                    m = g_inbox[0];
                    frag = g_inbox_frag[0];
                    memmove(g_inbox, g_inbox + 1, sizeof(g_inbox[0]) * (size_t)(g_inbox_n - 1));
                    memmove(g_inbox_frag, g_inbox_frag + 1, sizeof(int) * (size_t)(g_inbox_n - 1));
                    g_inbox_n--;
                }
                pthread_mutex_unlock(&g_broker_mu);
                if (m.topic) {
                    /* mqtt_client.c deliver_publish: the topic only with the first chunk */
                    for (size_t off = 0; off < m.len || (m.len == 0 && off == 0);) {
                        size_t n = m.len - off < (size_t)frag ? m.len - off : (size_t)frag;
                        esp_mqtt_event_t d = {0};
                        d.event_id = MQTT_EVENT_DATA;
                        d.topic = off == 0 ? m.topic : NULL;
                        d.topic_len = off == 0 ? (int)strlen(m.topic) : 0;
                        d.data = m.payload + off;
                        d.data_len = (int)n;
                        d.total_data_len = (int)m.len;
                        d.current_data_offset = (int)off;
                        dispatch(c, &d);
                        off += n;
                        if (n == 0) break;
                    }
                    free(m.topic);
                    free(m.payload);
                }
            }
        }
        pthread_mutex_unlock(&c->api);
        sleep_ms(2); /* esp_transport_poll_read, outside the lock */
    }
    return NULL;
}

esp_mqtt_client_handle_t esp_mqtt_client_init(const esp_mqtt_client_config_t *config)
{
    struct esp_mqtt_client *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->cfg = *config;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->api, &a);
    pthread_mutexattr_destroy(&a);
    return c;
}

esp_err_t esp_mqtt_client_register_event(esp_mqtt_client_handle_t client, esp_mqtt_event_id_t event,
                                         esp_event_handler_t handler, void *arg)
{
    (void)event;
    pthread_mutex_lock(&client->api);
    client->handler = handler;
    client->handler_arg = arg;
    pthread_mutex_unlock(&client->api);
    return ESP_OK;
}

esp_err_t esp_mqtt_client_start(esp_mqtt_client_handle_t c)
{
    pthread_mutex_lock(&c->api);
    if (c->started) {
        pthread_mutex_unlock(&c->api);
        return ESP_FAIL;
    }
    c->started = true;
    c->run = true;
    c->state = ST_INIT;
    pthread_mutex_unlock(&c->api);
    return pthread_create(&c->th, NULL, mqtt_task, c) == 0 ? ESP_OK : ESP_FAIL;
}

esp_err_t esp_mqtt_client_disconnect(esp_mqtt_client_handle_t c)
{
    pthread_mutex_lock(&c->api);
    c->disconnect_req = true;
    pthread_mutex_unlock(&c->api);
    return ESP_OK;
}

esp_err_t esp_mqtt_client_stop(esp_mqtt_client_handle_t c)
{
    pthread_mutex_lock(&c->api);
    if (!c->started) {
        pthread_mutex_unlock(&c->api);
        return ESP_FAIL;
    }
    if (pthread_equal(pthread_self(), c->th)) {
        pthread_mutex_unlock(&c->api);
        return ESP_FAIL; /* "Client cannot be stopped from MQTT task" */
    }
    c->run = false;
    c->started = false;
    pthread_mutex_unlock(&c->api);
    pthread_join(c->th, NULL); /* xEventGroupWaitBits(STOPPED_BIT) */
    return ESP_OK;
}

esp_err_t esp_mqtt_client_destroy(esp_mqtt_client_handle_t c)
{
    if (c == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    esp_mqtt_client_stop(c);
    pthread_mutex_destroy(&c->api);
    free(c);
    return ESP_OK;
}

#ifdef HM_ESP8266
int esp_mqtt_client_subscribe(esp_mqtt_client_handle_t c, const char *topic, int qos)
#else
int esp_mqtt_client_subscribe_single(esp_mqtt_client_handle_t c, const char *topic, int qos)
#endif
{
    (void)topic;
    (void)qos;
    pthread_mutex_lock(&c->api);
    int mid = -1;
    if (c->state == ST_CONNECTED) {
        c->subscribed = true;
        mid = ++c->next_mid;
    }
    pthread_mutex_unlock(&c->api);
    return mid;
}

/* esp_mqtt_client_enqueue (ESP-IDF) and esp_mqtt_client_publish (both): under the API lock */
static int mqtt_publish(esp_mqtt_client_handle_t c, const char *topic, const char *data, int len, int qos,
                        int retain, bool store)
{
    (void)retain;
    (void)store;
    pthread_mutex_lock(&c->api);
    int mid = ++c->next_mid;
    if (c->state == ST_CONNECTED) {
        pthread_mutex_lock(&g_broker_mu);
        if (g_published_n == g_published_cap) {
            g_published_cap = g_published_cap ? g_published_cap * 2 : 64;
            g_published = realloc(g_published, sizeof(msg_t) * (size_t)g_published_cap);
        }
        msg_t *m = &g_published[g_published_n++];
        m->topic = strdup(topic);
        m->payload = malloc((size_t)len + 1);
        memcpy(m->payload, data, (size_t)len);
        m->payload[len] = '\0';
        m->len = (size_t)len;
        int delay = g_puback_ms;
        pthread_cond_broadcast(&g_broker_cv);
        pthread_mutex_unlock(&g_broker_mu);
        if (qos > 0 && c->npubacks < 64) {
            c->pubacks[c->npubacks++] = (puback_t){mid, now_ms() + delay};
        }
    }
    pthread_mutex_unlock(&c->api);
    return qos > 0 ? mid : 0;
}

#ifndef HM_ESP8266 /* not in esp-mqtt 01594bf */
int esp_mqtt_client_enqueue(esp_mqtt_client_handle_t c, const char *topic, const char *data, int len, int qos,
                            int retain, bool store)
{
    return mqtt_publish(c, topic, data, len, qos, retain, store);
}
#endif

int esp_mqtt_client_publish(esp_mqtt_client_handle_t c, const char *topic, const char *data, int len, int qos,
                            int retain)
{
    return mqtt_publish(c, topic, data, len, qos, retain, true);
}

/* ================= crypto (OpenSSL) ================= */

void mbedtls_sha256_init(mbedtls_sha256_context *c) { c->md = EVP_MD_CTX_new(); }
#ifdef HM_ESP8266 /* Mbed TLS 2.x: the _ret calls */
#define mbedtls_sha256_starts mbedtls_sha256_starts_ret
#define mbedtls_sha256_update mbedtls_sha256_update_ret
#define mbedtls_sha256_finish mbedtls_sha256_finish_ret
typedef mbedtls_cipher_id_t hm_cipher_id_t;
#else
typedef int hm_cipher_id_t;
#endif
int mbedtls_sha256_starts(mbedtls_sha256_context *c, int is224)
{
    (void)is224;
    return EVP_DigestInit_ex(c->md, EVP_sha256(), NULL) == 1 ? 0 : -1;
}
int mbedtls_sha256_update(mbedtls_sha256_context *c, const unsigned char *in, size_t len)
{
    return EVP_DigestUpdate(c->md, in, len) == 1 ? 0 : -1;
}
int mbedtls_sha256_finish(mbedtls_sha256_context *c, unsigned char out[32])
{
    unsigned n = 32;
    return EVP_DigestFinal_ex(c->md, out, &n) == 1 ? 0 : -1;
}
void mbedtls_sha256_free(mbedtls_sha256_context *c) { EVP_MD_CTX_free(c->md); c->md = NULL; }
void mbedtls_gcm_init(mbedtls_gcm_context *c) { memset(c, 0, sizeof(*c)); }
int mbedtls_gcm_setkey(mbedtls_gcm_context *c, hm_cipher_id_t cipher, const unsigned char *key, unsigned bits)
{
    if (cipher != MBEDTLS_CIPHER_ID_AES || bits != 256) {
        return -1;
    }
    memcpy(c->key, key, 32);
    return 0;
}
int mbedtls_gcm_auth_decrypt(mbedtls_gcm_context *c, size_t len, const unsigned char *iv, size_t iv_len,
                             const unsigned char *add, size_t add_len, const unsigned char *tag, size_t tag_len,
                             const unsigned char *input, unsigned char *output)
{
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    int n = 0, ok = EVP_DecryptInit_ex(x, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
                    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_IVLEN, (int)iv_len, NULL) == 1 &&
                    EVP_DecryptInit_ex(x, NULL, NULL, c->key, iv) == 1 &&
                    EVP_DecryptUpdate(x, NULL, &n, add, (int)add_len) == 1 &&
                    EVP_DecryptUpdate(x, output, &n, input, (int)len) == 1 &&
                    EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, (int)tag_len, (void *)tag) == 1 &&
                    EVP_DecryptFinal_ex(x, output + n, &n) == 1;
    EVP_CIPHER_CTX_free(x);
    return ok ? 0 : -0x12;
}
void mbedtls_gcm_free(mbedtls_gcm_context *c) { memset(c, 0, sizeof(*c)); }
int sodium_init(void) { return 0; }
int crypto_sign_ed25519_verify_detached(const unsigned char *sig, const unsigned char *m, unsigned long long mlen,
                                        const unsigned char *pk)
{
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, 32);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = key && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestVerify(md, sig, 64, m, (size_t)mlen) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}
