/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Times card insertion and removal through a vpcd-protocol reader (vccid's vpcd backend or vsmartcard's vpcd): a card connects and answers GET ATR, SCardGetStatusChange reports it; the card closes, it reports the removal. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <winscard.h>

#include "stats.h"
#include "tcp.h"
#include "watch.h"

#define VPCD_CTRL_ATR 4
#define VPCD_MAX_MSG 0xFFFF

/* Same card as bench/vpcd-card.c: TS 3B, T=0, historical bytes 14 50. */
static const unsigned char card_atr[] = { 0x3B, 0x02, 0x14, 0x50 };

/* One connected card, served by its own thread until the reader closes it. */
struct card {
	int fd;
	uint64_t first_atr_ns;   /* just before the first ATR was written */
	pthread_mutex_t lock;
};

/* Answers GET ATR with the ATR, ignores the other controls, answers APDUs 90 00. */
static void *card_thread(void *arg)
{
	struct card *c = arg;
	static unsigned char in[2 + VPCD_MAX_MSG];
	unsigned char out[2 + sizeof card_atr];

	for (;;) {
		size_t len;

		if (bench_recv_all(c->fd, in, 2, 1, NULL) != 0)
			break;
		len = (size_t)in[0] << 8 | in[1];
		if (bench_recv_all(c->fd, in + 2, len, 1, NULL) != 0)
			break;
		if (len == 1 && in[2] == VPCD_CTRL_ATR) {
			out[0] = 0;
			out[1] = sizeof card_atr;
			memcpy(out + 2, card_atr, sizeof card_atr);
			pthread_mutex_lock(&c->lock);
			if (c->first_atr_ns == 0)
				c->first_atr_ns = stats_now_ns();
			pthread_mutex_unlock(&c->lock);
			if (bench_send_all(c->fd, out, 2 + sizeof card_atr, NULL) != 0)
				break;
		} else if (len > 1) {
			static const unsigned char ok[] = { 0, 2, 0x90, 0x00 };

			if (bench_send_all(c->fd, ok, sizeof ok, NULL) != 0)
				break;
		}
	}
	return NULL;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: vpcd-event-bench -p PORT [-H HOST] [-r READER] [-n ROUNDS] [-T TIMEOUT_MS]\n"
		   "  Each round a card connects to the vpcd port and answers GET ATR with its\n"
		   "  ATR, while a second thread waits in SCardGetStatusChange on READER (default\n"
		   "  \"Virtual PCD 00 00\"); then the card closes its connection. Prints the\n"
		   "  latency from connect() to the insertion event (insert), from the first ATR\n"
		   "  written to it (atr), and from close() to the removal event (remove), in one\n"
		   "  process (CLOCK_MONOTONIC). ROUNDS default 200 (at most %lu); an event not\n"
		   "  seen within TIMEOUT_MS (default 2000) is counted as missed.\n",
		STATS_EVENT_MAX_ROUNDS);
}

int main(int argc, char **argv)
{
	struct stats_event_opts o = { .reader = "Virtual PCD 00 00", .host = "127.0.0.1",
				      .rounds = 200, .timeout_ms = 2000 };
	const char *reader, *host;
	unsigned long rounds, timeout_ms, port, r = 0, missed = 0;
	uint64_t *ins, *atr, *rem;
	size_t nins = 0, natr = 0, nrem = 0;
	struct watch w;
	pthread_t tid;
	int args, status = 0;
	LONG rv;

	args = stats_event_args("vpcd-event-bench", argc, argv, "r:n:T:H:p:h", usage, &o);
	if (args >= 0)
		return args;
	reader = o.reader;
	host = o.host;
	port = o.port;
	rounds = o.rounds;
	timeout_ms = o.timeout_ms;
	if (port == 0 || optind != argc) {
		usage(stderr);
		return 2;
	}
	ins = calloc(rounds, sizeof *ins);
	atr = calloc(rounds, sizeof *atr);
	rem = calloc(rounds, sizeof *rem);
	if (ins == NULL || atr == NULL || rem == NULL)
		return 1;
	signal(SIGPIPE, SIG_IGN);

	if (watch_start(&w, reader, &tid, "vpcd-event-bench") != 0)
		return 1;
	if (w.present != 0) {
		fprintf(stderr, "vpcd-event-bench: %s is not empty at the start\n", reader);
		status = 1;
		goto done;
	}
	for (r = 0; r < rounds && !watch_stopped(&w); r++) {
		struct card c = { .fd = -1 };
		pthread_t card_tid;
		uint64_t seq = current_seq(&w), t0, seen;

		pthread_mutex_init(&c.lock, NULL);
		t0 = stats_now_ns();
		c.fd = bench_tcp_connect("vpcd-event-bench", host, port, timeout_ms, NULL);
		if (c.fd < 0 || pthread_create(&card_tid, NULL, card_thread, &c) != 0) {
			status = 1;
			break;
		}
		seen = wait_for(&w, 1, seq, timeout_ms);
		if (seen == 0) {
			missed++;
		} else {
			ins[nins++] = seen - t0;
			pthread_mutex_lock(&c.lock);
			if (c.first_atr_ns != 0 && seen > c.first_atr_ns)
				atr[natr++] = seen - c.first_atr_ns;
			pthread_mutex_unlock(&c.lock);
		}
		seq = current_seq(&w);
		t0 = stats_now_ns();
		/* The card goes: the reader sees end of stream; the card thread ends. */
		shutdown(c.fd, SHUT_RDWR);
		seen = wait_for(&w, 0, seq, timeout_ms);
		pthread_join(card_tid, NULL);
		close(c.fd);
		pthread_mutex_destroy(&c.lock);
		if (seen == 0)
			missed++;
		else
			rem[nrem++] = seen - t0;
	}
done:
	rv = watch_finish(&w, tid);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "vpcd-event-bench: SCardGetStatusChange: %s\n", pcsc_stringify_error(rv));
		status = 1;
	}
	SCardReleaseContext(w.ctx);
	printf("reader=\"%s\" rounds=%lu missed=%lu", reader, r, missed);
	stats_print_fields("insert", ins, nins);
	stats_print_fields("atr", atr, natr);
	stats_print_fields("remove", rem, nrem);
	printf("\n");
	if (missed > 0 || nins == 0 || nrem == 0)
		status = 1;
	free(ins);
	free(atr);
	free(rem);
	return status;
}
