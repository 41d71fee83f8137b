/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vscard-fake-host: a scripted VSCard host on 127.0.0.1 that checks vccid-share's bytes exactly. */
/*
 * Usage: vscard-fake-host PORTFILE PIDFILE NAME
 *
 * Listens on an ephemeral port of 127.0.0.1 and writes the port number to PORTFILE.
 * The client's PID is read from PIDFILE when a signal must be sent to it. NAME is the
 * reader name the client must send in ReaderAdd. Three connections are scripted:
 *   1. handshake (the ReaderAdd answer assigns reader id 5, so every later message must
 *      carry 5), ATR, SELECT of the CAC PKI applet, Flush, SIGUSR1 (CardRemove),
 *      SIGUSR2 (ATR again); then the host closes: the client must reconnect;
 *   2. the host has the extended capability; after the handshake it announces a payload
 *      over the client's limit: the client must drop the connection and reconnect;
 *   3. ReaderAdd is refused with "cannot add more readers": the client must exit 1
 *      (checked by the calling script).
 * Prints one "ok"/"not ok" line per check; exit 0 when all passed, 1 otherwise, 99 on a
 * setup error. It writes and checks the bytes by hand, on purpose: an independent oracle
 * for the VSCard codec that vccid-share uses (backends/vscard/proto.c).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/bytes.h"
#include "tests/cac-atr.h"

#define IO_TIMEOUT_MS 5000
#define RECONNECT_MAX_MS 3000    /* first backoff step is 0.5 s */

static int failures;

static void check(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool cond, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", cond ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	if (!cond)
		failures++;
}

static void die(const char *what)
{
	printf("# setup error: %s: %s\n", what, strerror(errno));
	exit(99);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly @p len bytes; false on EOF, error or timeout. */
static bool read_exact(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
	size_t done = 0;
	int64_t end = now_ms() + timeout_ms;

	while (done < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = end - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return false;
		n = read(fd, buf + done, len - done);
		if (n <= 0)
			return false;
		done += (size_t)n;
	}
	return true;
}

/* True if the peer closes the connection within @p timeout_ms (any data is discarded). */
static bool wait_eof(int fd, int timeout_ms)
{
	uint8_t junk[256];
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = end - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return false;
		n = read(fd, junk, sizeof(junk));
		if (n <= 0)
			return true;
	}
}


static void send_msg(int fd, uint32_t type, uint32_t id, const void *payload, uint32_t len)
{
	uint8_t buf[12 + 64];

	put32(buf, type);
	put32(buf + 4, id);
	put32(buf + 8, len);
	if (len > 0)
		memcpy(buf + 12, payload, len);
	if (write(fd, buf, 12 + len) != (ssize_t)(12 + len))
		die("write");
}

static void send_error(int fd, uint32_t id, uint32_t code)
{
	uint8_t c[4];

	put32(c, code);
	send_msg(fd, 2, id, c, 4);
}

static void send_init(int fd, uint32_t caps)
{
	uint8_t p[12] = { 'V', 'S', 'C', 'D', 0, 0, 0, 2 };

	put32(p + 8, caps);
	send_msg(fd, 1, 0xFFFFFFFFu, p, sizeof(p));
}

static char *hex(const uint8_t *b, size_t n)
{
	static char s[3 * 64 + 1];
	size_t i;

	s[0] = '\0';
	for (i = 0; i < n && i < 64; i++)
		sprintf(s + 3 * i, "%02X%s", b[i], i + 1 < n ? " " : "");
	return s;
}

/* Reads one message and compares header and payload with what is expected. */
static bool expect_msg(int fd, const char *what, uint32_t type, uint32_t id,
		       const uint8_t *payload, uint32_t len)
{
	uint8_t h[12], p[64];
	uint32_t got_len;

	if (!read_exact(fd, h, sizeof(h), IO_TIMEOUT_MS)) {
		check(false, "%s arrives (no header within %d ms)", what, IO_TIMEOUT_MS);
		return false;
	}
	got_len = get32(h + 8);
	if (got_len > sizeof(p) || !read_exact(fd, p, got_len, IO_TIMEOUT_MS)) {
		check(false, "%s: payload of %u bytes readable", what, got_len);
		return false;
	}
	check(get32(h) == type && get32(h + 4) == id && got_len == len &&
	      (len == 0 || memcmp(p, payload, len) == 0),
	      "%s: got type %u reader %u len %u [%s], want type %u reader %u len %u", what,
	      get32(h), get32(h + 4), got_len, hex(p, got_len), type, id, len);
	return true;
}

static const uint8_t client_init[24] = {
	0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 12, 'V', 'S', 'C', 'D', 0, 0, 0, 2, 0, 1, 0, 0,
};
static const uint8_t reader_remove0[12] = { 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0 };

/* The handshake up to ReaderAdd; answers with @p add_id and @p add_code. */
static bool handshake(int fd, int n, const char *name, uint32_t caps, uint32_t add_id,
		      uint32_t add_code)
{
	uint8_t b[24];
	char what[64];

	if (!read_exact(fd, b, sizeof(b), IO_TIMEOUT_MS)) {
		check(false, "conn %d: client Init (24 bytes) arrives", n);
		return false;
	}
	check(memcmp(b, client_init, sizeof(b)) == 0,
	      "conn %d: client Init is 00000001 00000000 0000000C 56534344 00000002 00010000 [%s]",
	      n, hex(b, sizeof(b)));
	send_init(fd, caps);
	if (!read_exact(fd, b, 12, IO_TIMEOUT_MS)) {
		check(false, "conn %d: ReaderRemove(0) arrives", n);
		return false;
	}
	check(memcmp(b, reader_remove0, 12) == 0, "conn %d: ReaderRemove(0) exact [%s]", n,
	      hex(b, 12));
	snprintf(what, sizeof(what), "conn %d: ReaderAdd with the name", n);
	if (!expect_msg(fd, what, 3, 0, (const uint8_t *)name, (uint32_t)strlen(name)))
		return false;
	send_error(fd, 0, 0);             /* the answer to ReaderRemove(0) */
	send_error(fd, add_id, add_code); /* the answer to ReaderAdd */
	return true;
}

static pid_t client_pid(const char *pidfile)
{
	FILE *f = fopen(pidfile, "r");
	long pid = 0;

	if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1)
		pid = 0;
	if (f)
		fclose(f);
	return (pid_t)pid;
}

static int accept_timed(int lfd, int timeout_ms)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	if (poll(&p, 1, timeout_ms) <= 0)
		return -1;
	return accept(lfd, NULL, NULL);
}

static void conn1(int fd, const char *name, const char *pidfile)
{
	static const uint8_t select_pki[] = {
		0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x00, 0x79, 0x01, 0x00,
	};
	uint8_t h[12], resp[512];
	uint32_t len;
	pid_t pid;

	if (!handshake(fd, 1, name, 0, 5, 0))
		return;
	if (!expect_msg(fd, "conn 1: ATR on reader 5 (the id from the ReaderAdd answer)", 5, 5,
			cac_atr, sizeof(cac_atr)))
		return;
	send_error(fd, 5, 0);

	send_msg(fd, 7, 5, select_pki, sizeof(select_pki));
	if (!read_exact(fd, h, 12, IO_TIMEOUT_MS)) {
		check(false, "conn 1: answer to SELECT arrives");
		return;
	}
	len = get32(h + 8);
	check(get32(h) == 7 && get32(h + 4) == 5 && len >= 2 && len <= sizeof(resp),
	      "conn 1: SELECT answered with an APDU message on reader 5 (type %u reader %u len %u)",
	      get32(h), get32(h + 4), len);
	if (len < 2 || len > sizeof(resp) || !read_exact(fd, resp, len, IO_TIMEOUT_MS))
		return;
	check(resp[len - 2] == 0x90 || resp[len - 2] == 0x61,
	      "conn 1: SELECT PKI applet ends in a success status word (%02X%02X)",
	      resp[len - 2], resp[len - 1]);

	send_msg(fd, 8, 5, NULL, 0);
	expect_msg(fd, "conn 1: Flush answered by FlushComplete", 9, 5, NULL, 0);

	pid = client_pid(pidfile);
	check(pid > 0, "conn 1: client pid known (%ld)", (long)pid);
	if (pid <= 0)
		return;
	kill(pid, SIGUSR1);
	if (!expect_msg(fd, "conn 1: SIGUSR1 sends CardRemove", 6, 5, NULL, 0))
		return;
	send_error(fd, 5, 0);
	kill(pid, SIGUSR2);
	if (!expect_msg(fd, "conn 1: SIGUSR2 sends the ATR again", 5, 5, cac_atr, sizeof(cac_atr)))
		return;
	send_error(fd, 5, 0);
}

static void conn2(int fd, const char *name)
{
	uint8_t h[12];

	if (!handshake(fd, 2, name, 0x00010000u, 0, 0))
		return;
	expect_msg(fd, "conn 2: ATR on reader 0", 5, 0, cac_atr, sizeof(cac_atr));
	send_error(fd, 0, 0);
	/* An APDU of 70000 bytes is over even the extended limit (65536 + 16). */
	put32(h, 7);
	put32(h + 4, 0);
	put32(h + 8, 70000);
	if (write(fd, h, sizeof(h)) != (ssize_t)sizeof(h))
		die("write");
	check(wait_eof(fd, IO_TIMEOUT_MS), "conn 2: client drops a connection announcing a "
	      "70000-byte payload");
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	int lfd, fd, one = 1;
	char tmp[4096];
	FILE *f;
	int64_t t0;

	if (argc != 4) {
		fprintf(stderr, "usage: %s PORTFILE PIDFILE NAME\n", argv[0]);
		return 99;
	}
	signal(SIGPIPE, SIG_IGN);
	alarm(60);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 4) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0)
		die("bind/listen");
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%u\n", ntohs(sa.sin_port)) < 0 || fclose(f) != 0 ||
	    rename(tmp, argv[1]) != 0)
		die("port file");

	fd = accept_timed(lfd, 20000);
	check(fd >= 0, "conn 1: client connects");
	if (fd < 0)
		return 1;
	conn1(fd, argv[3], argv[2]);
	close(fd);    /* the host goes away */
	t0 = now_ms();

	fd = accept_timed(lfd, RECONNECT_MAX_MS);
	check(fd >= 0, "conn 2: client reconnects within %d ms of the host closing (%lld ms)",
	      RECONNECT_MAX_MS, (long long)(now_ms() - t0));
	if (fd < 0)
		return 1;
	conn2(fd, argv[3]);
	close(fd);
	t0 = now_ms();

	fd = accept_timed(lfd, RECONNECT_MAX_MS);
	check(fd >= 0, "conn 3: client reconnects after the protocol error (%lld ms)",
	      (long long)(now_ms() - t0));
	if (fd < 0)
		return 1;
	if (handshake(fd, 3, argv[3], 0, 0xFFFFFFFFu, 2))
		check(wait_eof(fd, IO_TIMEOUT_MS), "conn 3: client hangs up after error 2");
	close(fd);
	/* No reconnect storm: nobody comes back. */
	fd = accept_timed(lfd, 1500);
	check(fd < 0, "no further connection after \"cannot add more readers\"");
	if (fd >= 0)
		close(fd);
	close(lfd);
	return failures ? 1 : 0;
}
