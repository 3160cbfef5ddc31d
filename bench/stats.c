/* stats.c - median, percentiles, min-max (see stats.h). */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Sorted private copy; NULL when n == 0. */
static double *sorted_copy(const double *v, size_t n)
{
	if (!n)
		return NULL;
	double *s = malloc(n * sizeof(*s));
	if (!s)
		abort();
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return s;
}

static double pct_sorted(const double *s, size_t n, double p)
{
	if (p <= 0)
		return s[0];
	if (p >= 100)
		return s[n - 1];
	double h = (double)(n - 1) * p / 100.0;
	size_t lo = (size_t)h;
	if (lo + 1 >= n)
		return s[n - 1];
	double frac = h - (double)lo;
	return s[lo] + (s[lo + 1] - s[lo]) * frac;
}

double rb_stats_percentile(const double *v, size_t n, double p)
{
	if (!n)
		return 0;
	double *s = sorted_copy(v, n);
	double r = pct_sorted(s, n, p);
	free(s);
	return r;
}

double rb_stats_median(const double *v, size_t n)
{
	if (!n)
		return 0;
	double *s = sorted_copy(v, n);
	double r = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
	free(s);
	return r;
}

void rb_stats_summary(const double *v, size_t n, struct rb_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->n = n;
	if (!n)
		return;
	out->median = rb_stats_median(v, n);
	out->min = out->max = v[0];
	double sum = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < out->min)
			out->min = v[i];
		if (v[i] > out->max)
			out->max = v[i];
		sum += v[i];
	}
	out->mean = sum / (double)n;
}

double rb_stats_ratio(double a, double b)
{
	return b != 0 ? a / b : 0;
}
