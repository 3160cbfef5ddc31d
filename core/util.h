/* util.h - allocation that dies loudly, hashing, small helpers.
 *
 * rmq_malloc/rmq_calloc/rmq_realloc abort the process on OOM, so callers
 * never check for NULL. Code that must survive OOM (topic creation, where a
 * client asked for something big) uses plain calloc and checks.
 */
#ifndef RMQ_UTIL_H
#define RMQ_UTIL_H

#include <stdbool.h>
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

/* 64-bit hash of a byte string: SipHash-1-3 under a key drawn from
 * getrandom() once per process, before main(). The topic table, its shard
 * choice and the durable subscriber registry hash client-chosen names
 * with it: an unkeyed (and invertible) hash let a client craft any number
 * of names that share one bucket (hash flooding, issue 12). Stable for
 * the life of the process, different in every process; never 0. */
uint64_t rmq_hash(const void *p, size_t n);

/* SipHash with an explicit 128-bit key (k0 = key bytes 0-7, k1 = bytes
 * 8-15, little-endian, as in the SipHash paper): 1-3 (what rmq_hash uses)
 * and the reference 2-4. For tests and tools; never 0 is NOT promised. */
uint64_t rmq_siphash13(uint64_t k0, uint64_t k1, const void *p, size_t n);
uint64_t rmq_siphash24(uint64_t k0, uint64_t k1, const void *p, size_t n);

/* Glob-style match of the whole of s against pattern p, as Redis's KEYS and
 * SCAN MATCH: '*' any run of bytes, '?' any byte, '[abc]' '[a-z]' a class
 * ('[^...]' or '[!...]' negated), a backslash makes the next byte literal. Binary-safe.
 * Worst case O(plen * slen) time (one backtracking point, never
 * exponential), no allocation. A malformed class ('[' unclosed) matches a
 * literal '['. */
bool rmq_glob_match(const char *p, size_t plen, const char *s, size_t slen);

/* Whether glob u covers glob p: every string p matches (rmq_glob_match),
 * u matches too. Conservative: true is always right, false may be said
 * of a few covering pairs that no token-by-token reading shows (u "*?"
 * and p "?*"). Patterns over RMQ_GLOB_COVERS_MAX bytes are never
 * covered. O(ulen * plen) time, allocates (false when out of memory). */
#define RMQ_GLOB_COVERS_MAX 1024
bool rmq_glob_covers(const char *u, size_t ulen, const char *p, size_t plen);

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t rmq_now_ns(void);
static inline uint64_t rmq_now_ms(void)
{
	return rmq_now_ns() / 1000000u;
}

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
