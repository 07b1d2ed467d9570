/* stats.h — medians and percentiles for the benchmarks under bench/.
 * Header-only: each bench is one .c file plus this. */
#ifndef BHATTI_BENCH_STATS_H
#define BHATTI_BENCH_STATS_H

#include <stdio.h>
#include <stdlib.h>

static int stats_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Sorts v in place; the p-th percentile (nearest rank). */
static double stats_pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(*v), stats_cmp);
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static void stats_print(const char *name, double *v, size_t n, const char *unit)
{
	double p50 = stats_pct(v, n, 50), p99 = stats_pct(v, n, 99);
	printf("%-40s n=%-5zu p50=%10.3f %s  p99=%10.3f %s  min=%10.3f  max=%10.3f\n",
	       name, n, p50, unit, p99, unit, v[0], v[n - 1]);
}

#endif
