/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of net/: listening (TCP, unix, stale and live sockets), peer names, connect and write deadlines. */
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
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "corelib/addr.h"
#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "net/net.h"

static char logged[8192];

static void capture_sink(enum vccid_log_level level, const char *line)
{
	size_t used = strlen(logged);

	(void)level;
	snprintf(logged + used, sizeof(logged) - used, "%s\n", line);
}

/* vccid_net_listen() with its log lines in logged[]. */
static int listen_logged(const struct vccid_addr *addr, const struct vccid_net_listen_opts *o,
			 int *fd)
{
	int rv;

	logged[0] = '\0';
	vccid_log_set_sink(capture_sink);
	rv = vccid_net_listen(addr, o, fd);
	vccid_log_set_sink(NULL);
	return rv;
}

static const struct vccid_net_listen_opts opts = {
	.label = "Test", .exposes = "do things", .unix_mode = 0600,
};

/* 127.0.0.1 with port 0: the kernel picks a free port (the parser never gives 0). */
static struct vccid_addr loopback_any_port(void)
{
	struct vccid_addr addr;

	memset(&addr, 0, sizeof(addr));
	addr.kind = VCCID_ADDR_IPV4;
	strcpy(addr.host, "127.0.0.1");
	return addr;
}

static uint16_t local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static struct vccid_addr unix_addr(const char *path)
{
	struct vccid_addr addr;
	char text[VCCID_ADDR_TEXT_MAX];

	snprintf(text, sizeof(text), "unix:%s", path);
	assert_int_equal(vccid_addr_parse(text, 0, &addr, NULL), VCCID_OK);
	return addr;
}

/* A fresh path in a private directory; removed by the caller with cleanup(). */
static char dir[64];

static void make_path(char *out, size_t size, const char *name)
{
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/vccid-net-XXXXXX");
		assert_non_null(mkdtemp(dir));
	}
	snprintf(out, size, "%s/%s", dir, name);
	unlink(out);
}

/* The connection is queued by the kernel: accept until it shows. */
static int accept_one(int lfd, char *peer, size_t size)
{
	int i, fd = -1;

	for (i = 0; i < 200; i++) {
		if (vccid_net_accept(lfd, "Test", &fd, peer, size) == VCCID_OK)
			return fd;
		usleep(10000);
	}
	fail_msg("no connection to accept");
	return -1;
}

static void test_tcp_listen_accept_connect(void **state)
{
	struct vccid_addr addr = loopback_any_port();
	char peer[VCCID_NET_PEER_MAX], expect[VCCID_NET_PEER_MAX], why[128];
	int lfd, cfd, sfd, flags;

	(void)state;
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	flags = fcntl(lfd, F_GETFL);
	assert_true(flags & O_NONBLOCK);
	assert_true(fcntl(lfd, F_GETFD) & FD_CLOEXEC);
	/* Nothing pending yet. */
	assert_int_equal(vccid_net_accept(lfd, "Test", &sfd, peer, sizeof(peer)), VCCID_EBUSY);
	addr.port = local_port(lfd);
	assert_int_equal(vccid_net_connect(&addr, 2000, -1, &cfd, why, sizeof(why)), VCCID_OK);
	assert_true(fcntl(cfd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(cfd, F_GETFD) & FD_CLOEXEC);
	sfd = accept_one(lfd, peer, sizeof(peer));
	snprintf(expect, sizeof(expect), "127.0.0.1:%u", (unsigned)local_port(cfd));
	assert_string_equal(peer, expect);
	assert_true(fcntl(sfd, F_GETFD) & FD_CLOEXEC);
	vccid_net_peer_name(cfd, peer, sizeof(peer));
	snprintf(expect, sizeof(expect), "127.0.0.1:%u", (unsigned)addr.port);
	assert_string_equal(peer, expect);
	assert_int_equal(vccid_net_write_all(cfd, "ping", 4, vccid_now_ms() + 1000), VCCID_OK);
	{
		char buf[4];

		assert_int_equal(recv(sfd, buf, sizeof(buf), MSG_WAITALL), 4);
		assert_memory_equal(buf, "ping", 4);
	}
	close(cfd);
	close(sfd);
	close(lfd);
}

static void test_ipv6_peer_name(void **state)
{
	struct vccid_addr addr;
	char peer[VCCID_NET_PEER_MAX], expect[VCCID_NET_PEER_MAX];
	int lfd, cfd, sfd = -1;

	(void)state;
	memset(&addr, 0, sizeof(addr));
	addr.kind = VCCID_ADDR_IPV6;
	strcpy(addr.host, "::1");
	if (listen_logged(&addr, &opts, &lfd) != VCCID_OK)
		skip();   /* no IPv6 loopback here */
	addr.port = local_port(lfd);
	assert_int_equal(vccid_net_connect(&addr, 2000, -1, &cfd, NULL, 0), VCCID_OK);
	sfd = accept_one(lfd, peer, sizeof(peer));
	snprintf(expect, sizeof(expect), "[::1]:%u", (unsigned)local_port(cfd));
	assert_string_equal(peer, expect);
	close(cfd);
	close(sfd);
	close(lfd);
}

static void test_all_interfaces_warning(void **state)
{
	struct vccid_addr addr;
	int lfd;

	(void)state;
	memset(&addr, 0, sizeof(addr));
	addr.kind = VCCID_ADDR_IPV4;
	strcpy(addr.host, "0.0.0.0");
	assert_int_equal(listen_logged(&addr, &opts, &lfd), VCCID_OK);
	assert_non_null(strstr(logged, "Test listens on ALL interfaces (0.0.0.0:0)"));
	assert_non_null(strstr(logged, "anyone who reaches it can do things"));
	close(lfd);
	/* Loopback: no warning. */
	addr = loopback_any_port();
	assert_int_equal(listen_logged(&addr, &opts, &lfd), VCCID_OK);
	assert_string_equal(logged, "");
	close(lfd);
}

static void test_tcp_port_taken(void **state)
{
	struct vccid_addr addr = loopback_any_port();
	int lfd, lfd2;

	(void)state;
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	addr.port = local_port(lfd);
	assert_int_equal(listen_logged(&addr, &opts, &lfd2), VCCID_EIO);
	assert_non_null(strstr(logged, "Test cannot listen on 127.0.0.1:"));
	assert_non_null(strstr(logged, "Address already in use"));
	close(lfd);
}

static void test_connect_refused(void **state)
{
	struct vccid_addr addr = loopback_any_port();
	char why[128] = "";
	long long start;
	int lfd, fd = 42;

	(void)state;
	/* A port that was free a moment ago and is closed now. */
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	addr.port = local_port(lfd);
	close(lfd);
	start = vccid_now_ms();
	assert_int_equal(vccid_net_connect(&addr, 2000, -1, &fd, why, sizeof(why)), VCCID_EIO);
	assert_true(vccid_now_ms() - start < 1500);
	assert_int_equal(fd, -1);
	assert_string_equal(why, "Connection refused");
}

static void test_connect_errors(void **state)
{
	struct vccid_addr addr;
	char why[160] = "", text[64];
	int fd, lfd;

	(void)state;
	/* A unix socket that is not there. */
	addr = unix_addr("/nonexistent/vccid.sock");
	assert_int_equal(vccid_net_connect(&addr, 1000, -1, &fd, why, sizeof(why)), VCCID_EIO);
	assert_string_equal(why, "No such file or directory");
	/* A name (from /etc/hosts, no DNS) whose every address refuses. */
	addr = loopback_any_port();
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	snprintf(text, sizeof(text), "localhost:%u", (unsigned)local_port(lfd));
	close(lfd);
	assert_int_equal(vccid_addr_parse(text, 0, &addr, NULL), VCCID_OK);
	assert_int_equal(addr.kind, VCCID_ADDR_NAME);
	assert_int_equal(vccid_net_connect(&addr, 1000, -1, &fd, why, sizeof(why)), VCCID_EIO);
	assert_string_equal(why, "Connection refused");
}

/*
 * A listener whose queue is full: the kernel drops further SYNs, so a connect
 * stays in progress. Connects within 200 ms fill it (held[], at most 8); the
 * first that times out proves it full. Returns the listener, or -1 (skip)
 * when the kernel kept accepting.
 */
static int full_listener(struct vccid_addr *addr, int *held, int *n_held)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int lfd = socket(AF_INET, SOCK_STREAM, 0), fd, rv = VCCID_OK;

	*addr = loopback_any_port();
	*n_held = 0;
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	addr->port = local_port(lfd);
	while (*n_held < 8 && rv == VCCID_OK) {
		rv = vccid_net_connect(addr, 200, -1, &fd, NULL, 0);
		if (rv == VCCID_OK)
			held[(*n_held)++] = fd;
	}
	if (rv != VCCID_OK)
		return lfd;
	while (*n_held > 0)
		close(held[--(*n_held)]);
	close(lfd);
	return -1;
}

static void close_all(int lfd, const int *held, int n_held)
{
	while (n_held > 0)
		close(held[--n_held]);
	close(lfd);
}

/* Connects to a full listener stay in progress until the deadline. */
static void test_connect_timeout_and_cancel(void **state)
{
	struct vccid_addr addr;
	int held[8], n_held, pipefd[2], fd;
	int lfd = full_listener(&addr, held, &n_held);
	char why[128];
	long long start;

	(void)state;
	if (lfd < 0)
		skip();   /* the kernel kept accepting */
	start = vccid_now_ms();
	assert_int_equal(vccid_net_connect(&addr, 300, -1, &fd, why, sizeof(why)), VCCID_ETIMEDOUT);
	assert_true(vccid_now_ms() - start >= 290);
	assert_string_equal(why, "Connection timed out");
	/* The same wait ends at once when the cancel descriptor is readable. */
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(write(pipefd[1], "x", 1), 1);
	start = vccid_now_ms();
	assert_int_equal(vccid_net_connect(&addr, 5000, pipefd[0], &fd, NULL, 0), VCCID_ECANCELED);
	assert_true(vccid_now_ms() - start < 1000);
	close(pipefd[0]);
	close(pipefd[1]);
	close_all(lfd, held, n_held);
}

static void test_write_deadline(void **state)
{
	struct vccid_addr addr = loopback_any_port();
	size_t size = 64u << 20;
	uint8_t *big = calloc(1, size);
	int lfd, cfd, sfd = -1, small = 4096;
	long long start;

	(void)state;
	assert_non_null(big);
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	addr.port = local_port(lfd);
	assert_int_equal(vccid_net_connect(&addr, 2000, -1, &cfd, NULL, 0), VCCID_OK);
	{
		char peer[VCCID_NET_PEER_MAX];

		sfd = accept_one(lfd, peer, sizeof(peer));
	}
	/* The peer never reads: the write fills both buffers, then times out. */
	(void)setsockopt(sfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	(void)setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	start = vccid_now_ms();
	assert_int_equal(vccid_net_write_all(cfd, big, size, start + 300), VCCID_ETIMEDOUT);
	assert_true(vccid_now_ms() - start >= 290);
	assert_true(vccid_now_ms() - start < 3000);
	/* A peer gone: an error, not SIGPIPE. */
	close(sfd);
	usleep(20000);
	assert_int_equal(vccid_net_write_all(cfd, big, size, vccid_now_ms() + 1000), VCCID_EIO);
	close(cfd);
	close(lfd);
	free(big);
}

/* Polls a dial to its end (bounded); returns the last step's result. */
static int dial_finish(vccid_net_dial *dial, int *fd, char *why, size_t size)
{
	int i, rv = VCCID_EBUSY;

	for (i = 0; i < 200 && rv == VCCID_EBUSY; i++) {
		struct pollfd p = { .fd = vccid_net_dial_fd(dial), .events = POLLOUT };

		(void)poll(&p, 1, 10);
		rv = vccid_net_dial_step(dial, fd, why, size);
	}
	return rv;
}

/* The non-blocking connect: start and step never wait, and the socket is connected. */
static void test_dial(void **state)
{
	struct vccid_addr addr = loopback_any_port();
	char why[128] = "", peer[VCCID_NET_PEER_MAX], text[64];
	vccid_net_dial *dial;
	long long start;
	int lfd, fd = -1, sfd;

	(void)state;
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	addr.port = local_port(lfd);
	start = vccid_now_ms();
	assert_int_equal(vccid_net_dial_start(&addr, &dial, why, sizeof(why)), VCCID_OK);
	assert_true(vccid_net_dial_fd(dial) >= 0);
	assert_int_equal(dial_finish(dial, &fd, why, sizeof(why)), VCCID_OK);
	assert_true(vccid_now_ms() - start < 1000);
	vccid_net_dial_free(dial);
	assert_true(fd >= 0);
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	vccid_net_set_blocking(fd);
	assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK);
	sfd = accept_one(lfd, peer, sizeof(peer));
	assert_int_equal(write(fd, "hi", 2), 2);
	assert_int_equal(read(sfd, text, sizeof(text)), 2);
	close(sfd);
	close(fd);
	/* A name: every address is tried (localhost may be ::1 first; we listen on 127.0.0.1). */
	snprintf(text, sizeof(text), "localhost:%u", (unsigned)addr.port);
	assert_int_equal(vccid_addr_parse(text, 0, &addr, NULL), VCCID_OK);
	assert_int_equal(vccid_net_dial_start(&addr, &dial, why, sizeof(why)), VCCID_OK);
	assert_int_equal(dial_finish(dial, &fd, why, sizeof(why)), VCCID_OK);
	vccid_net_dial_free(dial);
	close(fd);
	close(accept_one(lfd, peer, sizeof(peer)));
	/* Refused: the step says so, the caller waited for nothing. */
	addr = loopback_any_port();
	addr.port = local_port(lfd);
	close(lfd);
	start = vccid_now_ms();
	if (vccid_net_dial_start(&addr, &dial, why, sizeof(why)) == VCCID_OK) {
		assert_int_equal(dial_finish(dial, &fd, why, sizeof(why)), VCCID_EIO);
		vccid_net_dial_free(dial);
	} else {
		assert_null(dial);
	}
	assert_true(vccid_now_ms() - start < 1000);
	assert_string_equal(why, "Connection refused");
	/* A unix socket that is not there fails at the start. */
	addr = unix_addr("/nonexistent/vccid.sock");
	assert_int_equal(vccid_net_dial_start(&addr, &dial, why, sizeof(why)), VCCID_EIO);
	assert_null(dial);
	assert_string_equal(why, "No such file or directory");
}

/* A full listener: the dial stays in progress, and a step never waits. */
static void test_dial_in_progress(void **state)
{
	struct vccid_addr addr;
	int held[8], n_held, fd = -1, i;
	int lfd = full_listener(&addr, held, &n_held);
	vccid_net_dial *dial = NULL;
	long long start;

	(void)state;
	if (lfd < 0)
		skip();
	assert_int_equal(vccid_net_dial_start(&addr, &dial, NULL, 0), VCCID_OK);
	start = vccid_now_ms();
	for (i = 0; i < 100; i++)
		assert_int_equal(vccid_net_dial_step(dial, &fd, NULL, 0), VCCID_EBUSY);
	assert_true(vccid_now_ms() - start < 200);
	vccid_net_dial_free(dial);
	vccid_net_dial_free(NULL);
	close_all(lfd, held, n_held);
}

static void test_backoff(void **state)
{
	static const unsigned want[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000 };
	struct vccid_net_backoff b = { .first_ms = 100, .max_ms = 5000 };
	struct vccid_net_backoff odd = { .first_ms = 300, .max_ms = 250 };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_int_equal(vccid_net_backoff_fail(&b), want[i]);
	vccid_net_backoff_reset(&b);
	assert_int_equal(vccid_net_backoff_fail(&b), 100);
	assert_int_equal(vccid_net_backoff_fail(&b), 200);
	/* Never past the cap, even when the first step is over it. */
	assert_int_equal(vccid_net_backoff_fail(&odd), 250);
	assert_int_equal(vccid_net_backoff_fail(&odd), 250);
}

/* The peer holding the most evictable connections loses its oldest one past the grace. */
static void test_pick_eviction(void **state)
{
	const struct vccid_net_evictable c[] = {
		{ "10.0.0.1", 1000 }, { "10.0.0.2", 900 }, { "10.0.0.2", 950 },
		{ "10.0.0.3", 0 },    { "10.0.0.2", 1990 },
	};

	(void)state;
	assert_int_equal(vccid_net_pick_eviction(c, 5, 2000, 500), 1);
	assert_int_equal(vccid_net_pick_eviction(c, 1, 2000, 500), 0);
	assert_int_equal(vccid_net_pick_eviction(c, 5, 1200, 500), -1);   /* all within grace */
	assert_int_equal(vccid_net_pick_eviction(c + 3, 1, 9000, 500), -1);   /* not evictable */
}

static void test_writev_parts(void **state)
{
	int sv[2];
	char buf[16] = "", ab[] = "ab", cde[] = "cde";
	struct iovec iov[3] = {
		{ .iov_base = ab, .iov_len = 2 },
		{ .iov_base = NULL, .iov_len = 0 },
		{ .iov_base = cde, .iov_len = 3 },
	};

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(vccid_net_writev_all(sv[0], iov, 3, -1), VCCID_OK);
	assert_int_equal(recv(sv[1], buf, sizeof(buf), 0), 5);
	assert_memory_equal(buf, "abcde", 5);
	close(sv[0]);
	close(sv[1]);
}

static void test_unix_listen_and_peer(void **state)
{
	char path[128], peer[VCCID_NET_PEER_MAX], expect[VCCID_NET_PEER_MAX];
	struct vccid_addr addr;
	struct stat st;
	int lfd, cfd, sfd = -1;

	(void)state;
	make_path(path, sizeof(path), "fresh.sock");
	addr = unix_addr(path);
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(vccid_net_connect(&addr, 1000, -1, &cfd, NULL, 0), VCCID_OK);
	sfd = accept_one(lfd, peer, sizeof(peer));
	snprintf(expect, sizeof(expect), "unix:uid=%u,pid=%d", (unsigned)getuid(), (int)getpid());
	assert_string_equal(peer, expect);
	close(cfd);
	close(sfd);
	close(lfd);
	unlink(path);
}

/* Hardening: a live socket of another program is never taken over. */
static void test_unix_live_refused(void **state)
{
	char path[128];
	struct vccid_addr addr;
	int lfd, lfd2 = -1, cfd;

	(void)state;
	make_path(path, sizeof(path), "live.sock");
	addr = unix_addr(path);
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	assert_int_equal(listen_logged(&addr, &opts, &lfd2), VCCID_ECONFIG);
	assert_int_equal(lfd2, -1);
	assert_non_null(strstr(logged, "Test cannot listen on unix:"));
	assert_non_null(strstr(logged, "in use by another program"));
	/* The first owner still has its socket. */
	assert_int_equal(vccid_net_connect(&addr, 1000, -1, &cfd, NULL, 0), VCCID_OK);
	close(cfd);
	close(lfd);
	unlink(path);
}

static void test_unix_stale_replaced(void **state)
{
	char path[128];
	struct vccid_addr addr;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, lfd, cfd;

	(void)state;
	make_path(path, sizeof(path), "stale.sock");
	/* A socket file whose owner crashed: bound, never accepting, closed. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sun.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	addr = unix_addr(path);
	assert_int_equal(vccid_net_listen(&addr, &opts, &lfd), VCCID_OK);
	assert_int_equal(vccid_net_connect(&addr, 1000, -1, &cfd, NULL, 0), VCCID_OK);
	close(cfd);
	close(lfd);
	unlink(path);
}

static void test_unix_regular_file_untouched(void **state)
{
	char path[128], buf[16] = "";
	struct vccid_addr addr;
	FILE *f;
	int lfd = -1;

	(void)state;
	make_path(path, sizeof(path), "file");
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("keep me", f);
	fclose(f);
	addr = unix_addr(path);
	assert_int_equal(listen_logged(&addr, &opts, &lfd), VCCID_ECONFIG);
	assert_non_null(strstr(logged, "exists and is not a socket"));
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "keep me");
	unlink(path);
}

/* Hardening: every failure says why, never a stale errno ("Success"). */
static void test_unix_unknown_owner(void **state)
{
	static const struct {
		const char *owner;
		const char *reason;
	} rows[] = {
		{ "vccid-no-such-user", "unknown user 'vccid-no-such-user'" },
		{ "root:vccid-no-such-group", "unknown group 'vccid-no-such-group'" },
		{ ":vccid-no-such-group", "unknown group 'vccid-no-such-group'" },
	};
	struct vccid_net_listen_opts o = opts;
	char path[128];
	struct vccid_addr addr;
	struct stat st;
	size_t i;
	int lfd;

	(void)state;
	make_path(path, sizeof(path), "owner.sock");
	addr = unix_addr(path);
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		o.unix_owner = rows[i].owner;
		assert_int_equal(listen_logged(&addr, &o, &lfd), VCCID_ECONFIG);
		assert_non_null(strstr(logged, rows[i].reason));
		assert_null(strstr(logged, "Success"));
		assert_int_not_equal(lstat(path, &st), 0);   /* nothing left behind */
	}
	/* A known owner works. */
	o.unix_owner = "root:root";
	if (getuid() == 0) {
		assert_int_equal(vccid_net_listen(&addr, &o, &lfd), VCCID_OK);
		close(lfd);
		unlink(path);
	}
}

static int cleanup(void **state)
{
	(void)state;
	if (dir[0] != '\0')
		rmdir(dir);
	return 0;
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tcp_listen_accept_connect),
		cmocka_unit_test(test_ipv6_peer_name),
		cmocka_unit_test(test_all_interfaces_warning),
		cmocka_unit_test(test_tcp_port_taken),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_connect_timeout_and_cancel),
		cmocka_unit_test(test_dial),
		cmocka_unit_test(test_dial_in_progress),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_write_deadline),
		cmocka_unit_test(test_writev_parts),
		cmocka_unit_test(test_pick_eviction),
		cmocka_unit_test(test_unix_listen_and_peer),
		cmocka_unit_test(test_unix_live_refused),
		cmocka_unit_test(test_unix_stale_replaced),
		cmocka_unit_test(test_unix_regular_file_untouched),
		cmocka_unit_test(test_unix_unknown_owner),
	};

	vccid_log_set_level(VCCID_LOG_DEBUG);
	return cmocka_run_group_tests_name("net", tests, NULL, cleanup);
}
