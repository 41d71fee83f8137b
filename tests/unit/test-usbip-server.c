/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The USB/IP server (usb/usbip.c) over 127.0.0.1 with scripted importers:
 * answers stay bounded when the host never reads bulk-IN, squatting or stuck
 * peers do not keep the device list from others, refusals are rate limited,
 * and import, CCID commands from several threads, detach and re-import work
 * (the ThreadSanitizer run, README).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "corelib/slot.h"
#include "net/net.h"
#include "usb/device.h"
#include "usb/usbip-proto.h"
#include "usb/usbip.h"
#include "tests/unit/fake-card.h"
#include "usbip-test.h"

#define N_SLOTS 2
#define PC_to_RDR_GetSlotStatus 0x65
#define PC_to_RDR_IccPowerOn 0x62
#define RDR_to_PC_SlotStatus 0x81
#define RDR_to_PC_DataBlock 0x80
/* RET_SUBMIT does not say the direction: the seqnums of IN URBs here carry this bit. */
#define IN_SEQ 0x40000000u

/* ------------------------------------------------------------------ log capture */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned log_refusals;   /* lines saying a newcomer was refused */

static void log_sink(enum vccid_log_level level, const char *line)
{
	(void)level;
	if (getenv("TEST_LOG") != NULL)
		fprintf(stderr, "%s\n", line);
	pthread_mutex_lock(&log_lock);
	if (strstr(line, "refused") != NULL && strstr(line, "usbip") != NULL)
		log_refusals++;
	pthread_mutex_unlock(&log_lock);
}

static unsigned refusal_lines(void)
{
	unsigned n;

	pthread_mutex_lock(&log_lock);
	n = log_refusals;
	pthread_mutex_unlock(&log_lock);
	return n;
}

/* ------------------------------------------------------------------ the server */

struct server_fixture {
	vccid_slot *slots[N_SLOTS];
	struct fake_card cards[N_SLOTS];   /* each answers an APDU with its length and 90 00 */
	vccid_usbdev *dev;
	pthread_t thread;
	volatile sig_atomic_t stop;
	char addr[64];
	struct sockaddr_in sin;
	int rv;
};

static void *server_main(void *arg)
{
	struct server_fixture *f = arg;

	f->rv = vccid_usbip_serve(f->dev, f->addr, "1-1", &f->stop);
	return NULL;
}

static int connect_server(const struct server_fixture *f)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (const struct sockaddr *)&f->sin, sizeof(f->sin)) == 0)
		return fd;
	if (fd >= 0)
		close(fd);
	return -1;
}

static int setup(void **state)
{
	struct server_fixture *f = calloc(1, sizeof(*f));
	socklen_t len = sizeof(f->sin);
	long long until;
	size_t i;
	int fd;

	assert_non_null(f);
	vccid_log_set_sink(log_sink);
	vccid_log_set_level(VCCID_LOG_INFO);
	for (i = 0; i < N_SLOTS; i++) {
		f->slots[i] = vccid_slot_new();
		fake_card_init(&f->cards[i], FAKE_OK);
		f->cards[i].answers = FAKE_ANSWER_LENGTH;
		assert_int_equal(fake_card_insert(f->slots[i], &f->cards[i], "card"), VCCID_OK);
	}
	f->dev = vccid_usbdev_new(f->slots, N_SLOTS, NULL);
	assert_non_null(f->dev);
	/* A free port: the kernel picks one, the server binds it next. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	f->sin.sin_family = AF_INET;
	f->sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&f->sin, sizeof(f->sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&f->sin, &len), 0);
	close(fd);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", ntohs(f->sin.sin_port));
	assert_int_equal(pthread_create(&f->thread, NULL, server_main, f), 0);
	for (until = vccid_now_ms() + 5000; vccid_now_ms() < until; usleep(10000)) {
		fd = connect_server(f);
		if (fd >= 0) {
			close(fd);
			break;
		}
	}
	assert_true(vccid_now_ms() < until);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct server_fixture *f = *state;
	size_t i;

	__atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
	pthread_join(f->thread, NULL);
	assert_int_equal(f->rv, VCCID_OK);
	vccid_usbdev_free(f->dev);
	for (i = 0; i < N_SLOTS; i++) {
		vccid_slot_free(f->slots[i]);
		fake_card_destroy(&f->cards[i]);
	}
	free(f);
	vccid_log_set_sink(NULL);
	return 0;
}

/* ------------------------------------------------------------------ a scripted importer */

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads exactly @p len bytes within @p timeout_ms; false on timeout or end. */
static bool read_full(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
	long long until = vccid_now_ms() + timeout_ms;
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		long long left = until - vccid_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return false;
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n == 0)
			return false;
		if (n > 0)
			got += (size_t)n;
	}
	return true;
}

static void send_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* OP_REQ_DEVLIST: true when the one-device list came within @p timeout_ms. */
static bool devlist(const struct server_fixture *f, int timeout_ms)
{
	static const uint8_t req[] = { 0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0 };
	uint8_t rep[12];
	int fd = connect_server(f);
	bool ok;

	if (fd < 0)
		return false;
	ok = send(fd, req, sizeof(req), MSG_NOSIGNAL) == (ssize_t)sizeof(req) &&
	     read_full(fd, rep, sizeof(rep), timeout_ms) && get32(rep + 8) == 1;
	close(fd);
	return ok;
}

/* OP_REQ_IMPORT of 1-1: the connection, or -1 when refused. */
static int import(const struct server_fixture *f)
{
	uint8_t req[VCCID_USBIP_REQ_IMPORT_SIZE] = { 0x01, 0x11, 0x80, 0x03, 0, 0, 0, 0, '1', '-', '1' };
	uint8_t rep[VCCID_USBIP_REP_IMPORT_SIZE];
	int fd = connect_server(f);

	if (fd < 0)
		return -1;
	send_all(fd, req, sizeof(req));
	if (!read_full(fd, rep, 8, 2000) || get32(rep + 4) != 0 ||
	    !read_full(fd, rep + 8, sizeof(rep) - 8, 2000)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Import, retrying while the last importer is still going away. */
static int import_retry(const struct server_fixture *f)
{
	long long until = vccid_now_ms() + 3000;
	int fd;

	while ((fd = import(f)) < 0 && vccid_now_ms() < until)
		usleep(20000);
	assert_true(fd >= 0);
	return fd;
}

/* A bulk-OUT URB with one 10-byte CCID command. */
static size_t ccid_command(uint8_t *buf, uint32_t seq, uint8_t type, uint8_t slot, uint8_t bseq)
{
	uint8_t msg[10] = { type, 0, 0, 0, 0, slot, bseq, 0, 0, 0 };

	return submit(buf, seq, USBIP_DIR_OUT, VCCID_USB_EP_BULK_OUT & 0x0F, sizeof(msg), NULL,
		      msg);
}

/* Reads one RET_SUBMIT and its IN data (up to @p size bytes into @p data). */
static bool read_ret(int fd, struct vccid_usbip_ret *r, uint8_t *data, size_t size,
		     int timeout_ms)
{
	uint8_t hdr[VCCID_USBIP_HEADER_SIZE];
	uint8_t skip[512];

	if (!read_full(fd, hdr, sizeof(hdr), timeout_ms) || vccid_usbip_ret_decode(hdr, r) != 0)
		return false;
	if (r->command != USBIP_RET_SUBMIT || !(r->seqnum & IN_SEQ) || r->actual_length == 0)
		return true;
	if (r->actual_length > sizeof(skip))
		return false;
	if (!read_full(fd, skip, r->actual_length, timeout_ms))
		return false;
	if (data != NULL)
		memcpy(data, skip, r->actual_length < size ? r->actual_length : size);
	return true;
}

static void set_configuration(int fd, uint32_t seq)
{
	static const uint8_t setup[8] = { 0x00, 0x09, 0x01, 0, 0, 0, 0, 0 };
	uint8_t buf[VCCID_USBIP_HEADER_SIZE];
	struct vccid_usbip_ret r;

	send_all(fd, buf, submit(buf, seq, USBIP_DIR_OUT, 0, 0, setup, NULL));
	assert_true(read_ret(fd, &r, NULL, 0, 2000));
	assert_int_equal(r.seqnum, seq);
	assert_int_equal(r.status, 0);
}

static long rss_kib(void)
{
	FILE *fp = fopen("/proc/self/statm", "r");
	long size = 0, resident = 0;

	if (fp == NULL)
		return 0;
	if (fscanf(fp, "%ld %ld", &size, &resident) != 2)
		resident = 0;
	fclose(fp);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ------------------------------------------------------------------ tests */

/*
 * An importer that sends CCID commands and never submits bulk-IN: the daemon
 * takes VCCID_USBDEV_MAX_ANSWERS of them (their OUT URBs complete), keeps
 * VCCID_USBIP_MAX_OUT_PENDING more URBs pending and then closes the
 * connection, so 200k commands cannot grow its memory.
 */
static void test_unread_answers_bounded(void **state)
{
	struct server_fixture *f = *state;
	enum { COMMANDS = 200000, URB = VCCID_USBIP_HEADER_SIZE + 10 };
	static uint8_t out[256 * URB];
	int fd = import_retry(f);
	long before = rss_kib();
	long long until = vccid_now_ms() + 10000;
	size_t sent = 0, out_off = 0, out_len = 0;
	size_t completed = 0;
	uint8_t rx[64 * 1024];
	size_t rx_len = 0;
	uint32_t seq = 100;
	bool closed = false;

	set_configuration(fd, 1);
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	/* Write commands while reading (and counting) the OUT completions. */
	while (sent < COMMANDS && !closed && vccid_now_ms() < until) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN | POLLOUT };
		ssize_t n;

		if (out_off == out_len) {
			for (out_len = 0, out_off = 0; out_len + URB <= sizeof(out) &&
			     sent + out_len / URB < COMMANDS; out_len += URB) {
				(void)ccid_command(out + out_len, seq, PC_to_RDR_GetSlotStatus, 0,
						   (uint8_t)seq);
				seq++;
			}
		}
		(void)poll(&pfd, 1, 50);
		n = send(fd, out + out_off, out_len - out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			size_t before_cmds = out_off / URB;

			out_off += (size_t)n;
			sent += out_off / URB - before_cmds;
		} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			closed = true;
		}
		n = recv(fd, rx + rx_len, sizeof(rx) - rx_len, MSG_DONTWAIT);
		if (n > 0)
			rx_len += (size_t)n;
		else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			closed = true;
		/* Every reply here is a 48-byte OUT completion. */
		completed += rx_len / VCCID_USBIP_HEADER_SIZE;
		rx_len %= VCCID_USBIP_HEADER_SIZE;
	}
	print_message("# %zu commands sent, %zu completed, closed %d, RSS %+ld KiB\n", sent,
		      completed, closed, rss_kib() - before);
	assert_true(closed);
	assert_int_equal(completed, VCCID_USBDEV_MAX_ANSWERS);
	assert_true(rss_kib() - before < 2048);
	close(fd);
}

/*
 * Commands beyond VCCID_USBDEV_MAX_ANSWERS unread answers wait (their URBs
 * pending) while IN URBs still go through, and go on as answers are taken.
 */
static void test_unread_answers_backpressure(void **state)
{
	struct server_fixture *f = *state;
	enum { EXTRA = 3 };
	int fd = import_retry(f);
	uint8_t buf[VCCID_USBIP_HEADER_SIZE + 10];
	struct vccid_usbip_ret r;
	uint32_t seq = 100;
	size_t i;

	set_configuration(fd, 1);
	for (i = 0; i < VCCID_USBDEV_MAX_ANSWERS + EXTRA; i++) {
		send_all(fd, buf, ccid_command(buf, seq, PC_to_RDR_GetSlotStatus, 0, (uint8_t)i));
		seq++;
	}
	for (i = 0; i < VCCID_USBDEV_MAX_ANSWERS; i++) {
		assert_true(read_ret(fd, &r, NULL, 0, 2000));
		assert_int_equal(r.seqnum, 100 + i);
	}
	assert_false(read_ret(fd, &r, NULL, 0, 300));   /* the rest waits */
	for (i = 0; i < EXTRA; i++) {
		uint8_t data[64];
		bool got_answer = false;
		size_t got_out = 0;

		send_all(fd, buf, submit(buf, IN_SEQ | (1000 + (uint32_t)i), USBIP_DIR_IN,
					 VCCID_USB_EP_BULK_IN & 0x0F, 64, NULL, NULL));
		/* Its answer, and (the room it made) one more command taken. */
		while (!got_answer || got_out == 0) {
			assert_true(read_ret(fd, &r, data, sizeof(data), 2000));
			assert_int_equal(r.status, 0);
			if (r.seqnum & IN_SEQ) {
				assert_int_equal(data[0], RDR_to_PC_SlotStatus);
				got_answer = true;
			} else {
				assert_int_equal(r.seqnum, 100 + VCCID_USBDEV_MAX_ANSWERS + i);
				got_out++;
			}
		}
	}
	close(fd);
}

/* Eight connections that ask for nothing do not keep the device list from a newcomer. */
static void test_squatters_do_not_lock_out(void **state)
{
	struct server_fixture *f = *state;
	int squat[VCCID_USBIP_MAX_CONNECTIONS];
	int importer = import_retry(f);
	struct vccid_usbip_ret r;
	uint8_t buf[VCCID_USBIP_HEADER_SIZE];
	static const uint8_t get_desc[8] = { 0x80, 0x06, 0x00, 0x01, 0, 0, 18, 0 };
	long long t0;
	size_t i;

	for (i = 0; i < VCCID_USBIP_MAX_CONNECTIONS; i++)
		assert_true((squat[i] = connect_server(f)) >= 0);
	usleep((VCCID_USBIP_EVICT_GRACE_MS + 100) * 1000);
	for (i = 0; i < 3; i++) {
		t0 = vccid_now_ms();
		assert_true(devlist(f, 1000));
		assert_true(vccid_now_ms() - t0 < 1000);
	}
	/* The importer was never the one closed. */
	send_all(importer, buf, submit(buf, IN_SEQ | 7, USBIP_DIR_IN, 0, 18, get_desc, NULL));
	assert_true(read_ret(importer, &r, NULL, 0, 2000));
	assert_int_equal(r.seqnum, IN_SEQ | 7);
	assert_int_equal(r.actual_length, 18);
	close(importer);
	for (i = 0; i < VCCID_USBIP_MAX_CONNECTIONS; i++)
		close(squat[i]);
}

/*
 * An importer that floods requests and never reads its socket blocks only its
 * own connection: the device list still comes at once to others.
 */
static void test_stuck_importer_does_not_block(void **state)
{
	struct server_fixture *f = *state;
	static const uint8_t get_desc[8] = { 0x80, 0x06, 0x00, 0x02, 0, 0, 0xFF, 0 };
	int fd = import_retry(f);
	uint8_t buf[VCCID_USBIP_HEADER_SIZE];
	int small = 4096;
	uint32_t seq = 1;
	long long until = vccid_now_ms() + 3000;
	long long t0;

	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	assert_int_equal(fcntl(fd, F_SETFL, O_NONBLOCK), 0);
	/* Until the server's replies fill both socket buffers and it stops reading. */
	while (vccid_now_ms() < until) {
		size_t n = submit(buf, seq, USBIP_DIR_IN, 0, 0xFF, get_desc, NULL);
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };

		if (send(fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)n) {
			seq++;
			continue;
		}
		if (poll(&pfd, 1, 300) == 0)
			break;   /* stuck: the server waits on us */
	}
	assert_true(vccid_now_ms() < until);
	t0 = vccid_now_ms();
	assert_true(devlist(f, 1000));
	assert_true(vccid_now_ms() - t0 < 1000);
	close(fd);
}

/* True when the server closed @p fd within @p timeout_ms (a refusal). */
static bool closed_within(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t byte;

	return poll(&pfd, 1, timeout_ms) == 1 && recv(fd, &byte, 1, MSG_DONTWAIT) <= 0;
}

/*
 * A flood of newcomers that cannot be given a place (every place held by a
 * connection younger than the grace) logs one line a second, with a count.
 * A newcomer that does get a place stays as one more squatter.
 */
static void test_refusals_rate_limited(void **state)
{
	struct server_fixture *f = *state;
	enum { MAX_SQUAT = 256 };
	int squat[MAX_SQUAT];
	size_t n_squat = 0;
	unsigned before = refusal_lines();
	long long t0 = vccid_now_ms();
	long long elapsed;
	unsigned refused = 0, lines;

	/* Every place taken at once, so that none is past the grace for a while. */
	while (n_squat < VCCID_USBIP_MAX_CONNECTIONS)
		assert_true((squat[n_squat++] = connect_server(f)) >= 0);
	while (refused < 200 && n_squat < MAX_SQUAT && vccid_now_ms() - t0 < 5000) {
		int fd = connect_server(f);

		assert_true(fd >= 0);
		if (closed_within(fd, 100)) {
			refused++;
			close(fd);
		} else {
			squat[n_squat++] = fd;
		}
	}
	elapsed = vccid_now_ms() - t0;
	lines = refusal_lines() - before;
	print_message("# %u newcomers refused in %lld ms, %u log lines\n", refused, elapsed,
		      lines);
	assert_true(refused >= 20);
	assert_true(lines >= 1 && lines <= (unsigned)(elapsed / VCCID_NET_REFUSAL_PERIOD_MS) + 1);
	while (n_squat > 0)
		close(squat[--n_squat]);
}

static long cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
}

/*
 * Out of descriptors, accept() fails with the newcomer still queued: the
 * server pauses instead of spinning on a readable socket, says so once, and
 * takes the newcomer when descriptors are back.
 */
static void test_out_of_descriptors_pauses(void **state)
{
	struct server_fixture *f = *state;
	static const uint8_t req[] = { 0x01, 0x11, 0x80, 0x05, 0, 0, 0, 0 };
	enum { MAX_FILL = 65536 };
	int *fill = calloc(MAX_FILL, sizeof(int));
	uint8_t rep[12];
	unsigned before = refusal_lines();
	struct rlimit saved, low;
	size_t n = 0;
	long cpu;
	int fd;

	assert_non_null(fill);
	/* A low limit, so that filling it is quick whatever the system's is. */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = saved.rlim_cur < 512 ? saved.rlim_cur : 512;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	usleep(300000);   /* the readiness probe's connection thread is gone */
	while (n < MAX_FILL && (fill[n] = dup(0)) >= 0)
		n++;
	assert_true(n > 1 && n < MAX_FILL);
	close(fill[--n]);   /* one for the client's socket, none for the server */
	fd = connect_server(f);
	assert_true(fd >= 0);
	send_all(fd, req, sizeof(req));
	cpu = cpu_ms();
	usleep(600000);
	cpu = cpu_ms() - cpu;
	print_message("# 600 ms out of descriptors: %ld ms of CPU, %u log lines\n", cpu,
		      refusal_lines() - before);
	assert_true(cpu < 200);
	assert_true(refusal_lines() - before >= 1 && refusal_lines() - before <= 2);
	while (n > 0)
		close(fill[--n]);
	free(fill);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
	/* Descriptors are back: the waiting newcomer is served. */
	assert_true(read_full(fd, rep, sizeof(rep), 2000));
	assert_int_equal(get32(rep + 8), 1);
	close(fd);
}

/* ---- several threads of one importer: the path ThreadSanitizer looks at ---- */

struct importer {
	int fd;
	pthread_mutex_t lock;   /* the socket's writes, the counters */
	pthread_cond_t progress;
	uint32_t seq;
	unsigned in_sent, in_done, out_done, answers_ok;
};

enum { COMMANDS_PER_THREAD = 200, MAX_IN_FLIGHT = 8 };

struct sender {
	struct importer *imp;
	uint8_t slot;
};

static void *sender_main(void *arg)
{
	struct sender *s = arg;
	struct importer *imp = s->imp;
	unsigned i;

	for (i = 0; i < COMMANDS_PER_THREAD; i++) {
		uint8_t buf[2 * VCCID_USBIP_HEADER_SIZE + 10];
		size_t n;

		pthread_mutex_lock(&imp->lock);
		while (imp->in_sent - imp->in_done >= MAX_IN_FLIGHT)
			pthread_cond_wait(&imp->progress, &imp->lock);
		n = ccid_command(buf, imp->seq++, i % 2 ? PC_to_RDR_IccPowerOn
							  : PC_to_RDR_GetSlotStatus,
				 s->slot, (uint8_t)i);
		n += submit(buf + n, IN_SEQ | imp->seq++, USBIP_DIR_IN, VCCID_USB_EP_BULK_IN & 0x0F, 64, NULL,
			    NULL);
		imp->in_sent++;
		send_all(imp->fd, buf, n);
		pthread_mutex_unlock(&imp->lock);
	}
	return NULL;
}

static void run_importer(struct server_fixture *f, unsigned threads)
{
	struct importer imp = { .seq = 1000 };
	struct sender senders[N_SLOTS * 2];
	pthread_t tid[N_SLOTS * 2];
	uint8_t buf[VCCID_USBIP_HEADER_SIZE];
	unsigned total = threads * COMMANDS_PER_THREAD;
	unsigned i;

	imp.fd = import_retry(f);
	pthread_mutex_init(&imp.lock, NULL);
	pthread_cond_init(&imp.progress, NULL);
	set_configuration(imp.fd, 1);
	/* An interrupt URB for the slot-change worker. */
	send_all(imp.fd, buf, submit(buf, IN_SEQ | 2, USBIP_DIR_IN, VCCID_USB_EP_INTERRUPT_IN & 0x0F,
				     VCCID_USB_INTERRUPT_PACKET, NULL, NULL));
	for (i = 0; i < threads; i++) {
		senders[i].imp = &imp;
		senders[i].slot = (uint8_t)(i % N_SLOTS);
		assert_int_equal(pthread_create(&tid[i], NULL, sender_main, &senders[i]), 0);
	}
	while (imp.out_done < total || imp.in_done < total) {
		struct vccid_usbip_ret r;
		uint8_t data[64];

		assert_true(read_ret(imp.fd, &r, data, sizeof(data), 5000));
		assert_int_equal(r.status, 0);
		if (r.seqnum == (IN_SEQ | 2))
			continue;   /* the slot-change notification */
		pthread_mutex_lock(&imp.lock);
		if (r.seqnum & IN_SEQ) {
			imp.in_done++;
			imp.answers_ok += data[0] == RDR_to_PC_SlotStatus ||
					  data[0] == RDR_to_PC_DataBlock;
			pthread_cond_broadcast(&imp.progress);
		} else {
			imp.out_done++;
		}
		pthread_mutex_unlock(&imp.lock);
	}
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	assert_int_equal(imp.answers_ok, total);
	/* Detach in the middle of things: URBs still queued. */
	send_all(imp.fd, buf, submit(buf, IN_SEQ | 3, USBIP_DIR_IN, VCCID_USB_EP_BULK_IN & 0x0F, 64,
				     NULL, NULL));
	close(imp.fd);
	pthread_cond_destroy(&imp.progress);
	pthread_mutex_destroy(&imp.lock);
}

static void test_import_threads_detach_reimport(void **state)
{
	struct server_fixture *f = *state;

	run_importer(f, 4);
	assert_true(devlist(f, 1000));
	run_importer(f, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unread_answers_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unread_answers_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_squatters_do_not_lock_out, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stuck_importer_does_not_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusals_rate_limited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_descriptors_pauses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_import_threads_detach_reimport, setup,
						teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
