/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SCardGetStatusChange watcher shared by the event benchmarks. */
#include "watch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "stats.h"

void *watch_thread(void *arg)
{
	struct watch *w = arg;
	SCARD_READERSTATE rs;
	LONG rv;

	memset(&rs, 0, sizeof rs);
	rs.szReader = w->reader;
	rs.dwCurrentState = SCARD_STATE_UNAWARE;
	for (;;) {
		uint64_t now;

		rv = SCardGetStatusChange(w->ctx, 1000, &rs, 1);
		now = stats_now_ns();
		if (rv == SCARD_E_TIMEOUT) {
			pthread_mutex_lock(&w->lock);
			rv = w->stop ? SCARD_E_CANCELLED : SCARD_S_SUCCESS;
			pthread_mutex_unlock(&w->lock);
			if (rv != SCARD_S_SUCCESS)
				break;
			continue;
		}
		if (rv != SCARD_S_SUCCESS)
			break;
		pthread_mutex_lock(&w->lock);
		w->present = (rs.dwEventState & SCARD_STATE_PRESENT) != 0;
		w->seq++;
		w->stamp_ns = now;
		pthread_cond_broadcast(&w->changed);
		pthread_mutex_unlock(&w->lock);
		rs.dwCurrentState = rs.dwEventState & ~(DWORD)SCARD_STATE_CHANGED;
	}
	pthread_mutex_lock(&w->lock);
	w->err = rv;
	w->stop = 1;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int watch_start(struct watch *w, const char *reader, pthread_t *tid, const char *prog)
{
	LONG rv;

	memset(w, 0, sizeof *w);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	w->reader = reader;
	w->present = -1;
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &w->ctx);
	if (rv != SCARD_S_SUCCESS) {
		fprintf(stderr, "%s: SCardEstablishContext: %s\n", prog, pcsc_stringify_error(rv));
		return -1;
	}
	if (pthread_create(tid, NULL, watch_thread, w) != 0) {
		fprintf(stderr, "%s: cannot start the watcher\n", prog);
		return -1;
	}
	/* The first answer (from SCARD_STATE_UNAWARE) gives the current state. */
	pthread_mutex_lock(&w->lock);
	while (w->seq == 0 && !w->stop)
		pthread_cond_wait(&w->changed, &w->lock);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

uint64_t wait_for(struct watch *w, int want, uint64_t after, unsigned long timeout_ms)
{
	struct timespec until;
	uint64_t stamp = 0;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += (time_t)(timeout_ms / 1000);
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->lock);
	while (!w->stop && !(w->seq > after && w->present == want)) {
		if (pthread_cond_timedwait(&w->changed, &w->lock, &until) == ETIMEDOUT)
			break;
	}
	if (!w->stop && w->seq > after && w->present == want)
		stamp = w->stamp_ns;
	pthread_mutex_unlock(&w->lock);
	return stamp;
}

uint64_t current_seq(struct watch *w)
{
	uint64_t s;

	pthread_mutex_lock(&w->lock);
	s = w->seq;
	pthread_mutex_unlock(&w->lock);
	return s;
}

int watch_stopped(struct watch *w)
{
	int s;

	pthread_mutex_lock(&w->lock);
	s = w->stop;
	pthread_mutex_unlock(&w->lock);
	return s;
}

LONG watch_finish(struct watch *w, pthread_t tid)
{
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_mutex_unlock(&w->lock);
	SCardCancel(w->ctx);
	pthread_join(tid, NULL);
	return w->err == SCARD_E_CANCELLED ? SCARD_S_SUCCESS : w->err;
}
