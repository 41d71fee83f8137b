/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Latency samples and their summary (median, percentiles, mean) for the benchmark programs. */
#ifndef VCCID_BENCH_STATS_H
#define VCCID_BENCH_STATS_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

struct stats_summary {
	size_t n;
	double median_us, p90_us, p99_us, mean_us, min_us, max_us;
};

/** Nanoseconds on CLOCK_MONOTONIC. */
uint64_t stats_now_ns(void);

/** Summarises @p n samples in nanoseconds. Sorts @p ns in place (caller-owned). */
void stats_summarise(uint64_t *ns, size_t n, struct stats_summary *out);

/** Prints " WHAT_n=.. WHAT_median_us=.. WHAT_p99_us=.. WHAT_max_us=.. WHAT_mean_us=.."
 *  for @p n samples (sorted in place) to standard output: one result line's fields. */
void stats_print_fields(const char *what, uint64_t *ns, size_t n);

/** Parses a decimal count in [lo, hi]; returns 0 or -1. */
int stats_parse_count(const char *s, unsigned long lo, unsigned long hi, unsigned long *out);
/* stats_parse_count for an option: on failure prints "PROG: WHAT must be LO..HI" to stderr. */
int stats_option_count(const char *prog, const char *what, const char *s, unsigned long lo,
		       unsigned long hi, unsigned long *out);

/* The most rounds an event bench takes (-n). */
#define STATS_EVENT_MAX_ROUNDS 10000ul

/* The options the event benches share; the caller sets the defaults. */
struct stats_event_opts {
	const char *reader;          /* -r READER */
	const char *host;            /* -H HOST */
	unsigned long port;          /* -p PORT, 1..65535 */
	unsigned long rounds;        /* -n ROUNDS, 1..STATS_EVENT_MAX_ROUNDS */
	unsigned long timeout_ms;    /* -T TIMEOUT_MS, 1..60000 */
};

/**
 * Reads an event bench's options from @p argv with getopt's @p optstring (some
 * of r: H: p: n: T:, and h) into @p o. Returns -1 when they are good (optind
 * is past them), else the exit status: 0 after -h (@p usage printed to
 * stdout), 2 for an unknown option or a bad value (said on stderr as from
 * @p prog).
 */
int stats_event_args(const char *prog, int argc, char **argv, const char *optstring,
		     void (*usage)(FILE *), struct stats_event_opts *o);

#endif
