/* A counting allocator behind the core's espadmin_malloc seam (util.h), for the heap tests:
 * live and peak bytes requested by the core, and failure injection. Single-threaded. */
#ifndef ALLOC_COUNT_H
#define ALLOC_COUNT_H

#include <stddef.h>

/* Bytes the core holds now, and the most it held since the last alloc_reset_peak. Only the
 * bytes asked for are counted (not the allocator's own headers). */
size_t alloc_live(void);
size_t alloc_peak(void);
void alloc_reset_peak(void);
/* Allocation calls since the start. */
size_t alloc_calls(void);
/* Makes the n-th allocation from now on fail (n ≥ 1); 0 turns failures off. */
void alloc_fail_nth(size_t n);
/* Whether an injected failure happened since alloc_fail_nth. */
int alloc_failed(void);

#endif
