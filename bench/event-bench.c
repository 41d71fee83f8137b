/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Times card removal and insertion on a vccid slot, from the SCardControl that causes it to SCardGetStatusChange reporting it. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <reader.h>
#include <winscard.h>

#include "../ifdhandler/control.h"
#include "stats.h"
#include "watch.h"


/* What the watcher thread saw last. */

static void usage(FILE *f)
{
	fprintf(f, "usage: event-bench -r READER [-n ROUNDS] [-T TIMEOUT_MS]\n"
		   "  READER is a vccid slot with a configured card. Each round removes the card\n"
		   "  (SCardControl 0x%08X) and inserts it again (0x%08X) on a direct\n"
		   "  connection; a second thread waits in SCardGetStatusChange. ROUNDS default\n"
		   "  200 (at most %lu); an event not seen within TIMEOUT_MS (default 2000) is\n"
		   "  counted as missed.\n",
		VCCID_CTL_REMOVE, VCCID_CTL_INSERT, STATS_EVENT_MAX_ROUNDS);
}

static void print_line(const char *what, uint64_t *ns, size_t n, uint64_t *ctl_ns)
{
	struct stats_summary s, c;

	stats_summarise(ns, n, &s);
	stats_summarise(ctl_ns, n, &c);
	printf(" %s_n=%zu %s_median_us=%.1f %s_p99_us=%.1f %s_max_us=%.1f %s_mean_us=%.1f"
	       " %s_ctl_median_us=%.1f",
	       what, s.n, what, s.median_us, what, s.p99_us, what, s.max_us, what, s.mean_us,
	       what, c.median_us);
}

int main(int argc, char **argv)
{
	struct stats_event_opts o = { .rounds = 200, .timeout_ms = 2000 };
	const char *reader;
	unsigned long rounds, timeout_ms, r;
	uint64_t *ins, *rem, *ins_ctl, *rem_ctl;
	size_t nins = 0, nrem = 0;
	unsigned long missed = 0;
	struct watch w;
	pthread_t tid;
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	DWORD proto;
	LONG rv;
	int args, status = 0;

	args = stats_event_args("event-bench", argc, argv, "r:n:T:h", usage, &o);
	if (args >= 0)
		return args;
	reader = o.reader;
	rounds = o.rounds;
	timeout_ms = o.timeout_ms;
	if (reader == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	ins = calloc(rounds, sizeof *ins);
	rem = calloc(rounds, sizeof *rem);
	ins_ctl = calloc(rounds, sizeof *ins_ctl);
	rem_ctl = calloc(rounds, sizeof *rem_ctl);
	if (ins == NULL || rem == NULL || ins_ctl == NULL || rem_ctl == NULL) {
		fprintf(stderr, "event-bench: out of memory\n");
		return 1;
	}

	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "event-bench: SCardEstablishContext: %s\n", pcsc_stringify_error(rv));
		return 1;
	}
	rv = SCardConnect(ctx, reader, SCARD_SHARE_DIRECT, 0, &card, &proto);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "event-bench: SCardConnect(%s, DIRECT): %s\n", reader,
			pcsc_stringify_error(rv));
		return 1;
	}
	if (watch_start(&w, reader, &tid, "event-bench") != 0)
		return 1;

	for (r = 0; r < rounds && !watch_stopped(&w); r++) {
		int step;

		for (step = 0; step < 2; step++) {
			int present;
			DWORD code, got = 0;
			uint64_t seq, t0, t1, seen;

			pthread_mutex_lock(&w.lock);
			present = w.present;
			pthread_mutex_unlock(&w.lock);
			code = present ? VCCID_CTL_REMOVE : VCCID_CTL_INSERT;
			seq = current_seq(&w);
			t0 = stats_now_ns();
			rv = SCardControl(card, code, NULL, 0, NULL, 0, &got);
			t1 = stats_now_ns();
			if (rv == SCARD_W_RESET_CARD || rv == SCARD_W_REMOVED_CARD) {
				/* Not expected on a direct connection, but harmless: reconnect and retry
				 * (the retry is what is timed). */
				SCardReconnect(card, SCARD_SHARE_DIRECT, 0, SCARD_LEAVE_CARD, &proto);
				seq = current_seq(&w);
				t0 = stats_now_ns();
				rv = SCardControl(card, code, NULL, 0, NULL, 0, &got);
				t1 = stats_now_ns();
			}
			if (rv != SCARD_S_SUCCESS) {
				fprintf(stderr, "event-bench: SCardControl(0x%08lX): %s (0x%08lX)\n",
					(unsigned long)code, pcsc_stringify_error(rv), (unsigned long)rv);
				status = 1;
				goto done;
			}
			seen = wait_for(&w, !present, seq, timeout_ms);
			if (seen == 0) {
				missed++;
				continue;
			}
			if (present) {
				rem[nrem] = seen - t0;
				rem_ctl[nrem++] = t1 - t0;
			} else {
				ins[nins] = seen - t0;
				ins_ctl[nins++] = t1 - t0;
			}
		}
	}
done:
	rv = watch_finish(&w, tid);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "event-bench: SCardGetStatusChange: %s\n", pcsc_stringify_error(rv));
		status = 1;
	}
	SCardDisconnect(card, SCARD_LEAVE_CARD);
	SCardReleaseContext(ctx);
	SCardReleaseContext(w.ctx);

	printf("reader=\"%s\" rounds=%lu missed=%lu", reader, r, missed);
	print_line("insert", ins, nins, ins_ctl);
	print_line("remove", rem, nrem, rem_ctl);
	printf("\n");
	if (missed > 0 || nins == 0 || nrem == 0)
		status = 1;
	free(ins);
	free(rem);
	free(ins_ctl);
	free(rem_ctl);
	return status;
}
