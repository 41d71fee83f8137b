/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Synchronisation for threaded unit tests, bounded so a bug fails the test instead of
 * hanging it: an event (set once, waited for with a timeout) and a wait until a thread is
 * blocked (asleep in the kernel: a futex under a condition wait or a lock).
 */
#ifndef VCCID_TESTS_SYNC_H
#define VCCID_TESTS_SYNC_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static inline long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct test_event {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool set;
};

#define TEST_EVENT_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false }

static inline void test_event_set(struct test_event *e)
{
	pthread_mutex_lock(&e->lock);
	e->set = true;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
}

/* The CLOCK_REALTIME time @p timeout_ms from now, for pthread_cond_timedwait. */
static inline struct timespec test_deadline(int timeout_ms)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	return deadline;
}

/* True once @p e is set; false if @p timeout_ms passed first. */
static inline bool test_event_wait(struct test_event *e, int timeout_ms)
{
	struct timespec deadline = test_deadline(timeout_ms);
	bool set;

	pthread_mutex_lock(&e->lock);
	while (!e->set && pthread_cond_timedwait(&e->cond, &e->lock, &deadline) != ETIMEDOUT)
		;
	set = e->set;
	pthread_mutex_unlock(&e->lock);
	return set;
}

/* The caller's kernel thread id, for test_thread_blocked. */
static inline pid_t test_thread_id(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* True once thread @p tid of this process sleeps in the kernel (state S in /proc), as it
 * does blocked in a condition wait; false if @p timeout_ms passed first. The modules under
 * test are opaque, so this is the only sign that a thread reached its wait; polling it
 * each millisecond is bounded, unlike a fixed sleep that hopes the thread got there. */
static inline bool test_thread_blocked(pid_t tid, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	char path[64], buf[512];

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	do {
		FILE *f = fopen(path, "r");
		size_t n = 0;
		const char *state;

		if (f != NULL) {
			n = fread(buf, 1, sizeof(buf) - 1, f);
			fclose(f);
		}
		buf[n] = '\0';
		/* "tid (comm) S ...": the state follows the last ')'. */
		state = strrchr(buf, ')');
		if (state != NULL && state[1] == ' ' && state[2] == 'S')
			return true;
		{
			struct timespec ms = { 0, 1000000L };

			nanosleep(&ms, NULL);
		}
	} while (now_ms() < deadline);
	return false;
}

/* A test thread's mark: set by the thread as it starts, awaited by the test. */
struct test_thread_mark {
	pid_t tid;
	struct test_event started;
};

#define TEST_THREAD_MARK_INIT { 0, TEST_EVENT_INIT }

/* Called by the thread itself as it starts. */
static inline void test_thread_start(struct test_thread_mark *mark)
{
	mark->tid = test_thread_id();
	test_event_set(&mark->started);
}

/* True once the marked thread has started and sleeps (in the wait it went on to);
 * false if that did not happen within @p timeout_ms. */
static inline bool test_thread_asleep(struct test_thread_mark *mark, int timeout_ms)
{
	return test_event_wait(&mark->started, timeout_ms) &&
	       test_thread_blocked(mark->tid, timeout_ms);
}

#endif
