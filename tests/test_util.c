/* test_util.c - unit tests for core/util.c: rmq_parse_u64 (digits, K/M/G
 * suffixes, overflow, junk), rmq_u64toa at every digit-count edge,
 * rmq_hash (deterministic, length-sensitive, never 0), rmq_memdup and the
 * allocators, the monotonic clock, rmq_glob_covers (cases, and soundness
 * against rmq_glob_match exhaustively over small patterns).
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* --- rmq_parse_u64 --- */

#define NOT_WRITTEN 0x5a5a5a5a5a5a5a5aULL

/* Parses the whole string s; *out is NOT_WRITTEN unless it succeeded. */
static int parse(const char *s, int suffix, uint64_t *out)
{
	*out = NOT_WRITTEN;
	return rmq_parse_u64(s, strlen(s), suffix, out);
}

static void parses(const char *s, int suffix, uint64_t want)
{
	uint64_t v;
	cr_assert_eq(parse(s, suffix, &v), 0, "'%s' (suffix %d) refused", s, suffix);
	cr_assert_eq(v, want, "'%s' (suffix %d): %" PRIu64 ", want %" PRIu64, s, suffix, v, want);
}

static void refuses(const char *s, int suffix)
{
	uint64_t v;
	cr_assert_eq(parse(s, suffix, &v), -1, "'%s' (suffix %d) accepted as %" PRIu64, s, suffix,
		     v);
	cr_assert_eq(v, NOT_WRITTEN, "'%s': *out written on failure", s);
}

Test(util, parse_u64_digits)
{
	for (int suffix = 0; suffix <= 1; suffix++) {
		parses("0", suffix, 0);
		parses("7", suffix, 7);
		parses("42", suffix, 42);
		parses("1000000", suffix, 1000000);
		parses("007", suffix, 7);
		parses("00000000000000000001", suffix, 1); /* 20 characters */
		/* leading zeros do not count towards overflow (common/parse.c) */
		parses("000000000000000000000000000001", suffix, 1);
		parses("4294967296", suffix, 4294967296ULL);
		parses("18446744073709551615", suffix, UINT64_MAX);
	}
}

Test(util, parse_u64_overflow)
{
	for (int suffix = 0; suffix <= 1; suffix++) {
		refuses("18446744073709551616", suffix); /* UINT64_MAX + 1 */
		refuses("18446744073709551620", suffix);
		refuses("19000000000000000000", suffix);
		refuses("99999999999999999999", suffix);
		refuses("184467440737095516150", suffix);
	}
}

Test(util, parse_u64_junk)
{
	static const char *const junk[] = { "",    "-1",   "+1",  " 1",   "1 ",    "1.5", "0x10",
					    "1e3", "abc",  "12a", "a12",  "1_000", "٣",   "1\t",
					    "K",   "1KBB", "1T",  "1.5K", "-1K",   "K1",  "1KK" };
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		for (int suffix = 0; suffix <= 1; suffix++)
			refuses(junk[i], suffix);
	/* an embedded NUL is junk too: the length, not a terminator, counts */
	uint64_t v = NOT_WRITTEN;
	cr_assert_eq(rmq_parse_u64("12\0"
				   "3",
				   4, 0, &v),
		     -1);
	cr_assert_eq(v, NOT_WRITTEN);
}

Test(util, parse_u64_suffixes)
{
	parses("0K", 1, 0);
	parses("1K", 1, 1024);
	parses("1k", 1, 1024);
	parses("64K", 1, 65536);
	parses("1M", 1, 1048576);
	parses("1m", 1, 1048576);
	parses("256M", 1, 268435456);
	parses("1G", 1, 1073741824);
	parses("1g", 1, 1073741824);
	parses("3G", 1, 3221225472ULL);
	/* the largest multiples that fit */
	parses("18014398509481983K", 1, 18014398509481983ULL * 1024);
	parses("17592186044415M", 1, 17592186044415ULL << 20);
	parses("17179869183G", 1, 17179869183ULL << 30);
	/* one more overflows */
	refuses("18014398509481984K", 1);
	refuses("17592186044416M", 1);
	refuses("17179869184G", 1);
	refuses("18446744073709551615K", 1);
	/* without allow_suffix a suffix is junk */
	refuses("1K", 0);
	refuses("1M", 0);
	refuses("1G", 0);
	refuses("1k", 0);
	/* a size may end in B (common/parse.c: one grammar for every tool) */
	parses("1KB", 1, 1024);
	parses("64kb", 1, 65536);
	refuses("1KB", 0);
}

/* Only [p, p + n) is read: the bytes after it are not part of the number. */
Test(util, parse_u64_exact_range)
{
	uint64_t v;
	cr_assert_eq(rmq_parse_u64("12345", 3, 0, &v), 0);
	cr_assert_eq(v, 123);
	cr_assert_eq(rmq_parse_u64("12Kx", 3, 1, &v), 0);
	cr_assert_eq(v, 12 * 1024);
	cr_assert_eq(rmq_parse_u64("9x", 1, 0, &v), 0);
	cr_assert_eq(v, 9);
	v = NOT_WRITTEN;
	cr_assert_eq(rmq_parse_u64("5", 0, 1, &v), -1);
	cr_assert_eq(v, NOT_WRITTEN);
	/* a buffer with no terminator at all (ASan would see a read past it) */
	char *p = malloc(4);
	cr_assert_not_null(p);
	memcpy(p, "4096", 4);
	cr_assert_eq(rmq_parse_u64(p, 4, 1, &v), 0);
	cr_assert_eq(v, 4096);
	free(p);
}

/* --- rmq_u64toa --- */

/* Formats v into a buffer poisoned with '#': the digits must match
 * snprintf's, the return value their count, and nothing after them (nor
 * a NUL) may be written. */
static void toa_matches(uint64_t v)
{
	char got[32], want[32];
	memset(got, '#', sizeof(got));
	int wn = snprintf(want, sizeof(want), "%" PRIu64, v);
	size_t n = rmq_u64toa(v, got);
	cr_assert_eq(n, (size_t)wn, "%" PRIu64 ": length %zu, want %d", v, n, wn);
	cr_assert(memcmp(got, want, n) == 0, "%" PRIu64 ": '%.*s'", v, (int)n, got);
	for (size_t i = n; i < sizeof(got); i++)
		cr_assert_eq(got[i], '#', "%" PRIu64 ": byte %zu written", v, i);
}

Test(util, u64toa_exact_values)
{
	char buf[21];
	size_t n = rmq_u64toa(0, buf);
	cr_assert_eq(n, 1);
	cr_assert(memcmp(buf, "0", 1) == 0);
	n = rmq_u64toa(UINT64_MAX, buf);
	cr_assert_eq(n, 20);
	cr_assert(memcmp(buf, "18446744073709551615", 20) == 0);
	n = rmq_u64toa(1000000007, buf);
	cr_assert_eq(n, 10);
	cr_assert(memcmp(buf, "1000000007", 10) == 0);
	n = rmq_u64toa(10, buf);
	cr_assert_eq(n, 2);
	cr_assert(memcmp(buf, "10", 2) == 0);
}

/* Every digit-count boundary (10^k - 1, 10^k, 10^k + 1), the single
 * digits and pairs the table covers, and a spread of other values. */
Test(util, u64toa_edges)
{
	for (uint64_t v = 0; v < 1000; v++)
		toa_matches(v);
	uint64_t p = 10;
	for (int k = 1; k <= 19; k++, p *= 10) {
		toa_matches(p - 1);
		toa_matches(p);
		toa_matches(p + 1);
		toa_matches(p * 5 - 1);
	}
	toa_matches(UINT64_MAX);
	toa_matches(UINT64_MAX - 1);
	toa_matches((uint64_t)INT64_MAX);
	toa_matches((uint64_t)INT64_MAX + 1);
	toa_matches(UINT32_MAX);
	toa_matches((uint64_t)UINT32_MAX + 1);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 100000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		toa_matches(x >> (i % 64)); /* every magnitude */
	}
}

/* --- rmq_hash --- */

Test(util, hash_deterministic_and_alignment_free)
{
	/* The same bytes at every alignment hash alike (words are loaded with
	 * memcpy, not through casts). */
	static const char text[] = "orders.eu-west.priority-high/2024";
	size_t n = sizeof(text) - 1;
	uint64_t h = rmq_hash(text, n);
	cr_assert_eq(rmq_hash(text, n), h);
	char *buf = malloc(n + 16);
	cr_assert_not_null(buf);
	for (size_t off = 0; off < 16; off++) {
		memcpy(buf + off, text, n);
		cr_assert_eq(rmq_hash(buf + off, n), h, "offset %zu", off);
	}
	free(buf);
	/* a prefix is a different string */
	for (size_t k = 0; k < n; k++)
		cr_assert_neq(rmq_hash(text, k), h, "prefix of %zu bytes", k);
}

/* Trailing NULs change the hash: the tail word is zero-padded, so the
 * length has to count (it is mixed into the seed). */
Test(util, hash_length_counts)
{
	static const char zeros[80];
	uint64_t seen[sizeof(zeros) + 1];
	for (size_t n = 0; n <= sizeof(zeros); n++) {
		seen[n] = rmq_hash(zeros, n);
		for (size_t m = 0; m < n; m++)
			cr_assert_neq(seen[m], seen[n], "%zu and %zu NULs collide", m, n);
	}
	cr_assert_neq(rmq_hash("abc", 3), rmq_hash("abc\0", 4));
	cr_assert_neq(rmq_hash("abcdefgh", 8), rmq_hash("abcdefgh\0", 9));
}

/* Inputs that differ in one byte, anywhere, hash differently. */
Test(util, hash_one_byte_differences)
{
	uint64_t h1[256];
	for (int c = 0; c < 256; c++) {
		unsigned char b = (unsigned char)c;
		h1[c] = rmq_hash(&b, 1);
		cr_assert_neq(h1[c], 0);
		for (int d = 0; d < c; d++)
			cr_assert_neq(h1[c], h1[d], "bytes %d and %d collide", c, d);
	}
	char a[40], b[40];
	memset(a, 'x', sizeof(a));
	uint64_t ha = rmq_hash(a, sizeof(a));
	for (size_t i = 0; i < sizeof(a); i++) {
		memcpy(b, a, sizeof(a));
		b[i] ^= 1;
		cr_assert_neq(rmq_hash(b, sizeof(b)), ha, "flip at byte %zu", i);
	}
}

/* rmq_hash never returns 0 (callers use 0 as "no hash"): SipHash's 0 is
 * mapped to 1 in core/util.c; with a keyed hash no input can be built to
 * reach it, so that mapping is checked by reading, not here. */

/* --- memory --- */

Test(util, memdup_copies_and_terminates)
{
	static const char src[] = { 'a', '\0', '\r', '\n', (char)0xff, 'z' };
	char *in = malloc(sizeof(src)); /* exactly sized: ASan sees any over-read */
	cr_assert_not_null(in);
	memcpy(in, src, sizeof(src));
	char *d = rmq_memdup(in, sizeof(src));
	cr_assert_neq(d, in);
	cr_assert(memcmp(d, src, sizeof(src)) == 0);
	cr_assert_eq(d[sizeof(src)], '\0');
	cr_assert(memcmp(in, src, sizeof(src)) == 0, "source changed");
	free(in);
	d[0] = 'b'; /* writable, and ours */
	free(d);

	char *e = rmq_memdup("xyz", 0);
	cr_assert_not_null(e);
	cr_assert_eq(e[0], '\0');
	free(e);

	char *f = rmq_memdup("topic-name", 5);
	cr_assert_str_eq(f, "topic");
	free(f);
}

Test(util, allocators)
{
	char *p = rmq_malloc(0); /* never NULL, freeable */
	cr_assert_not_null(p);
	free(p);
	unsigned char *z = rmq_calloc(1000, 3);
	for (size_t i = 0; i < 3000; i++)
		cr_assert_eq(z[i], 0, "byte %zu not zeroed", i);
	free(z);
	char *r = rmq_realloc(NULL, 4);
	memcpy(r, "abcd", 4);
	r = rmq_realloc(r, 1 << 20);
	cr_assert(memcmp(r, "abcd", 4) == 0, "realloc lost the contents");
	r = rmq_realloc(r, 0); /* a valid, freeable pointer */
	cr_assert_not_null(r);
	free(r);
}

/* OOM aborts instead of returning NULL. ASan's allocator reports an
 * impossible size as an error of its own instead of returning NULL. */
#if defined(__SANITIZE_ADDRESS__)
#define UTIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UTIL_ASAN 1
#endif
#endif
#ifndef UTIL_ASAN
Test(util, malloc_oom_aborts, .signal = SIGABRT)
{
	volatile size_t huge = SIZE_MAX - 4096;
	void *p = rmq_malloc(huge);
	free(p); /* not reached */
}

Test(util, calloc_overflow_aborts, .signal = SIGABRT)
{
	volatile size_t huge = SIZE_MAX / 2;
	void *p = rmq_calloc(huge, 4);
	free(p); /* not reached */
}
#endif

/* --- clock --- */

Test(util, clock_is_monotonic)
{
	uint64_t a = rmq_now_ns();
	uint64_t ms = rmq_now_ms();
	struct timespec ts = { 0, 20 * 1000000L };
	while (nanosleep(&ts, &ts) != 0)
		;
	uint64_t b = rmq_now_ns();
	cr_assert_geq(b - a, 20u * 1000000u, "slept 20 ms, clock moved %" PRIu64 " ns", b - a);
	cr_assert_geq(rmq_now_ms(), ms + 20);
	cr_assert_geq(ms, a / 1000000u, "the ms clock behind the ns clock");
	for (int i = 0; i < 10000; i++) {
		uint64_t c = rmq_now_ns();
		cr_assert_geq(c, b);
		b = c;
	}
}

/* --- rmq_glob_covers --- */

static bool covers(const char *u, const char *p)
{
	return rmq_glob_covers(u, strlen(u), p, strlen(p));
}

Test(util, glob_covers_cases)
{
	/* what a user's topic patterns must allow a PSUBSCRIBE */
	cr_assert(covers("*", "*"));
	cr_assert(covers("*", "a?[bc]\\*"));
	cr_assert(covers("news.*", "news.*"));
	cr_assert(covers("news.*", "news.eu.*"));
	cr_assert(covers("news.*", "news.e?"));
	cr_assert(covers("news.*", "news.[ab]x"));
	cr_assert(covers("news.*", "news.eu"));
	cr_assert(covers("news.?", "news.[a-c]"));
	cr_assert(covers("news.[a-z]", "news.[b-d]"));
	cr_assert(covers("a*b*c", "a*b*c"));
	cr_assert(covers("a*c", "ab*bc"));
	cr_assert(covers("\\*", "\\*"));
	cr_assert(covers("*", ""));
	cr_assert(covers("x", "x"));
	cr_assert(covers("a**b", "a*b"));
	cr_assert(!covers("news.*", "*"));
	cr_assert(!covers("news.*", "news*"));
	cr_assert(!covers("news.*", "new?.*"));
	cr_assert(!covers("news.?", "news.*"));
	cr_assert(!covers("news.?", "news.??"));
	cr_assert(!covers("news.[a-c]", "news.?"));
	cr_assert(!covers("news.[b-d]", "news.[a-c]"));
	cr_assert(!covers("news.[^a]", "news.[a-c]"));
	cr_assert(covers("news.[^a]", "news.[b-c]"));
	cr_assert(!covers("\\*", "*"));
	cr_assert(!covers("a*b", "a*"));
	cr_assert(!covers("?*", ""));
	cr_assert(!covers("", "x"));
	cr_assert(covers("", ""));
	/* an unclosed class is a literal '[', as rmq_glob_match reads it */
	cr_assert(covers("a[*", "a[b"));
	cr_assert(!covers("a[b", "a[c"));
	/* conservative: a covering pair no token-by-token reading shows */
	cr_assert(!covers("*?", "?*"));
	/* too long for the check: never covered */
	char big[RMQ_GLOB_COVERS_MAX + 2];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cr_assert(!covers("*", big));
}

/* A pattern over a small alphabet, from the bits of r, into out (cap
 * bytes: 4 parts of at most 4 bytes fit in 17). */
static void small_glob(uint32_t r, char *out, size_t cap)
{
	static const char *const parts[] = { "a", "b", "*", "?", "[ab]", "[^a]", "\\*", "c" };
	size_t n = 1 + r % 4, len = 0;
	out[0] = '\0';
	r /= 4;
	for (size_t i = 0; i < n; i++, r /= 8)
		len += (size_t)snprintf(out + len, cap - len, "%s", parts[r % 8]);
}

/* Soundness, exhaustively over small cases: when u covers p, every string
 * of up to 5 bytes over {a, b, c, *} that p matches, u matches. */
Test(util, glob_covers_is_sound)
{
	static const char alpha[] = "abc*";
	uint32_t seed = 12345;
	size_t said_yes = 0;
	for (int k = 0; k < 3000; k++) {
		char u[32], p[32];
		seed = seed * 1103515245u + 12345u;
		small_glob(seed >> 8, u, sizeof(u));
		seed = seed * 1103515245u + 12345u;
		small_glob(seed >> 8, p, sizeof(p));
		if (!covers(u, p))
			continue;
		said_yes++;
		for (int len = 0; len <= 5; len++) {
			int total = 1;
			for (int i = 0; i < len; i++)
				total *= 4;
			for (int x = 0; x < total; x++) {
				char s[8];
				int v = x;
				for (int i = 0; i < len; i++, v /= 4)
					s[i] = alpha[v % 4];
				if (rmq_glob_match(p, strlen(p), s, (size_t)len))
					cr_assert(
						rmq_glob_match(u, strlen(u), s, (size_t)len),
						"'%s' said to cover '%s', but '%.*s' matches only the "
						"second",
						u, p, len, s);
			}
		}
	}
	cr_assert_gt(said_yes, 100u, "too few covering pairs to mean anything");
}
