/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Times card insertion and removal through a VSCard host (vccid's listener), from the ATR or CardRemove message being written to SCardGetStatusChange reporting it, in one process. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <winscard.h>

#include "stats.h"
#include "watch.h"
#include "vscard-wire.h"


static const uint8_t card_atr[] = { 0x3B, 0x02, 0x14, 0x50 };

/* What the watcher thread saw last. */

static void usage(FILE *f)
{
	fprintf(f, "usage: vscard-event-bench -p PORT [-H HOST] [-r READER] [-n ROUNDS] [-T TIMEOUT_MS]\n"
		   "  Connects to a VSCard host as a client with one reader (no card), then each\n"
		   "  round sends ATR (insertion) and CardRemove (removal) while a second thread\n"
		   "  waits in SCardGetStatusChange on READER (default \"vccid 00 00\", the slot\n"
		   "  the host binds the reader to). Latency runs from just before the message is\n"
		   "  written to SCardGetStatusChange returning (CLOCK_MONOTONIC, one process).\n"
		   "  ROUNDS default 200 (at most %lu); an event not seen within TIMEOUT_MS\n"
		   "  (default 2000) is counted as missed.\n", STATS_EVENT_MAX_ROUNDS);
}

int main(int argc, char **argv)
{
	struct stats_event_opts o = { .reader = "vccid 00 00", .host = "127.0.0.1", .rounds = 200,
				      .timeout_ms = 2000 };
	const char *reader, *host;
	unsigned long rounds, timeout_ms, port, r = 0;
	uint64_t *ins, *rem;
	size_t nins = 0, nrem = 0;
	unsigned long missed = 0;
	struct watch w;
	pthread_t tid;
	struct vsw_msg *m = malloc(sizeof *m);
	uint32_t caps, id, rid, code;
	int args, status = 0, fd;
	LONG rv;

	args = stats_event_args("vscard-event-bench", argc, argv, "r:n:T:H:p:h", usage, &o);
	if (args >= 0)
		return args;
	reader = o.reader;
	host = o.host;
	port = o.port;
	rounds = o.rounds;
	timeout_ms = o.timeout_ms;
	if (port == 0 || optind != argc || m == NULL) {
		usage(stderr);
		return 2;
	}
	ins = calloc(rounds, sizeof *ins);
	rem = calloc(rounds, sizeof *rem);
	if (ins == NULL || rem == NULL)
		return 1;
	vsw_install_signals();

	/* The client: Init, ReaderRemove(0), ReaderAdd; no card yet. */
	fd = vsw_connect(host, port, 10000);
	if (fd < 0 || vsw_init(fd, m, 0, &caps) != 0 ||
	    vsw_send(fd, m, VCCID_VSCARD_READER_REMOVE, 0, 0) != 0 ||
	    vsw_wait_error(fd, m, &id, &code) != 0 ||
	    vsw_send(fd, m, VCCID_VSCARD_READER_ADD, 0, (size_t)snprintf((char *)VSW_PAYLOAD(m), 32, "evbench")) != 0 ||
	    vsw_wait_error(fd, m, &id, &code) != 0 || code != 0) {
		fprintf(stderr, "vscard-event-bench: handshake with %s:%lu failed\n", host, port);
		return 1;
	}

	if (watch_start(&w, reader, &tid, "vscard-event-bench") != 0)
		return 1;
	if (w.present != 0) {
		fprintf(stderr, "vscard-event-bench: %s is not empty at the start\n", reader);
		status = 1;
		goto done;
	}

	for (r = 0; r < rounds && !watch_stopped(&w) && !vsw_stop; r++) {
		int step;

		for (step = 0; step < 2; step++) {
			uint64_t seq = current_seq(&w), t0, seen;
			int insert = step == 0, sent;

			if (insert)
				memcpy(VSW_PAYLOAD(m), card_atr, sizeof card_atr);
			t0 = stats_now_ns();
			sent = insert ? vsw_send(fd, m, VCCID_VSCARD_ATR, id, sizeof card_atr)
				      : vsw_send(fd, m, VCCID_VSCARD_CARD_REMOVE, id, 0);
			if (sent != 0) {
				fprintf(stderr, "vscard-event-bench: write failed\n");
				status = 1;
				goto done;
			}
			seen = wait_for(&w, insert, seq, timeout_ms);
			/* The host's answer waits in the socket until the event was seen. */
			if (vsw_wait_error(fd, m, &rid, &code) != 0 || code != 0) {
				fprintf(stderr, "vscard-event-bench: %s refused (code %u)\n",
					insert ? "ATR" : "CardRemove", (unsigned)code);
				status = 1;
				goto done;
			}
			if (seen == 0) {
				missed++;
				continue;
			}
			if (insert)
				ins[nins++] = seen - t0;
			else
				rem[nrem++] = seen - t0;
		}
	}
done:
	rv = watch_finish(&w, tid);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "vscard-event-bench: SCardGetStatusChange: %s\n", pcsc_stringify_error(rv));
		status = 1;
	}
	SCardReleaseContext(w.ctx);
	close(fd);

	printf("reader=\"%s\" rounds=%lu missed=%lu", reader, r, missed);
	stats_print_fields("insert", ins, nins);
	stats_print_fields("remove", rem, nrem);
	printf("\n");
	if (missed > 0 || nins == 0 || nrem == 0)
		status = 1;
	free(ins);
	free(rem);
	free(m);
	return status;
}
