/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A thread that waits in SCardGetStatusChange on one reader and timestamps every change (event benchmarks). */
#ifndef VCCID_BENCH_WATCH_H
#define VCCID_BENCH_WATCH_H

#include <pthread.h>
#include <stdint.h>

#include <winscard.h>

struct watch {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	const char *reader;
	SCARDCONTEXT ctx;
	int present;        /* -1 until the first answer */
	uint64_t seq;       /* answers so far */
	uint64_t stamp_ns;  /* when the last answer arrived */
	int stop;
	LONG err;
};

/** The thread body: pass a struct watch with lock, changed, reader and ctx set up. */
void *watch_thread(void *arg);
/**
 * Sets up @p w for @p reader (its own PC/SC context), starts watch_thread in
 * *tid and waits for its first answer, which gives the reader's current state.
 * Returns 0, or -1 after a message prefixed by @p prog.
 */
int watch_start(struct watch *w, const char *reader, pthread_t *tid, const char *prog);
/** Waits until the watcher reports @p want after sequence @p after; returns the
 *  stamp of that report, or 0 on timeout or watcher failure. */
uint64_t wait_for(struct watch *w, int want, uint64_t after, unsigned long timeout_ms);
uint64_t current_seq(struct watch *w);
int watch_stopped(struct watch *w);
/** Stops and joins the watcher thread @p tid; returns its failure, or SCARD_S_SUCCESS. */
LONG watch_finish(struct watch *w, pthread_t tid);

#endif
