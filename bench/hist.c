/* hist.c - HDR-style log-bucketed histogram (see hist.h). */
#include "hist.h"

#include <string.h>

void rb_hist_reset(struct rb_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

uint64_t rb_hist_bucket_low(uint32_t b)
{
	if (b < 2 * RB_HIST_SUB)
		return b;
	uint32_t shift = b / RB_HIST_SUB - 1;
	uint64_t mant = b - shift * RB_HIST_SUB; /* in [SUB, 2*SUB) */
	return mant << shift;
}

uint64_t rb_hist_bucket_high(uint32_t b)
{
	if (b < 2 * RB_HIST_SUB)
		return b;
	uint32_t shift = b / RB_HIST_SUB - 1;
	uint64_t mant = b - shift * RB_HIST_SUB;
	if (shift + RB_HIST_SUB_BITS + 1 >= 64 && mant == 2 * RB_HIST_SUB - 1)
		return UINT64_MAX;
	return ((mant + 1) << shift) - 1;
}

void rb_hist_merge(struct rb_hist *dst, const struct rb_hist *src)
{
	if (!src->count)
		return;
	for (uint32_t i = 0; i < RB_HIST_BUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t rb_hist_percentile(const struct rb_hist *h, double p)
{
	if (!h->count)
		return 0;
	if (p <= 0)
		return h->min;
	if (p >= 100)
		return h->max;
	/* rank = ceil(p/100 * count), at least 1; computed in long double so
	 * that p = 99.99 of 10^6 is exactly 999900. */
	long double want = (long double)p / 100.0L * (long double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((long double)rank < want - 1e-9L)
		rank++;
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < RB_HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = rb_hist_bucket_high(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

double rb_hist_mean(const struct rb_hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
