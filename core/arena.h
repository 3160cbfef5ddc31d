/* arena.h - memory for many small, long-lived objects (topics).
 *
 * A broker may hold a million topics, created in bursts. From malloc, each
 * new 4 KiB of them is a page fault on first touch; on a VM that costs
 * microseconds, and a million topics took over a hundred thousand faults.
 * The arena carves objects out of 2 MiB chunks that are asked to be backed
 * by transparent huge pages and are populated in one system call, and keeps
 * freed objects on per-size free lists for the next ones. Chunks are never
 * returned to the kernel: memory freed by deleted topics serves later
 * topics.
 *
 * Sizes are rounded up to 64 bytes; an object is 64-byte aligned. Objects
 * larger than RMQ_ARENA_MAX come from malloc (and go back to it). The
 * returned memory is zeroed.
 *
 * Threads: any thread; a mutex guards the chunks and free lists (taken per
 * allocation and free, never on a message's path).
 */
#ifndef RMQ_ARENA_H
#define RMQ_ARENA_H

#include <stddef.h>

#define RMQ_ARENA_MAX 4096

/* Returns n zeroed bytes (64-byte aligned), or NULL when out of memory. */
void *rmq_arena_alloc(size_t n);

/* Frees p, allocated with rmq_arena_alloc(n) (the same n). NULL: no-op. */
void rmq_arena_free(void *p, size_t n);

#endif
