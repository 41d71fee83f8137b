/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The vpcd transport connecting out to a card that listens, against a fake card on a
 * loopback socket driven by the test: the backoff between attempts, one log line for a
 * run of failures and one for the recovery, insertion, vccid-ctl remove and insert on
 * one connection, reconnecting after the card goes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "backends/vpcd/listener.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "corelib/slot.h"
#include "tests/unit/sync.h"

/* vicc's iso7816 ATR. */
static const uint8_t atr_msg[] = { 0x00, 0x0B, 0x3B, 0x95, 0x13, 0x81, 0x01, 0x80, 0x73, 0xFF,
				   0x01, 0x00, 0x0B };

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char logged[16384];

static void capture_sink(enum vccid_log_level level, const char *line)
{
	size_t used;

	(void)level;
	pthread_mutex_lock(&log_lock);
	used = strlen(logged);
	snprintf(logged + used, sizeof(logged) - used, "%s\n", line);
	pthread_mutex_unlock(&log_lock);
}

static unsigned log_count(const char *needle)
{
	const char *p = logged;
	unsigned n = 0;

	pthread_mutex_lock(&log_lock);
	while ((p = strstr(p, needle)) != NULL) {
		n++;
		p++;
	}
	pthread_mutex_unlock(&log_lock);
	return n;
}

/* A free loopback port: bound and closed again (nothing listens there now). */
static uint16_t free_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

static int listen_on(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(fd, 4), 0);
	return fd;
}

/* The next connection vccid makes, within @p timeout_ms; its time in *when. */
static int accept_within(int lfd, int timeout_ms, long *when)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd;

	assert_int_equal(poll(&p, 1, timeout_ms), 1);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	*when = now_ms();
	return fd;
}

/* Reads @p len bytes (bounded) and compares them with @p want. */
static void expect_bytes(int fd, const uint8_t *want, size_t len)
{
	uint8_t buf[64];
	size_t got = 0;

	assert_true(len <= sizeof(buf));
	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		assert_int_equal(poll(&p, 1, 3000), 1);
		n = read(fd, buf + got, len - got);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(buf, want, len);
}

/* True once the slot's presence is @p present, within @p timeout_ms. */
static bool wait_present(vccid_slot *slot, bool present, int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	struct vccid_slot_status st;

	for (;;) {
		long left = deadline - now_ms();

		vccid_slot_get_status(slot, &st);
		if (st.present == present)
			return true;
		if (left <= 0)
			return false;
		(void)vccid_slot_wait_change(slot, st.changes, (int)left);
	}
}

static const uint8_t get_atr[] = { 0x00, 0x01, 0x04 };

/* A short backoff keeps the test short: 50 ms doubling to 800 ms. */
#define FIRST_MS 50
#define MAX_MS 800

static void test_connect_backoff_and_remove_insert(void **state)
{
	static const uint8_t off[] = { 0x00, 0x01, 0x00 };
	static const uint8_t on_atr[] = { 0x00, 0x01, 0x01, 0x00, 0x01, 0x04 };
	uint16_t port = free_port();
	char target[32], peer[64], want_peer[32];
	struct vccid_vpcd_slot_opts opts = {
		.host = "127.0.0.1", .timeout_ms = 1000, .max_connections = 1,
		.reader = "test", .index = 0, .connect = target,
		.backoff_first_ms = FIRST_MS, .backoff_max_ms = MAX_MS,
	};
	vccid_slot *slot = vccid_slot_new();
	long t[4], first_attempt_ms;
	bool outbound = false;
	int lfd, fd, i;

	(void)state;
	snprintf(target, sizeof(target), "127.0.0.1:%u", (unsigned)port);
	snprintf(want_peer, sizeof(want_peer), "127.0.0.1:%u", (unsigned)port);
	logged[0] = '\0';
	vccid_log_set_sink(capture_sink);
	vccid_log_set_level(VCCID_LOG_INFO);
	first_attempt_ms = now_ms();
	assert_int_equal(vccid_vpcd_offer_slot(slot, &opts), VCCID_OK);
	assert_true(vccid_vpcd_slot_bound(slot));
	assert_false(vccid_vpcd_slot_peer(slot, peer, sizeof(peer), &outbound));
	assert_true(outbound);
	assert_string_equal(peer, want_peer);   /* the card's address while it is away */

	/* Nothing listens for 300 ms: refused (at 0, 50 and 150 ms), logged once. */
	assert_false(wait_present(slot, true, 300));
	assert_int_equal(log_count("cannot connect to 127.0.0.1:"), 1);
	assert_int_equal(log_count("Connection refused"), 1);
	assert_int_equal(log_count("retrying in 50 ms, then doubling to 800 ms"), 1);

	/* A card that takes the connection and closes it at once: the waits double to the cap. */
	lfd = listen_on(port);
	for (i = 0; i < 3; i++) {
		fd = accept_within(lfd, 3000, &t[i]);
		expect_bytes(fd, get_atr, sizeof(get_atr));
		close(fd);
	}
	print_message("# first connect after %ld ms, then %ld and %ld ms apart\n",
		      t[0] - first_attempt_ms, t[1] - t[0], t[2] - t[1]);
	assert_true(t[0] - first_attempt_ms >= 350 - 20);   /* 50 + 100 + 200 */
	assert_true(t[0] - first_attempt_ms < 350 + 300);
	assert_true(t[1] - t[0] >= 400 - 20);
	assert_true(t[2] - t[1] >= MAX_MS - 20);
	assert_true(t[2] - t[1] <= MAX_MS + 300);             /* never past the cap */
	assert_int_equal(log_count("reaches 127.0.0.1:"), 1);
	assert_true(log_count("dropped: connection closed; connecting again in") >= 2);
	assert_int_equal(log_count("cannot connect to 127.0.0.1:"), 1);

	/* A card that answers: inserted, and the peer is the connection's. */
	fd = accept_within(lfd, 3000, &t[3]);
	assert_true(t[3] - t[2] >= MAX_MS - 20);
	expect_bytes(fd, get_atr, sizeof(get_atr));
	assert_int_equal(write(fd, atr_msg, sizeof(atr_msg)), (ssize_t)sizeof(atr_msg));
	assert_true(wait_present(slot, true, 3000));
	assert_true(vccid_vpcd_slot_peer(slot, peer, sizeof(peer), &outbound));
	assert_true(outbound);
	assert_string_equal(peer, want_peer);

	/* vccid-ctl remove: out of the slot, power off on the same connection. */
	assert_int_equal(vccid_vpcd_slot_eject(slot), VCCID_OK);
	assert_false(vccid_slot_present(slot));
	expect_bytes(fd, off, sizeof(off));
	assert_int_equal(vccid_vpcd_slot_eject(slot), VCCID_ENOCARD);
	assert_true(vccid_vpcd_slot_peer(slot, peer, sizeof(peer), &outbound));
	/* vccid-ctl insert: power on and GET ATR; back in when the ATR comes. */
	assert_int_equal(vccid_vpcd_slot_reinsert(slot), VCCID_OK);
	expect_bytes(fd, on_atr, sizeof(on_atr));
	assert_false(vccid_slot_present(slot));
	assert_int_equal(write(fd, atr_msg, sizeof(atr_msg)), (ssize_t)sizeof(atr_msg));
	assert_true(wait_present(slot, true, 3000));
	assert_int_equal(vccid_vpcd_slot_reinsert(slot), VCCID_EBUSY);

	/* Removed and the card goes: it stays out, and the next connection's card too. */
	assert_int_equal(vccid_vpcd_slot_eject(slot), VCCID_OK);
	expect_bytes(fd, off, sizeof(off));
	close(fd);
	fd = accept_within(lfd, 3000, &t[0]);
	expect_bytes(fd, get_atr, sizeof(get_atr));
	assert_int_equal(write(fd, atr_msg, sizeof(atr_msg)), (ssize_t)sizeof(atr_msg));
	assert_false(wait_present(slot, true, 300));
	assert_int_equal(vccid_vpcd_slot_reinsert(slot), VCCID_OK);
	expect_bytes(fd, on_atr, sizeof(on_atr));
	assert_int_equal(write(fd, atr_msg, sizeof(atr_msg)), (ssize_t)sizeof(atr_msg));
	assert_true(wait_present(slot, true, 3000));

	/* The card goes: removal, and vccid connects again. */
	close(fd);
	assert_true(wait_present(slot, false, 3000));
	fd = accept_within(lfd, 3000, &t[0]);
	expect_bytes(fd, get_atr, sizeof(get_atr));
	close(fd);
	close(lfd);
	vccid_vpcd_withdraw_slot(slot);
	assert_false(vccid_vpcd_slot_bound(slot));
	vccid_log_set_sink(NULL);
	vccid_slot_free(slot);
}

/* A card that takes the connection and never answers GET ATR: dropped after timeout-ms. */
static void test_connect_stall(void **state)
{
	uint16_t port = free_port();
	char target[32];
	struct vccid_vpcd_slot_opts opts = {
		.host = "127.0.0.1", .timeout_ms = 300, .max_connections = 1,
		.reader = "test", .index = 1, .connect = target,
		.backoff_first_ms = FIRST_MS, .backoff_max_ms = MAX_MS,
	};
	vccid_slot *slot = vccid_slot_new();
	long t0, t1;
	int lfd = listen_on(port), fd, fd2;
	uint8_t byte;

	(void)state;
	snprintf(target, sizeof(target), "localhost:%u", (unsigned)port);
	logged[0] = '\0';
	vccid_log_set_sink(capture_sink);
	assert_int_equal(vccid_vpcd_offer_slot(slot, &opts), VCCID_OK);
	fd = accept_within(lfd, 3000, &t0);
	expect_bytes(fd, get_atr, sizeof(get_atr));
	fd2 = accept_within(lfd, 3000, &t1);
	/* Dropped at the deadline (the first connection ends), then a backoff. */
	assert_int_equal(read(fd, &byte, 1), 0);
	assert_true(t1 - t0 >= 300 + FIRST_MS - 20);
	assert_int_equal(log_count("dropped: no ATR in time; connecting again in 50 ms"), 1);
	close(fd);
	close(fd2);
	close(lfd);
	vccid_vpcd_withdraw_slot(slot);
	vccid_log_set_sink(NULL);
	vccid_slot_free(slot);
}

/* A bad target: refused at the offer, logged, nothing started. */
static void test_connect_bad_target(void **state)
{
	struct vccid_vpcd_slot_opts opts = {
		.host = "127.0.0.1", .timeout_ms = 300, .max_connections = 1,
		.reader = "test", .index = 2, .connect = "unix:/run/x",
	};
	vccid_slot *slot = vccid_slot_new();

	(void)state;
	logged[0] = '\0';
	vccid_log_set_sink(capture_sink);
	assert_int_equal(vccid_vpcd_offer_slot(slot, &opts), VCCID_ECONFIG);
	assert_int_equal(log_count("cannot connect to 'unix:/run/x': vpcd speaks TCP only"), 1);
	opts.connect = "127.0.0.1";
	assert_int_equal(vccid_vpcd_offer_slot(slot, &opts), VCCID_ECONFIG);
	assert_false(vccid_vpcd_slot_bound(slot));
	assert_int_equal(vccid_vpcd_slot_eject(slot), VCCID_ENOENT);
	assert_int_equal(vccid_vpcd_slot_reinsert(slot), VCCID_ENOENT);
	vccid_log_set_sink(NULL);
	vccid_slot_free(slot);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_backoff_and_remove_insert),
		cmocka_unit_test(test_connect_stall),
		cmocka_unit_test(test_connect_bad_target),
	};

	return cmocka_run_group_tests_name("vpcd-connect", tests, NULL, NULL);
}
