/* crc32c.c - see crc32c.h.
 *
 * The table fallback is slicing-by-8 over the reflected polynomial
 * 0x82F63B78; tables are built once under pthread_once. The hardware path
 * is compiled with a target attribute so the rest of the build needs no
 * -msse4.2, and chosen at run time with __builtin_cpu_supports. */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t tab[8][256];
static pthread_once_t tab_once = PTHREAD_ONCE_INIT;

static void tab_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
		tab[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			tab[t][i] = (tab[t - 1][i] >> 8) ^ tab[0][tab[t - 1][i] & 0xff];
}

uint32_t rmq_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *s = p;
	pthread_once(&tab_once, tab_init);
	crc = ~crc;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		w ^= crc; /* little-endian: the low 4 bytes take the crc */
		crc = tab[7][w & 0xff] ^ tab[6][(w >> 8) & 0xff] ^ tab[5][(w >> 16) & 0xff] ^
		      tab[4][(w >> 24) & 0xff] ^ tab[3][(w >> 32) & 0xff] ^
		      tab[2][(w >> 40) & 0xff] ^ tab[1][(w >> 48) & 0xff] ^ tab[0][w >> 56];
		s += 8;
		n -= 8;
	}
	while (n--)
		crc = (crc >> 8) ^ tab[0][(crc ^ *s++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t c = ~crc;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, s, 8);
		c = _mm_crc32_u64(c, w);
		s += 8;
		n -= 8;
	}
	uint32_t c32 = (uint32_t)c;
	if (n >= 4) {
		uint32_t w;
		memcpy(&w, s, 4);
		c32 = _mm_crc32_u32(c32, w);
		s += 4;
		n -= 4;
	}
	while (n--)
		c32 = _mm_crc32_u8(c32, *s++);
	return ~c32;
}

/* The 16 bytes of a slot's fields, then the record: one call, one pair
 * of inversions (what every append and every recovered record pays). */
__attribute__((target("sse4.2"))) static uint32_t crc_hw_16(const void *h16, const void *p,
							    size_t n)
{
	uint64_t a, b;
	memcpy(&a, h16, 8);
	memcpy(&b, (const char *)h16 + 8, 8);
	uint64_t c = _mm_crc32_u64(_mm_crc32_u64(0xffffffffu, a), b);
	return crc_hw(~(uint32_t)c, p, n);
}

static int hw_state; /* 0 unknown, 1 yes, -1 no; racy init is harmless */

bool rmq_crc32c_hw(void)
{
	int s = __atomic_load_n(&hw_state, __ATOMIC_RELAXED);
	if (s == 0) {
		__builtin_cpu_init();
		s = __builtin_cpu_supports("sse4.2") ? 1 : -1;
		__atomic_store_n(&hw_state, s, __ATOMIC_RELAXED);
	}
	return s > 0;
}

uint32_t rmq_crc32c(uint32_t crc, const void *p, size_t n)
{
	if (__builtin_expect(rmq_crc32c_hw(), 1))
		return crc_hw(crc, p, n);
	return rmq_crc32c_sw(crc, p, n);
}

uint32_t rmq_crc32c_16(const void *h16, const void *p, size_t n)
{
	if (__builtin_expect(rmq_crc32c_hw(), 1))
		return crc_hw_16(h16, p, n);
	return rmq_crc32c_sw(rmq_crc32c_sw(0, h16, 16), p, n);
}
#else
uint32_t rmq_crc32c_16(const void *h16, const void *p, size_t n)
{
	return rmq_crc32c_sw(rmq_crc32c_sw(0, h16, 16), p, n);
}

bool rmq_crc32c_hw(void)
{
	return false;
}

uint32_t rmq_crc32c(uint32_t crc, const void *p, size_t n)
{
	return rmq_crc32c_sw(crc, p, n);
}
#endif
