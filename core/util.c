/* util.c - see util.h. */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static void oom(size_t n)
{
	fprintf(stderr, "ringmq: out of memory allocating %zu bytes\n", n);
	abort();
}

void *rmq_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *rmq_calloc(size_t nmemb, size_t n)
{
	void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
	if (!p)
		oom(nmemb * n);
	return p;
}

void *rmq_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

char *rmq_memdup(const void *p, size_t n)
{
	char *q = rmq_malloc(n + 1);
	memcpy(q, p, n);
	q[n] = '\0';
	return q;
}

static inline uint64_t fmix64(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

uint64_t rmq_hash(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 0xcbf29ce484222325ULL ^ n;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		h = (h ^ w) * 0x100000001b3ULL;
		h ^= h >> 29;
		s += 8;
		n -= 8;
	}
	uint64_t w = 0;
	memcpy(&w, s, n);
	h = (h ^ w) * 0x100000001b3ULL;
	h = fmix64(h);
	return h ? h : 1;
}

uint64_t rmq_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Number of decimal digits of v (1 for 0). */
static inline size_t u64_digits(uint64_t v)
{
	size_t n = 1;
	for (;;) {
		if (v < 10)
			return n;
		if (v < 100)
			return n + 1;
		if (v < 1000)
			return n + 2;
		if (v < 10000)
			return n + 3;
		v /= 10000;
		n += 4;
	}
}

size_t rmq_u64toa(uint64_t v, char *buf)
{
	/* Two digits per division, written backwards into their final place:
	 * no reversal pass (this formats every reply's sequence number and
	 * every stored record's length). */
	static const char pairs[201] =
		"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
		"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
		"8081828384858687888990919293949596979899";
	size_t n = u64_digits(v), i = n;
	while (v >= 100) {
		size_t k = (size_t)(v % 100) * 2;
		v /= 100;
		buf[--i] = pairs[k + 1];
		buf[--i] = pairs[k];
	}
	if (v >= 10) {
		buf[--i] = pairs[v * 2 + 1];
		buf[--i] = pairs[v * 2];
	} else {
		buf[--i] = (char)('0' + v);
	}
	return n;
}
