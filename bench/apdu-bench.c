/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PC/SC client that times APDU round trips through pcscd, one thread per reader, and prints one parseable line per reader plus a total. */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <winscard.h>

#include "stats.h"

#define BENCH_MAX_COUNT 200000ul  /* hard cap on timed APDUs per thread */
#define BENCH_MAX_WARMUP 100000ul
#define BENCH_MAX_THREADS 64ul
#define BENCH_MAX_APDU 65544      /* 4 + 3 + 65535 + 2: one extended APDU */
#define BENCH_RX_MAX (65536 + 2)

/* SELECT of the CAC PKI applet A0 00 00 00 79 01 00 (case 3). */
static const unsigned char default_apdu[] = {
	0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00
};

struct bench_job {
	const char *reader;
	const unsigned char *apdu;
	size_t apdu_len;
	unsigned long count, warmup;
	pthread_barrier_t *start;
	uint64_t *ns;       /* count samples, owned by the job */
	size_t done;
	unsigned sw;        /* status word of the last answer */
	size_t rx_len;      /* length of the last answer */
	unsigned long sw_changes; /* answers whose SW differed from the first */
	LONG err;           /* first PC/SC error, or SCARD_S_SUCCESS */
	const char *err_where;
	uint64_t t_begin, t_end;
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: apdu-bench -r READER [-r READER...] [-n COUNT] [-w WARMUP] [-a HEXAPDU | -x LC] [-t THREADS]\n"
		"                  [-s SAMPLEFILE]\n"
		"  Sends the APDU COUNT times (default 5000, at most %lu) after WARMUP untimed\n"
		"  ones (default 200) on each reader, one thread per reader; with -t more\n"
		"  threads than readers, thread i uses reader i %% (number of readers).\n"
		"  Default APDU: SELECT of the CAC applet (00A4040007A0000000790100).\n"
		"  -x LC: an extended case-4 APDU with LC data bytes and Le 00 00 (65536).\n"
		"  -s: also writes every timed sample, in the order taken, to SAMPLEFILE\n"
		"  (lines \"THREAD INDEX NS\"), to look at the shape of the tail.\n"
		"  Output: one line per thread and a 'total' line, key=value, times in us.\n",
		BENCH_MAX_COUNT);
}

/* Writes the raw samples before they are sorted; 0 or -1 (with a message). */
static int write_samples(const char *path, const struct bench_job *jobs, size_t nthreads)
{
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (f == NULL) {
		perror(path);
		return -1;
	}
	for (size_t t = 0; t < nthreads; t++)
		for (size_t i = 0; i < jobs[t].done; i++)
			fprintf(f, "%zu %zu %llu\n", t, i, (unsigned long long)jobs[t].ns[i]);
	if (fclose(f) != 0) {
		perror(path);
		rc = -1;
	}
	return rc;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parses hex digits, ignoring spaces and colons. Returns the length or 0. */
static size_t parse_hex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *s != '\0'; s++) {
		int v;

		if (*s == ' ' || *s == ':')
			continue;
		v = hexval((unsigned char)*s);
		if (v < 0)
			return 0;
		if (hi < 0) {
			hi = v;
			continue;
		}
		if (n == cap)
			return 0;
		out[n++] = (unsigned char)(hi << 4 | v);
		hi = -1;
	}
	return hi < 0 ? n : 0;
}

static void *bench_thread(void *arg)
{
	struct bench_job *job = arg;
	SCARDCONTEXT ctx = 0;
	SCARDHANDLE card = 0;
	DWORD proto = 0;
	const SCARD_IO_REQUEST *pci = SCARD_PCI_T0;
	unsigned char *rx = malloc(BENCH_RX_MAX);
	unsigned long i;
	unsigned first_sw = 0;
	int connected = 0, have_ctx = 0;
	LONG rv;

	job->err = SCARD_S_SUCCESS;
	if (rx == NULL) {
		job->err = SCARD_E_NO_MEMORY;
		job->err_where = "malloc";
		goto wait;
	}
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
	if (rv != SCARD_S_SUCCESS) {
		job->err = rv;
		job->err_where = "SCardEstablishContext";
		goto wait;
	}
	have_ctx = 1;
	rv = SCardConnect(ctx, job->reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
			  &card, &proto);
	if (rv != SCARD_S_SUCCESS) {
		job->err = rv;
		job->err_where = "SCardConnect";
		goto wait;
	}
	connected = 1;
	pci = proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
	for (i = 0; i < job->warmup; i++) {
		DWORD rxlen = BENCH_RX_MAX;

		rv = SCardTransmit(card, pci, job->apdu, (DWORD)job->apdu_len, NULL, rx, &rxlen);
		if (rv != SCARD_S_SUCCESS) {
			job->err = rv;
			job->err_where = "SCardTransmit (warm-up)";
			break;
		}
	}
wait:
	/* Every thread reaches the barrier, failed or not, so none waits forever. */
	pthread_barrier_wait(job->start);
	if (job->err != SCARD_S_SUCCESS)
		goto out;
	job->t_begin = stats_now_ns();
	for (i = 0; i < job->count; i++) {
		DWORD rxlen = BENCH_RX_MAX;
		uint64_t t0 = stats_now_ns(), t1;

		rv = SCardTransmit(card, pci, job->apdu, (DWORD)job->apdu_len, NULL, rx, &rxlen);
		t1 = stats_now_ns();
		if (rv != SCARD_S_SUCCESS) {
			job->err = rv;
			job->err_where = "SCardTransmit";
			break;
		}
		job->ns[i] = t1 - t0;
		job->rx_len = rxlen;
		job->sw = rxlen >= 2 ? (unsigned)(rx[rxlen - 2] << 8 | rx[rxlen - 1]) : 0;
		if (i == 0)
			first_sw = job->sw;
		else if (job->sw != first_sw)
			job->sw_changes++;
	}
	job->t_end = stats_now_ns();
	job->done = i;
out:
	if (connected)
		SCardDisconnect(card, SCARD_LEAVE_CARD);
	if (have_ctx)
		SCardReleaseContext(ctx);
	free(rx);
	return NULL;
}

static void print_summary(const char *head, const struct stats_summary *s, double wall_s)
{
	printf("%s n=%zu median_us=%.1f p90_us=%.1f p99_us=%.1f mean_us=%.1f min_us=%.1f max_us=%.1f"
	       " wall_s=%.3f apdus_per_s=%.0f\n",
	       head, s->n, s->median_us, s->p90_us, s->p99_us, s->mean_us, s->min_us, s->max_us,
	       wall_s, wall_s > 0 ? (double)s->n / wall_s : 0.0);
}

int main(int argc, char **argv)
{
	const char *readers[BENCH_MAX_THREADS];
	size_t nreaders = 0, t;
	unsigned long count = 5000, warmup = 200, nthreads = 0;
	static unsigned char apdu[BENCH_MAX_APDU];
	size_t apdu_len = sizeof default_apdu;
	struct bench_job *jobs;
	pthread_t *tids;
	pthread_barrier_t start;
	uint64_t *all, t_begin = UINT64_MAX, t_end = 0;
	size_t nall = 0;
	struct stats_summary s;
	const char *sample_path = NULL;
	int status = 0, opt;

	memcpy(apdu, default_apdu, sizeof default_apdu);
	while ((opt = getopt(argc, argv, "r:n:w:a:x:t:s:h")) != -1) {
		switch (opt) {
		case 'r':
			if (nreaders == BENCH_MAX_THREADS) {
				fprintf(stderr, "apdu-bench: at most %lu readers\n", BENCH_MAX_THREADS);
				return 2;
			}
			readers[nreaders++] = optarg;
			break;
		case 'n':
			if (stats_option_count("apdu-bench", "COUNT", optarg, 1, BENCH_MAX_COUNT,
					       &count) != 0)
				return 2;
			break;
		case 'w':
			if (stats_option_count("apdu-bench", "WARMUP", optarg, 0, BENCH_MAX_WARMUP,
					       &warmup) != 0)
				return 2;
			break;
		case 'a':
			apdu_len = parse_hex(optarg, apdu, sizeof apdu);
			if (apdu_len < 4) {
				fprintf(stderr, "apdu-bench: -a needs an APDU of 4 or more hex bytes\n");
				return 2;
			}
			break;
		case 'x': {
			/* An extended case-4 APDU: 80 E2 00 00, Lc 00 HI LO, LC bytes 5A, Le 00 00. */
			unsigned long lc;

			if (stats_option_count("apdu-bench", "-x Lc", optarg, 1, 65535, &lc) != 0)
				return 2;
			apdu[0] = 0x80;
			apdu[1] = 0xE2;
			apdu[2] = apdu[3] = apdu[4] = 0x00;
			apdu[5] = (unsigned char)(lc >> 8);
			apdu[6] = (unsigned char)lc;
			memset(apdu + 7, 0x5A, lc);
			apdu[7 + lc] = apdu[8 + lc] = 0x00;
			apdu_len = 9 + lc;
			break;
		}
		case 't':
			if (stats_option_count("apdu-bench", "THREADS", optarg, 1, BENCH_MAX_THREADS,
					       &nthreads) != 0)
				return 2;
			break;
		case 's':
			sample_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (nreaders == 0 || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (nthreads == 0)
		nthreads = nreaders;

	jobs = calloc(nthreads, sizeof *jobs);
	tids = calloc(nthreads, sizeof *tids);
	all = calloc(nthreads * count, sizeof *all);
	if (jobs == NULL || tids == NULL || all == NULL) {
		fprintf(stderr, "apdu-bench: out of memory\n");
		return 1;
	}
	pthread_barrier_init(&start, NULL, (unsigned)nthreads);
	for (t = 0; t < nthreads; t++) {
		jobs[t].reader = readers[t % nreaders];
		jobs[t].apdu = apdu;
		jobs[t].apdu_len = apdu_len;
		jobs[t].count = count;
		jobs[t].warmup = warmup;
		jobs[t].start = &start;
		jobs[t].ns = all + t * count;
		if (pthread_create(&tids[t], NULL, bench_thread, &jobs[t]) != 0) {
			fprintf(stderr, "apdu-bench: cannot start thread %zu\n", t);
			return 1; /* started threads would wait on the barrier: just leave */
		}
	}
	for (t = 0; t < nthreads; t++)
		pthread_join(tids[t], NULL);
	if (sample_path != NULL && write_samples(sample_path, jobs, nthreads) != 0)
		status = 1;

	for (t = 0; t < nthreads; t++) {
		struct bench_job *j = &jobs[t];
		char head[512];

		if (j->err != SCARD_S_SUCCESS) {
			fprintf(stderr, "apdu-bench: reader \"%s\": %s: %s (0x%08lX) after %zu APDUs\n",
				j->reader, j->err_where, pcsc_stringify_error(j->err),
				(unsigned long)j->err, j->done);
			status = 1;
		}
		if (j->done == 0)
			continue;
		/* Compact this thread's samples to the front of all[] for the total. */
		memmove(all + nall, j->ns, j->done * sizeof *all);
		if (j->t_begin < t_begin)
			t_begin = j->t_begin;
		if (j->t_end > t_end)
			t_end = j->t_end;
		snprintf(head, sizeof head, "reader=\"%s\" thread=%zu apdu_len=%zu rx_len=%zu sw=%04X sw_changes=%lu errors=%d",
			 j->reader, t, apdu_len, j->rx_len, j->sw, j->sw_changes, j->err != SCARD_S_SUCCESS);
		{
			uint64_t *copy = malloc(j->done * sizeof *copy);

			if (copy == NULL) {
				fprintf(stderr, "apdu-bench: out of memory\n");
				return 1;
			}
			memcpy(copy, all + nall, j->done * sizeof *copy);
			stats_summarise(copy, j->done, &s);
			free(copy);
		}
		print_summary(head, &s, (double)(j->t_end - j->t_begin) / 1e9);
		nall += j->done;
	}
	if (nall > 0) {
		char head[128];

		snprintf(head, sizeof head, "total threads=%lu readers=%zu", nthreads, nreaders);
		stats_summarise(all, nall, &s);
		print_summary(head, &s, (double)(t_end - t_begin) / 1e9);
	} else {
		status = 1;
	}
	pthread_barrier_destroy(&start);
	free(all);
	free(tids);
	free(jobs);
	return status;
}
