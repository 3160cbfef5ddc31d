/* platform.h - allocator and kernel specifics in one place: glibc malloc
 * tuning and trimming, and the MADV_POPULATE_WRITE page pre-fault. Each
 * has a no-op fallback where the platform lacks it (another libc, an old
 * kernel), as Redis's zmalloc.c does for jemalloc.
 *
 * Process-wide settings are the executable's choice, not a library's:
 * ringmq-server's main() calls rmq_platform_tune_malloc(); rmq_server_run()
 * and in-process drivers (tests) do not.
 */
#ifndef RMQ_PLATFORM_H
#define RMQ_PLATFORM_H

#include <stddef.h>

/* Tunes glibc malloc for a broker: blocks up to 4 MiB (log segments) come
 * from the heap rather than fresh mmaps, and up to 64 MiB of free heap top
 * stays mapped while busy. Process-wide; call once from main() before the
 * threads start. No-op without glibc. */
void rmq_platform_tune_malloc(void);

/* Hands memory freed by this thread's allocations back to the kernel: the
 * free pages inside every malloc arena and, after rmq_platform_tune_malloc,
 * the free top of this thread's heap (see platform.c). For a thread that
 * has gone idle: it costs a walk of the heap. No-op without glibc. */
void rmq_platform_trim_idle(void);

/* Faults the pages of [addr, addr + len) in for writing with one system
 * call instead of one page fault per page. addr and len are page-aligned.
 * Best effort: a kernel before 5.14 (no MADV_POPULATE_WRITE) or another
 * platform leaves the pages to be faulted in as they are written. */
void rmq_platform_populate_write(void *addr, size_t len);

#endif
