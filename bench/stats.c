/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Latency samples and their summary (median, percentiles, mean) for the benchmark programs. */
#define _POSIX_C_SOURCE 200809L
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t stats_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int stats_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples. */
static double stats_rank_us(const uint64_t *sorted, size_t n, double pct)
{
	size_t rank = (size_t)((pct / 100.0) * (double)n + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)sorted[rank - 1] / 1000.0;
}

void stats_summarise(uint64_t *ns, size_t n, struct stats_summary *out)
{
	double sum = 0;
	size_t i;

	memset(out, 0, sizeof *out);
	out->n = n;
	if (n == 0)
		return;
	qsort(ns, n, sizeof *ns, stats_cmp);
	for (i = 0; i < n; i++)
		sum += (double)ns[i];
	out->mean_us = sum / (double)n / 1000.0;
	out->min_us = (double)ns[0] / 1000.0;
	out->max_us = (double)ns[n - 1] / 1000.0;
	/* The median of an even count is the mean of the two middle samples. */
	out->median_us = n % 2 ? (double)ns[n / 2] / 1000.0
			       : ((double)ns[n / 2 - 1] + (double)ns[n / 2]) / 2000.0;
	out->p90_us = stats_rank_us(ns, n, 90.0);
	out->p99_us = stats_rank_us(ns, n, 99.0);
}

int stats_parse_count(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int stats_option_count(const char *prog, const char *what, const char *s, unsigned long lo,
		       unsigned long hi, unsigned long *out)
{
	if (stats_parse_count(s, lo, hi, out) == 0)
		return 0;
	fprintf(stderr, "%s: %s must be %lu..%lu, not '%s'\n", prog, what, lo, hi, s);
	return -1;
}

/* Takes option @p opt into @p o: 1 when it is one of the shared ones, 0 when not, -1 for a bad value. */
static int event_option(const char *prog, int opt, const char *arg, struct stats_event_opts *o)
{
	switch (opt) {
	case 'r':
		o->reader = arg;
		return 1;
	case 'H':
		o->host = arg;
		return 1;
	case 'p':
		return stats_option_count(prog, "PORT", arg, 1, 65535, &o->port) == 0 ? 1 : -1;
	case 'n':
		return stats_option_count(prog, "ROUNDS", arg, 1, STATS_EVENT_MAX_ROUNDS,
					  &o->rounds) == 0 ? 1 : -1;
	case 'T':
		return stats_option_count(prog, "TIMEOUT_MS", arg, 1, 60000, &o->timeout_ms) == 0 ?
			1 : -1;
	default:
		return 0;
	}
}

int stats_event_args(const char *prog, int argc, char **argv, const char *optstring,
		     void (*usage)(FILE *), struct stats_event_opts *o)
{
	int opt;

	while ((opt = getopt(argc, argv, optstring)) != -1) {
		int taken = event_option(prog, opt, optarg, o);

		if (taken < 0)
			return 2;
		if (taken > 0)
			continue;
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		usage(stderr);
		return 2;
	}
	return -1;
}

void stats_print_fields(const char *what, uint64_t *ns, size_t n)
{
	struct stats_summary s;

	stats_summarise(ns, n, &s);
	printf(" %s_n=%zu %s_median_us=%.1f %s_p99_us=%.1f %s_max_us=%.1f %s_mean_us=%.1f",
	       what, s.n, what, s.median_us, what, s.p99_us, what, s.max_us, what, s.mean_us);
}
