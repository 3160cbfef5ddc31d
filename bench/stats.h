/* stats.h - summary statistics over the repeats of one figure.
 *
 * Pure functions on caller-owned arrays; none of them allocates except
 * rb_stats_median/percentile, which sort a private copy (the input keeps
 * its order, so samples stay in run order for the JSON report).
 */
#ifndef RB_STATS_H
#define RB_STATS_H

#include <stddef.h>

struct rb_summary {
	size_t n;
	double median, min, max, mean;
};

/* Median of v[0..n): the middle value, or the mean of the two middle values
 * when n is even. 0 when n == 0. NaN values are not expected. */
double rb_stats_median(const double *v, size_t n);

/* Percentile p (0..100) of v[0..n) with linear interpolation between the
 * closest ranks (the "R-7" / NumPy default definition): p = 0 is the
 * minimum, p = 100 the maximum, p = 50 the median. 0 when n == 0. */
double rb_stats_percentile(const double *v, size_t n, double p);

/* Fills s with n, median, min, max and mean of v[0..n) (all 0 when n == 0). */
void rb_stats_summary(const double *v, size_t n, struct rb_summary *s);

/* Ratio a / b for reports; 0 when b is 0. */
double rb_stats_ratio(double a, double b);

#endif
