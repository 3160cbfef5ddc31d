/* hist.h - HDR-style log-bucketed latency histogram.
 *
 * Values (nanoseconds, or any unsigned 64-bit quantity) fall into buckets
 * whose width doubles every octave: each power of two [2^e, 2^(e+1)) is cut
 * into RB_HIST_SUB sub-buckets, so every recorded value is known to within
 * 1/RB_HIST_SUB (0.78 %) of itself, from 1 ns to 2^64 ns, in a fixed
 * 58 KiB array. Values below 2 * RB_HIST_SUB are exact. Recording is one
 * count-leading-zeros and one increment: no allocation, no search.
 *
 * Threads: a histogram is owned by one thread; merge per-thread histograms
 * after the threads are joined (rb_hist_merge).
 */
#ifndef RB_HIST_H
#define RB_HIST_H

#include <stdint.h>

#define RB_HIST_SUB_BITS 7
#define RB_HIST_SUB (1u << RB_HIST_SUB_BITS)
/* Buckets: shifts 0..56 (the top one holds 2^63 and up), SUB each, plus
 * the SUB exact values below 2 * SUB that shift 0 does not cover. */
#define RB_HIST_BUCKETS ((64 - RB_HIST_SUB_BITS + 1) * RB_HIST_SUB)

struct rb_hist {
	uint64_t count;
	uint64_t min, max; /* exact; min is UINT64_MAX while empty */
	double sum;
	uint64_t b[RB_HIST_BUCKETS];
};

/* Empties h (also what a zeroed struct needs before use: min). */
void rb_hist_reset(struct rb_hist *h);

/* Bucket index of v; and the lowest and highest value of a bucket. */
static inline uint32_t rb_hist_bucket(uint64_t v)
{
	if (v < 2 * RB_HIST_SUB)
		return (uint32_t)v;
	uint32_t e = 63u - (uint32_t)__builtin_clzll(v);
	uint32_t shift = e - RB_HIST_SUB_BITS;
	return shift * RB_HIST_SUB + (uint32_t)(v >> shift);
}
uint64_t rb_hist_bucket_low(uint32_t b);
uint64_t rb_hist_bucket_high(uint32_t b);

/* Records n occurrences of v. */
static inline void rb_hist_add_n(struct rb_hist *h, uint64_t v, uint64_t n)
{
	h->b[rb_hist_bucket(v)] += n;
	h->count += n;
	h->sum += (double)v * (double)n;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

static inline void rb_hist_add(struct rb_hist *h, uint64_t v)
{
	rb_hist_add_n(h, v, 1);
}

/* Adds every count of src to dst. */
void rb_hist_merge(struct rb_hist *dst, const struct rb_hist *src);

/* The value at percentile p (0..100): the highest value of the bucket
 * holding the ceil(p/100 * count)-th smallest recording, clamped to
 * [min, max]; p >= 100 gives max, p <= 0 gives min. 0 when empty. */
uint64_t rb_hist_percentile(const struct rb_hist *h, double p);

/* Mean of the recorded values (0 when empty). */
double rb_hist_mean(const struct rb_hist *h);

#endif
