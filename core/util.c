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

int rmq_parse_u64(const char *p, size_t n, int allow_suffix, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	if (n && allow_suffix) {
		switch (p[n - 1]) {
		case 'k': case 'K': mul = 1024; n--; break;
		case 'm': case 'M': mul = 1024 * 1024; n--; break;
		case 'g': case 'G': mul = 1024ULL * 1024 * 1024; n--; break;
		default: break;
		}
	}
	if (n == 0 || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (mul > 1 && v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}

size_t rmq_u64toa(uint64_t v, char *buf)
{
	char tmp[21];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}
