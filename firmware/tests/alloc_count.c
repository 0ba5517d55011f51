/* The counting allocator: each block carries its size in a header aligned for any type. */
#include "alloc_count.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef union {
    size_t size;
    max_align_t align;
} header_t;

static size_t g_live, g_peak, g_calls, g_fail_in;
static int g_failed;

size_t alloc_live(void) { return g_live; }
size_t alloc_peak(void) { return g_peak; }
void alloc_reset_peak(void) { g_peak = g_live; }
size_t alloc_calls(void) { return g_calls; }
int alloc_failed(void) { return g_failed; }

void alloc_fail_nth(size_t n)
{
    g_fail_in = n;
    g_failed = 0;
}

void *espadmin_malloc(size_t size)
{
    g_calls++;
    if (g_fail_in > 0 && --g_fail_in == 0) {
        g_failed = 1;
        return NULL;
    }
    header_t *h = malloc(sizeof(header_t) + size);
    if (h == NULL) {
        return NULL;
    }
    h->size = size;
    g_live += size;
    if (g_live > g_peak) {
        g_peak = g_live;
    }
    return h + 1;
}

void *espadmin_calloc(size_t count, size_t size)
{
    if (size != 0 && count > (size_t)-1 / size) {
        return NULL;
    }
    void *p = espadmin_malloc(count * size);
    if (p != NULL) {
        memset(p, 0, count * size);
    }
    return p;
}

void espadmin_free(void *ptr)
{
    if (ptr == NULL) {
        return;
    }
    header_t *h = (header_t *)ptr - 1;
    g_live -= h->size;
    free(h);
}
