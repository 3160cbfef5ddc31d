/* platform.c - see platform.h. */
#define _GNU_SOURCE
#include "platform.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
/* Tuning and trimming talk to glibc's malloc. A sanitizer brings its own
 * allocator, and glibc's arenas are then never set up: malloc_trim() from
 * two workers at once walked one half-initialised (ASan: SEGV in mtrim;
 * at exit, glibc aborted in __malloc_arena_thread_freeres). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RMQ_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
#define RMQ_SANITIZED 1
#endif
#endif
#if defined(__GLIBC__) && !defined(RMQ_SANITIZED)
#define RMQ_GLIBC_MALLOC 1
#include <malloc.h>
#endif

#if defined(__linux__) && !defined(MADV_POPULATE_WRITE)
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels say EINVAL */
#endif

#ifdef RMQ_GLIBC_MALLOC
/* M_TRIM_THRESHOLD while busy: free heap top kept mapped (see tune). */
#define TRIM_BUSY (64 << 20)
/* M_TRIM_THRESHOLD for a moment while idle (glibc's default). */
#define TRIM_IDLE (128 << 10)
/* Above tcache and fastbins, below the mmap threshold: carved from the
 * heap top. */
#define TRIM_PROBE (1u << 20)
#define MMAP_THRESHOLD (4 << 20)

static _Atomic bool tuned;
#endif

void rmq_platform_tune_malloc(void)
{
#ifdef RMQ_GLIBC_MALLOC
	/* Topic logs allocate and free segments of up to 1 MiB all the time.
	 * Past glibc's default (dynamic) mmap threshold each would be a fresh
	 * mmap, and freed heap tops are trimmed back to the kernel: either way
	 * every page of every new segment is faulted in again (a page fault
	 * per 4 KiB written, tens of ns per message at a few M msgs/s). Keep
	 * such blocks in the heap, and let up to 64 MiB of free heap top stay
	 * mapped (fan-out 1->10 dropped from 28 to 19 M msgs/s without it). */
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
	mallopt(M_TRIM_THRESHOLD, TRIM_BUSY);
	atomic_store_explicit(&tuned, true, memory_order_relaxed);
#endif
}

/* glibc keeps what is freed in the thread's malloc arena, and log segments
 * and connection buffers freed in any order leave holes there that free()
 * never returns: tests/soak measured 6-15 MB above the start-up RSS after
 * 60 s of load with every topic deleted, with about 230 KB still in use.
 * malloc_trim(0) hands the free pages inside every arena back, and the
 * free top of the main heap.
 *
 * The free top of a thread's own heap is another matter: glibc shrinks it
 * only from free(), once it passes M_TRIM_THRESHOLD, which tuning raised
 * to TRIM_BUSY. So the threshold is lowered for a moment and a block carved
 * from the heap top is freed, which makes free() give the top back (soak:
 * +18-26 MB left after the load without this, under 1 MB with it). Best
 * effort: if a free hole elsewhere served the block, the top stays for the
 * next idle period. Untuned, the threshold is glibc's own and free() has
 * trimmed the top already. */
void rmq_platform_trim_idle(void)
{
#ifdef RMQ_GLIBC_MALLOC
	if (atomic_load_explicit(&tuned, memory_order_relaxed)) {
		mallopt(M_TRIM_THRESHOLD, TRIM_IDLE);
		void *volatile probe = malloc(TRIM_PROBE); /* volatile: not elided */
		free(probe);
		mallopt(M_TRIM_THRESHOLD, TRIM_BUSY);
	}
	malloc_trim(0);
#endif
}

void rmq_platform_populate_write(void *addr, size_t len)
{
#ifdef MADV_POPULATE_WRITE
	(void)madvise(addr, len, MADV_POPULATE_WRITE);
#else
	(void)addr;
	(void)len;
#endif
}
