/* test_hist.c - the HDR-style histogram: bucket layout, precision bound,
 * percentiles against an exact reference, merge, edge values. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "hist.h"

static struct rb_hist *new_hist(void)
{
	struct rb_hist *h = malloc(sizeof(*h));
	cr_assert_not_null(h);
	rb_hist_reset(h);
	return h;
}

Test(hist, empty)
{
	struct rb_hist *h = new_hist();
	cr_assert_eq(h->count, 0);
	cr_assert_eq(rb_hist_percentile(h, 50), 0);
	cr_assert_eq(rb_hist_percentile(h, 100), 0);
	cr_assert_eq(rb_hist_mean(h), 0);
	free(h);
}

Test(hist, small_values_are_exact)
{
	for (uint64_t v = 0; v < 2 * RB_HIST_SUB; v++) {
		uint32_t b = rb_hist_bucket(v);
		cr_assert_eq(b, v);
		cr_assert_eq(rb_hist_bucket_low(b), v);
		cr_assert_eq(rb_hist_bucket_high(b), v);
	}
}

Test(hist, buckets_are_contiguous_and_ordered)
{
	/* every bucket starts one past the end of the previous one */
	for (uint32_t b = 1; b < RB_HIST_BUCKETS; b++) {
		cr_assert_eq(rb_hist_bucket_low(b), rb_hist_bucket_high(b - 1) + 1, "bucket %u", b);
		cr_assert_leq(rb_hist_bucket_low(b), rb_hist_bucket_high(b));
	}
	cr_assert_eq(rb_hist_bucket_high(RB_HIST_BUCKETS - 1), UINT64_MAX);
	cr_assert_eq(rb_hist_bucket(UINT64_MAX), RB_HIST_BUCKETS - 1);
}

Test(hist, value_falls_in_its_bucket_within_precision)
{
	uint64_t s = 12345;
	for (int i = 0; i < 200000; i++) {
		s ^= s << 13;
		s ^= s >> 7;
		s ^= s << 17;
		uint64_t v = s >> (s % 64); /* all magnitudes */
		uint32_t b = rb_hist_bucket(v);
		uint64_t lo = rb_hist_bucket_low(b), hi = rb_hist_bucket_high(b);
		cr_assert(lo <= v && v <= hi, "v=%llu in [%llu,%llu]", (unsigned long long)v,
			  (unsigned long long)lo, (unsigned long long)hi);
		/* width / low <= 1 / SUB: 0.78 % */
		cr_assert_leq((long double)(hi - lo) / (long double)(lo ? lo : 1),
			      1.0L / RB_HIST_SUB + 1e-12L);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

Test(hist, percentiles_match_exact_ranks_within_precision)
{
	enum { N = 100000 };
	uint64_t *v = malloc(N * sizeof(*v));
	struct rb_hist *h = new_hist();
	uint64_t s = 99;
	for (int i = 0; i < N; i++) {
		s = s * 6364136223846793005ULL + 1442695040888963407ULL;
		/* latency-like: mostly 10-100 us, a tail up to 50 ms */
		uint64_t x = 10000 + (s >> 33) % 90000;
		if (i % 1000 == 0)
			x = 1000000 + (s >> 20) % 49000000;
		v[i] = x;
		rb_hist_add(h, x);
	}
	qsort(v, N, sizeof(*v), cmp_u64);
	static const double ps[] = { 1, 10, 50, 90, 99, 99.9, 99.99 };
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		size_t rank = (size_t)((ps[k] / 100.0) * N + 0.999999); /* ceil, 1-based */
		uint64_t exact = v[rank - 1];
		uint64_t got = rb_hist_percentile(h, ps[k]);
		cr_assert_geq(got, exact, "p%g: %llu < exact %llu", ps[k], (unsigned long long)got,
			      (unsigned long long)exact);
		cr_assert_leq((double)got, (double)exact * (1.0 + 1.0 / RB_HIST_SUB) + 1,
			      "p%g: %llu vs exact %llu", ps[k], (unsigned long long)got,
			      (unsigned long long)exact);
	}
	cr_assert_eq(rb_hist_percentile(h, 100), v[N - 1]);
	cr_assert_eq(rb_hist_percentile(h, 0), v[0]);
	cr_assert_eq(h->min, v[0]);
	cr_assert_eq(h->max, v[N - 1]);
	free(v);
	free(h);
}

Test(hist, percentile_ranks_on_exact_values)
{
	struct rb_hist *h = new_hist();
	for (uint64_t v = 1; v <= 100; v++)
		rb_hist_add(h, v);
	cr_assert_eq(rb_hist_percentile(h, 50), 50);
	cr_assert_eq(rb_hist_percentile(h, 99), 99);
	cr_assert_eq(rb_hist_percentile(h, 99.5), 100);
	cr_assert_eq(rb_hist_percentile(h, 1), 1);
	cr_assert_eq(rb_hist_percentile(h, 0.5), 1);
	cr_assert_eq(rb_hist_percentile(h, 100), 100);
	cr_assert_float_eq(rb_hist_mean(h), 50.5, 1e-9);
	free(h);
}

Test(hist, p9999_of_a_million_is_the_999900th)
{
	struct rb_hist *h = new_hist();
	for (uint64_t v = 1; v <= 1000000; v++)
		rb_hist_add(h, v < 999900 ? 100 : v == 999900 ? 200 : 250);
	cr_assert_eq(rb_hist_percentile(h, 99.99), 200);
	free(h);
}

Test(hist, add_n_and_merge)
{
	struct rb_hist *a = new_hist(), *b = new_hist(), *c = new_hist();
	rb_hist_add_n(a, 1000, 3);
	rb_hist_add(b, 5);
	rb_hist_add(b, 1000000);
	for (int i = 0; i < 3; i++)
		rb_hist_add(c, 1000);
	rb_hist_add(c, 5);
	rb_hist_add(c, 1000000);
	rb_hist_merge(a, b);
	cr_assert_eq(a->count, 5);
	cr_assert_eq(a->min, 5);
	cr_assert_eq(a->max, 1000000);
	cr_assert_float_eq(a->sum, c->sum, 1e-6);
	for (uint32_t i = 0; i < RB_HIST_BUCKETS; i++)
		cr_assert_eq(a->b[i], c->b[i]);
	for (int k = 0; k <= 8; k++) /* percentiles 0, 12.5, ..., 100 */
		cr_assert_eq(rb_hist_percentile(a, k * 12.5), rb_hist_percentile(c, k * 12.5));
	/* merging an empty one changes nothing */
	struct rb_hist *e = new_hist();
	rb_hist_merge(a, e);
	cr_assert_eq(a->count, 5);
	cr_assert_eq(a->min, 5);
	free(a);
	free(b);
	free(c);
	free(e);
}

Test(hist, huge_values)
{
	struct rb_hist *h = new_hist();
	rb_hist_add(h, UINT64_MAX);
	rb_hist_add(h, 1ULL << 63);
	cr_assert_eq(rb_hist_percentile(h, 100), UINT64_MAX);
	cr_assert_eq(rb_hist_percentile(h, 50), 1ULL << 63 | ((1ULL << 56) - 1));
	free(h);
}
