/* parse.c - see parse.h. */
#include "parse.h"

/* The multiplier of unit letter c under unit, or 0 when c is none. */
static uint64_t unit_mul(char c, enum rmq_unit unit)
{
	static const uint64_t binary[] = { 1ULL << 10, 1ULL << 20, 1ULL << 30 };
	static const uint64_t decimal[] = { 1000ULL, 1000000ULL, 1000000000ULL };
	int k;
	switch (c) {
	case 'k':
	case 'K': k = 0; break;
	case 'm':
	case 'M': k = 1; break;
	case 'g':
	case 'G': k = 2; break;
	default: return 0;
	}
	switch (unit) {
	case RMQ_UNIT_BYTES: return binary[k];
	case RMQ_UNIT_COUNT: return decimal[k];
	case RMQ_UNIT_NONE: break;
	}
	return 0;
}

int rmq_parse_uint(const char *p, size_t n, enum rmq_unit unit, uint64_t *out)
{
	uint64_t mul = 1;
	if (unit == RMQ_UNIT_BYTES && n && (p[n - 1] == 'b' || p[n - 1] == 'B'))
		n--;
	if (n && unit != RMQ_UNIT_NONE) {
		uint64_t m = unit_mul(p[n - 1], unit);
		if (m) {
			mul = m;
			n--;
		}
	}
	if (n == 0)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		uint64_t d = (uint64_t)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v > UINT64_MAX / mul)
		return -1;
	*out = v * mul;
	return 0;
}
