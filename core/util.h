/* util.h - allocation that dies loudly, hashing, small helpers.
 *
 * rmq_malloc/rmq_calloc/rmq_realloc abort the process on OOM, so callers
 * never check for NULL. Code that must survive OOM (topic creation, where a
 * client asked for something big) uses plain calloc and checks.
 */
#ifndef RMQ_UTIL_H
#define RMQ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "parse.h"
#include "ringmq_version.h"

#define RMQ_VERSION RINGMQ_VERSION /* project(VERSION), CMakeLists.txt */
#define RMQ_CACHELINE 64
#define RMQ_UNUSED(x) ((void)(x))
#define RMQ_LIKELY(x) __builtin_expect(!!(x), 1)
#define RMQ_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ThreadSanitizer annotations for a hand-off TSan cannot see (Concurrency
 * Kit's ck_pr is inline assembly): RMQ_TSAN_RELEASE(p) before publishing
 * through such a channel, RMQ_TSAN_ACQUIRE(p) after taking something from
 * it, both on the same address. No-ops unless built with TSan. */
#if defined(__SANITIZE_THREAD__)
#define RMQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RMQ_TSAN 1
#endif
#endif
#ifdef RMQ_TSAN
#include <sanitizer/tsan_interface.h>
#define RMQ_TSAN_RELEASE(p) __tsan_release(p)
#define RMQ_TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define RMQ_TSAN_RELEASE(p) ((void)(p))
#define RMQ_TSAN_ACQUIRE(p) ((void)(p))
#endif

void *rmq_malloc(size_t n);
void *rmq_calloc(size_t nmemb, size_t n);
void *rmq_realloc(void *p, size_t n);
char *rmq_memdup(const void *p, size_t n); /* NUL-terminated copy */

/* 64-bit hash of a byte string (FNV-1a over 8-byte words, then a
 * murmur3 finaliser). Stable for the life of the process; never 0. */
uint64_t rmq_hash(const void *p, size_t n);

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t rmq_now_ns(void);
static inline uint64_t rmq_now_ms(void) { return rmq_now_ns() / 1000000u; }

/* Parses a decimal unsigned integer occupying exactly [p, p+n); with
 * allow_suffix, a byte size with a K/M/G suffix (powers of 1024) and an
 * optional B. rmq_parse_uint() (common/parse.h) with RMQ_UNIT_BYTES or
 * RMQ_UNIT_NONE: 0 on success, -1 on anything else (empty, sign, overflow,
 * junk). */
static inline int rmq_parse_u64(const char *p, size_t n, int allow_suffix, uint64_t *out)
{
	return rmq_parse_uint(p, n, allow_suffix ? RMQ_UNIT_BYTES : RMQ_UNIT_NONE, out);
}

/* Writes the decimal form of v to buf (at least 21 bytes); returns length. */
size_t rmq_u64toa(uint64_t v, char *buf);

#endif
