/* test_stats.c - median, percentiles and min-max over repeats. */
#include <criterion/criterion.h>

#include "stats.h"

Test(stats, median_odd_even_and_order)
{
	double odd[] = { 5, 1, 3 };
	cr_assert_float_eq(rb_stats_median(odd, 3), 3, 1e-12);
	double even[] = { 4, 1, 3, 2 };
	cr_assert_float_eq(rb_stats_median(even, 4), 2.5, 1e-12);
	/* the input keeps its order (samples are reported in run order) */
	cr_assert_float_eq(even[0], 4, 0);
	cr_assert_float_eq(even[3], 2, 0);
	double one[] = { 7 };
	cr_assert_float_eq(rb_stats_median(one, 1), 7, 0);
	cr_assert_float_eq(rb_stats_median(NULL, 0), 0, 0);
}

Test(stats, median_with_duplicates_and_negatives)
{
	double v[] = { -1, 2, 2, 2, 100 };
	cr_assert_float_eq(rb_stats_median(v, 5), 2, 1e-12);
	double w[] = { -3, -1 };
	cr_assert_float_eq(rb_stats_median(w, 2), -2, 1e-12);
}

Test(stats, percentile_interpolates)
{
	double v[] = { 10, 20, 30, 40, 50 };
	cr_assert_float_eq(rb_stats_percentile(v, 5, 0), 10, 1e-12);
	cr_assert_float_eq(rb_stats_percentile(v, 5, 100), 50, 1e-12);
	cr_assert_float_eq(rb_stats_percentile(v, 5, 50), 30, 1e-12);
	cr_assert_float_eq(rb_stats_percentile(v, 5, 25), 20, 1e-12);
	cr_assert_float_eq(rb_stats_percentile(v, 5, 90), 46, 1e-9);
	cr_assert_float_eq(rb_stats_percentile(v, 5, 12.5), 15, 1e-9);
	double u[] = { 3, 1, 2 }; /* unsorted input */
	cr_assert_float_eq(rb_stats_percentile(u, 3, 50), 2, 1e-12);
	cr_assert_float_eq(rb_stats_percentile(u, 3, 75), 2.5, 1e-12);
	cr_assert_float_eq(rb_stats_percentile(NULL, 0, 50), 0, 0);
}

Test(stats, percentile_50_is_the_median)
{
	double v[] = { 9, 2, 7, 4, 1, 8 };
	cr_assert_float_eq(rb_stats_percentile(v, 6, 50), rb_stats_median(v, 6), 1e-12);
}

Test(stats, summary_min_max_mean)
{
	double v[] = { 3, 9, 1, 5 };
	struct rb_summary s;
	rb_stats_summary(v, 4, &s);
	cr_assert_eq(s.n, 4);
	cr_assert_float_eq(s.min, 1, 0);
	cr_assert_float_eq(s.max, 9, 0);
	cr_assert_float_eq(s.median, 4, 1e-12);
	cr_assert_float_eq(s.mean, 4.5, 1e-12);
	rb_stats_summary(NULL, 0, &s);
	cr_assert_eq(s.n, 0);
	cr_assert_float_eq(s.median, 0, 0);
	cr_assert_float_eq(s.min, 0, 0);
	cr_assert_float_eq(s.max, 0, 0);
}

Test(stats, ratio)
{
	cr_assert_float_eq(rb_stats_ratio(3, 2), 1.5, 1e-12);
	cr_assert_float_eq(rb_stats_ratio(3, 0), 0, 0);
}
