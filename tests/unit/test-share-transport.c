/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of vccid-share's transport: listen mode (one host at a time, refusals logged once a second, the socket file removed) and the TLS options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "corelib/error.h"
#include "corelib/log.h"
#include "net/net.h"
#include "tools/share/transport.h"

#include "table.h"

static char logged[8192];

static void capture_sink(enum vccid_log_level level, const char *line)
{
	size_t used = strlen(logged);

	(void)level;
	snprintf(logged + used, sizeof(logged) - used, "%s\n", line);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

struct fixture {
	char dir[64];
	char path[128];
	struct vccid_share_target target;
	char text[160];
	int listen_fd;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char why[320];

	assert_non_null(f);
	strcpy(f->dir, "/tmp/vccid-share-transport.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/s", f->dir);
	snprintf(f->text, sizeof(f->text), "unix:%s", f->path);
	assert_int_equal(vccid_share_target_parse(f->text, &f->target, why, sizeof(why)),
			 VCCID_OK);
	assert_true(f->target.is_unix);
	logged[0] = '\0';
	vccid_log_set_sink(capture_sink);
	assert_int_equal(vccid_share_transport_listen(&f->target, &f->listen_fd), VCCID_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	vccid_log_set_sink(NULL);
	vccid_share_transport_unlisten(&f->target, f->listen_fd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A host connecting to the fixture's socket. */
static int host_connect(const struct fixture *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sun.sun_path, f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

/* What the host reads within 2 s: 0 for end of stream, 1 for data, -1 for nothing. */
static int host_reads(int fd)
{
	struct timeval tv = { .tv_sec = 2 };
	char b;
	ssize_t n;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	n = recv(fd, &b, 1, 0);
	return n > 0 ? 1 : n == 0 ? 0 : -1;
}

static void test_unix_socket_is_private(void **state)
{
	struct fixture *f = *state;
	struct stat st;

	assert_int_equal(stat(f->path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_nothing_pending(void **state)
{
	struct fixture *f = *state;
	struct vccid_net_refusals r = { 0 };
	char peer[VCCID_NET_PEER_MAX];
	int fd = -1;

	assert_int_equal(vccid_share_transport_accept(f->listen_fd, false, &r, &fd, peer,
						      sizeof(peer)), VCCID_ENOENT);
	assert_int_equal(fd, -1);
	assert_string_equal(logged, "");
}

static void test_accept_one_host(void **state)
{
	struct fixture *f = *state;
	struct vccid_net_refusals r = { 0 };
	char peer[VCCID_NET_PEER_MAX], expect[64];
	int host = host_connect(f), fd = -1;

	assert_int_equal(vccid_share_transport_accept(f->listen_fd, false, &r, &fd, peer,
						      sizeof(peer)), VCCID_OK);
	assert_true(fd >= 0);
	/* Non-blocking, as a connected socket from connect: the main loop never waits in recv. */
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	snprintf(expect, sizeof(expect), "unix:uid=%u,pid=%u", (unsigned)getuid(),
		 (unsigned)getpid());
	assert_string_equal(peer, expect);
	assert_int_equal(send(fd, "x", 1, 0), 1);
	assert_int_equal(host_reads(host), 1);
	assert_string_equal(logged, "");
	close(fd);
	close(host);
}

static void test_busy_refuses_and_logs_once_a_second(void **state)
{
	struct fixture *f = *state;
	struct vccid_net_refusals r = { 0 };
	char peer[VCCID_NET_PEER_MAX];
	int hosts[3], fd = -1, i;

	for (i = 0; i < 3; i++) {
		hosts[i] = host_connect(f);
		assert_int_equal(vccid_share_transport_accept(f->listen_fd, true, &r, &fd, peer,
							      sizeof(peer)), VCCID_EBUSY);
		assert_int_equal(fd, -1);
		/* The refused host sees its connection closed at once, without a byte. */
		assert_int_equal(host_reads(hosts[i]), 0);
		close(hosts[i]);
	}
	/* Three refusals within a second: one line, naming the peer and why. */
	assert_int_equal(count(logged, "refused: another host is being served (one at a time)"), 1);
	assert_int_equal(count(logged, VCCID_SHARE_LISTEN_LABEL " peer unix:uid="), 1);
	assert_int_equal(r.suppressed, 2);
	/* Not busy any more: the next host is taken. */
	hosts[0] = host_connect(f);
	assert_int_equal(vccid_share_transport_accept(f->listen_fd, false, &r, &fd, peer,
						      sizeof(peer)), VCCID_OK);
	close(fd);
	close(hosts[0]);
}

static void test_tcp_host(void **state)
{
	struct vccid_share_target t;
	struct vccid_net_refusals r = { 0 };
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	char why[320], peer[VCCID_NET_PEER_MAX];
	int lfd = -1, host, fd = -1, nodelay = 0;
	socklen_t olen = sizeof(nodelay);

	(void)state;
	assert_int_equal(vccid_share_target_parse("127.0.0.1:1", &t, why, sizeof(why)), VCCID_OK);
	t.addr.port = 0;   /* the kernel picks one; the parser never gives 0 */
	assert_int_equal(vccid_share_transport_listen(&t, &lfd), VCCID_OK);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);
	host = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(connect(host, (struct sockaddr *)&sin, len), 0);
	assert_int_equal(vccid_share_transport_accept(lfd, false, &r, &fd, peer, sizeof(peer)),
			 VCCID_OK);
	assert_memory_equal(peer, "127.0.0.1:", 10);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &olen), 0);
	assert_true(nodelay);
	close(fd);
	close(host);
	vccid_share_transport_unlisten(&t, lfd);
}

static void test_unlisten_removes_the_socket(void **state)
{
	struct fixture *f = *state;

	vccid_share_transport_unlisten(&f->target, f->listen_fd);
	f->listen_fd = -1;
	assert_int_equal(access(f->path, F_OK), -1);
}

static void test_target_parse(void **state)
{
	struct vccid_share_target t;
	char why[320];

	(void)state;
	assert_int_equal(vccid_share_target_parse("[::1]:35963", &t, why, sizeof(why)), VCCID_OK);
	assert_false(t.is_unix);
	assert_int_equal(vccid_share_target_parse("127.0.0.1", &t, why, sizeof(why)),
			 VCCID_EINVAL);
	assert_non_null(strstr(why, "'127.0.0.1'"));
	assert_int_equal(vccid_share_target_parse("unix:", &t, why, sizeof(why)), VCCID_EINVAL);
}

/* ---------------------------------------------------------------- TLS options */

struct tls_row {
	const char *name;
	struct vccid_share_tls_opts o;
	bool listen;
	const char *problem;      /* a substring of the usage error; NULL: usable */
};

#define ALLOW1 .allow = { "alice" }, .n_allow = 1

static const struct tls_row tls_rows[] = {
	{ "tls off, nothing given", { 0 }, false, NULL },
	{ "--tls-dir without --tls", { .dir = "d" }, false, "need --tls" },
	{ "--tls-name without --tls", { .name = "h" }, false, "need --tls" },
	{ "--tls alone", { .on = true }, false, "--tls needs --tls-dir" },
	{ "connect: --tls-dir", { .on = true, .dir = "d" }, false, NULL },
	{ "connect: --tls-ca only (no client certificate)", { .on = true, .ca = "c" }, false, NULL },
	{ "connect: cert and key without a CA", { .on = true, .cert = "c", .key = "k" }, false,
	  "needs a CA" },
	{ "connect: a cert without its key", { .on = true, .ca = "a", .cert = "c" }, false,
	  "go together" },
	{ "connect: --tls-allow", { .on = true, .dir = "d", ALLOW1 }, false, "only with --listen" },
	{ "connect: --tls-dir with --tls-name", { .on = true, .dir = "d", .name = "h" }, false, NULL },
	{ "listen: --tls-dir", { .on = true, .dir = "d" }, true, NULL },
	{ "listen: files and --tls-allow", { .on = true, .ca = "a", .cert = "c", .key = "k", ALLOW1 },
	  true, NULL },
	{ "listen: no CA", { .on = true, .cert = "c", .key = "k" }, true, "needs a CA" },
	{ "listen: a CA, no certificate", { .on = true, .ca = "a" }, true, "certificate and key" },
	{ "listen: --tls-name", { .on = true, .dir = "d", .name = "h" }, true, "not with --listen" },
};

static void test_tls_row(void **state)
{
	const struct tls_row *row = *state;
	const char *problem = vccid_share_tls_problem(&row->o, row->listen);

	if (row->problem == NULL) {
		assert_null(problem);
	} else {
		assert_non_null(problem);
		assert_non_null(strstr(problem, row->problem));
	}
}

static void test_tls_name(void **state)
{
	struct vccid_share_tls_opts o = { .on = true, .dir = "d" };
	struct vccid_share_target t;
	char why[320];

	(void)state;
	assert_int_equal(vccid_share_target_parse("vm.example:5000", &t, why, sizeof(why)), 0);
	assert_string_equal(vccid_share_tls_name(&o, &t), "vm.example");
	assert_int_equal(vccid_share_target_parse("[::1]:5000", &t, why, sizeof(why)), 0);
	assert_string_equal(vccid_share_tls_name(&o, &t), "::1");
	assert_int_equal(vccid_share_target_parse("unix:/run/x.sock", &t, why, sizeof(why)), 0);
	assert_null(vccid_share_tls_name(&o, &t));   /* the chain only */
	o.name = "qemu.example";
	assert_string_equal(vccid_share_tls_name(&o, &t), "qemu.example");
}

/* Loading: a missing file is named; the listener's credentials always verify clients. */
static void test_tls_load(void **state)
{
	struct vccid_share_tls_opts o = { .on = true, .dir = "/nonexistent-vccid-dir" };
	vccid_tls_creds *creds = NULL;
	char why[VCCID_TLS_WHY_SIZE];

	(void)state;
	assert_int_equal(vccid_share_tls_load(&o, true, &creds, why, sizeof(why)), VCCID_ECONFIG);
	assert_null(creds);
	assert_non_null(strstr(why, "/nonexistent-vccid-dir/"));
	assert_int_equal(vccid_share_tls_load(&o, false, &creds, why, sizeof(why)), VCCID_ECONFIG);
	assert_non_null(strstr(why, "/nonexistent-vccid-dir/ca-cert.pem"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unix_socket_is_private, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nothing_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_accept_one_host, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_refuses_and_logs_once_a_second, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_unlisten_removes_the_socket, setup, teardown),
		cmocka_unit_test(test_tcp_host),
		cmocka_unit_test(test_target_parse),
		cmocka_unit_test(test_tls_name),
		cmocka_unit_test(test_tls_load),
	};

	return TABLE_RUN("share-transport", tls_rows, test_tls_row, NULL, tests);
}
