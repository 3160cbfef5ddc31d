/* util.c - see util.h. */
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

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

/* --- SipHash (Aumasson and Bernstein, "SipHash: a fast short-input PRF",
 * 2012), written from the paper: state v0..v3 from the key, one or more
 * SipRounds per 8-byte little-endian word, the last word carrying the
 * length in its top byte, then 0xff into v2 and the finalisation rounds. */

static inline uint64_t rotl64(uint64_t x, unsigned b)
{
	return (x << b) | (x >> (64 - b));
}

static inline void sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl64(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl64(v[0], 32);
	v[2] += v[3];
	v[3] = rotl64(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl64(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl64(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl64(v[2], 32);
}

static inline uint64_t load_le64(const unsigned char *p)
{
	uint64_t w;
	memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	w = __builtin_bswap64(w);
#endif
	return w;
}

/* c compression and d finalisation rounds; both are constants at every
 * call site, so the loops unroll. */
static inline __attribute__((always_inline)) uint64_t siphash(uint64_t k0, uint64_t k1,
							      const void *p, size_t n, int c, int d)
{
	const unsigned char *s = p;
	uint64_t v[4] = { k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
			  k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL };
	uint64_t b = (uint64_t)n << 56;
	for (; n >= 8; n -= 8, s += 8) {
		uint64_t m = load_le64(s);
		v[3] ^= m;
		for (int i = 0; i < c; i++)
			sipround(v);
		v[0] ^= m;
	}
	for (size_t i = 0; i < n; i++) /* the 0..7 bytes left */
		b |= (uint64_t)s[i] << (8 * i);
	v[3] ^= b;
	for (int i = 0; i < c; i++)
		sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (int i = 0; i < d; i++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t rmq_siphash13(uint64_t k0, uint64_t k1, const void *p, size_t n)
{
	return siphash(k0, k1, p, n, 1, 3);
}

uint64_t rmq_siphash24(uint64_t k0, uint64_t k1, const void *p, size_t n)
{
	return siphash(k0, k1, p, n, 2, 4);
}

/* The process's key. Drawn before main() (so before any thread can hash)
 * and never changed: every hash of a name within the process agrees,
 * which the topic table and the shard choice (hash mod nshards) rely on. */
static uint64_t hash_k0, hash_k1;

__attribute__((constructor)) static void hash_key_init(void)
{
	uint64_t k[2] = { 0, 0 };
	size_t got = 0;
	while (got < sizeof(k)) {
		ssize_t r = getrandom((char *)k + got, sizeof(k) - got, GRND_NONBLOCK);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		break;
	}
	if (got < sizeof(k)) {
		/* No entropy yet (early boot) or no getrandom: something that
		 * differs per process and per run is still far better than a
		 * fixed key, and SipHash keeps it secret from the client. */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t mono = rmq_now_ns();
		k[0] ^= (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^ (uint64_t)ts.tv_sec ^ mono;
		k[1] ^= ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&ts ^
			(uint64_t)(uintptr_t)&hash_k0 ^ rotl64(mono, 29);
		fprintf(stderr,
			"ringmq: getrandom() gave no key for the name hash; using a weaker one\n");
	}
	hash_k0 = k[0];
	hash_k1 = k[1];
}

uint64_t rmq_hash(const void *p, size_t n)
{
	uint64_t h = siphash(hash_k0, hash_k1, p, n, 1, 3);
	return h ? h : 1;
}

/* Matches the class starting at p[i] == '[' against byte c. Sets *end to
 * the index just past the closing ']'; returns -1 if there is none (the
 * '[' is then an ordinary byte), else 1 on a match, 0 otherwise. */
static int glob_class(const char *p, size_t plen, size_t i, unsigned char c, size_t *end)
{
	size_t k = i + 1;
	bool neg = false, hit = false;
	if (k < plen && (p[k] == '^' || p[k] == '!')) {
		neg = true;
		k++;
	}
	bool first = true;
	for (; k < plen; first = false) {
		if (p[k] == ']' && !first) {
			*end = k + 1;
			return hit != neg;
		}
		unsigned char lo = (unsigned char)p[k];
		if (lo == '\\' && k + 1 < plen)
			lo = (unsigned char)p[++k];
		k++;
		unsigned char hi = lo;
		if (k + 1 < plen && p[k] == '-' && p[k + 1] != ']') {
			hi = (unsigned char)p[k + 1];
			k += 2;
			if (hi == '\\' && k < plen)
				hi = (unsigned char)p[k++];
			if (lo > hi) {
				unsigned char x = lo;
				lo = hi;
				hi = x;
			}
		}
		if (c >= lo && c <= hi)
			hit = true;
	}
	return -1;
}

bool rmq_glob_match(const char *p, size_t plen, const char *s, size_t slen)
{
	/* Classic wildcard matching: on a mismatch, go back to the last '*'
	 * and let it take one more byte. Only the last '*' matters, since
	 * whatever an earlier one would take differently the later one can
	 * take as well, so this is O(plen * slen). */
	size_t i = 0, j = 0, star_i = SIZE_MAX, star_j = 0;
	while (j < slen) {
		if (i < plen) {
			char pc = p[i];
			if (pc == '*') {
				while (i < plen && p[i] == '*')
					i++;
				if (i == plen)
					return true;
				star_i = i;
				star_j = j;
				continue;
			}
			size_t next = i + 1;
			bool ok;
			if (pc == '?') {
				ok = true;
			} else if (pc == '[') {
				int r = glob_class(p, plen, i, (unsigned char)s[j], &next);
				ok = r < 0 ? s[j] == '[' : r == 1;
				if (r < 0)
					next = i + 1;
			} else if (pc == '\\' && i + 1 < plen) {
				ok = s[j] == p[i + 1];
				next = i + 2;
			} else {
				ok = s[j] == pc;
			}
			if (ok) {
				i = next;
				j++;
				continue;
			}
		}
		if (star_i == SIZE_MAX)
			return false;
		i = star_i;
		j = ++star_j;
	}
	while (i < plen && p[i] == '*')
		i++;
	return i == plen;
}

/* One position of a glob: '*' (star), or the set of bytes a single
 * position matches (a literal, '?', a class), as a 256-bit map. */
struct glob_tok {
	bool star;
	uint64_t set[4];
};

/* Splits a glob into tokens exactly as rmq_glob_match reads it (runs of
 * '*' are one). Returns the number of tokens written to t (at most plen). */
static size_t glob_tokens(const char *p, size_t plen, struct glob_tok *t)
{
	size_t n = 0;
	for (size_t i = 0; i < plen;) {
		struct glob_tok *k = &t[n];
		memset(k, 0, sizeof(*k));
		char pc = p[i];
		if (pc == '*') {
			while (i < plen && p[i] == '*')
				i++;
			k->star = true;
			n++;
			continue;
		}
		size_t next = i + 1;
		if (pc == '?') {
			memset(k->set, 0xff, sizeof(k->set));
		} else if (pc == '[' && glob_class(p, plen, i, 0, &next) >= 0) {
			for (unsigned c = 0; c < 256; c++)
				if (glob_class(p, plen, i, (unsigned char)c, &next) == 1)
					k->set[c >> 6] |= 1ULL << (c & 63);
		} else {
			unsigned char lit = (unsigned char)pc;
			next = i + 1;
			if (pc == '\\' && i + 1 < plen) {
				lit = (unsigned char)p[i + 1];
				next = i + 2;
			}
			k->set[lit >> 6] |= 1ULL << (lit & 63);
		}
		i = next;
		n++;
	}
	return n;
}

static bool tok_subset(const struct glob_tok *a, const struct glob_tok *b)
{
	for (int w = 0; w < 4; w++)
		if (a->set[w] & ~b->set[w])
			return false;
	return true;
}

bool rmq_glob_covers(const char *u, size_t ulen, const char *p, size_t plen)
{
	if (ulen > RMQ_GLOB_COVERS_MAX || plen > RMQ_GLOB_COVERS_MAX)
		return false;
	struct glob_tok *ut = malloc((ulen + plen + 2) * sizeof(*ut));
	bool *row = malloc(2 * (plen + 1) * sizeof(bool));
	if (!ut || !row) {
		free(ut);
		free(row);
		return false; /* refusing is the safe answer */
	}
	struct glob_tok *pt = ut + ulen + 1;
	size_t nu = glob_tokens(u, ulen, ut), np = glob_tokens(p, plen, pt);
	/* next[j]: u's tokens from i + 1 on cover p's tokens from j on;
	 * cur[j]: the same from i. A star of u takes any run of p's tokens
	 * (stars included); any other token of u takes one single-byte token
	 * of p whose bytes are all among its own. Sound: every name p matches
	 * is then matched by u token for token. */
	bool *next = row, *cur = row + plen + 1;
	for (size_t j = 0; j <= np; j++)
		next[j] = j == np;
	for (size_t i = nu; i-- > 0;) {
		for (size_t j = np + 1; j-- > 0;) {
			if (ut[i].star)
				cur[j] = next[j] || (j < np && cur[j + 1]);
			else
				cur[j] = j < np && !pt[j].star && tok_subset(&pt[j], &ut[i]) &&
					 next[j + 1];
		}
		bool *x = next;
		next = cur;
		cur = x;
	}
	bool ok = next[0];
	free(ut);
	free(row);
	return ok;
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
