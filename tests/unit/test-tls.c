/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of net/tls: credentials, handshakes and refusals, records over socket pairs. */
#define _GNU_SOURCE
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
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corelib/clock.h"
#include "corelib/error.h"
#include "net/tls.h"
#include "table.h"

static char pki[256];

static int make_pki(void **state)
{
	const char *src = getenv("VCCID_SRCDIR");
	char cmd[1024];

	(void)state;
	snprintf(pki, sizeof(pki), "/tmp/vccid-test-tls.XXXXXX");
	if (mkdtemp(pki) == NULL)
		return -1;
	snprintf(cmd, sizeof(cmd), "sh '%s/tests/mkpki.sh' '%s'", src != NULL ? src : "..", pki);
	return system(cmd) == 0 ? 0 : -1;
}

static int remove_pki(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pki);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *pki_path(const char *rel)
{
	static char bufs[4][512];
	static unsigned next;
	char *b = bufs[next++ % 4];

	snprintf(b, 512, "%s/%s", pki, rel);
	return b;
}

static vccid_tls_creds *load(enum vccid_tls_role role, const char *dir)
{
	struct vccid_tls_files f = { .dir = pki_path(dir) };
	vccid_tls_creds *c = NULL;
	char why[VCCID_TLS_WHY_SIZE];

	if (vccid_tls_creds_load(role, &f, &c, why, sizeof(why)) != VCCID_OK)
		fail_msg("loading %s: %s", dir, why);
	return c;
}

/*
 * A server and a client session over two socket pairs joined by relay(): the test sees
 * every byte between them and can split, hold back or cut the stream.
 */
struct pair {
	int srv_fd, srv_far;     /* server session's socket, and its other end */
	int cli_fd, cli_far;
	vccid_tls *srv, *cli;
	vccid_tls_creds *srv_creds, *cli_creds;
};

static void pair_open(struct pair *p, vccid_tls_creds *srv_creds, vccid_tls_creds *cli_creds,
		      const char *server_name)
{
	int a[2], b[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, b), 0);
	p->srv_fd = a[0];
	p->srv_far = a[1];
	p->cli_fd = b[0];
	p->cli_far = b[1];
	p->srv_creds = srv_creds;
	p->cli_creds = cli_creds;
	if (srv_creds != NULL)
		assert_int_equal(vccid_tls_new(srv_creds, p->srv_fd, NULL, &p->srv), VCCID_OK);
	if (cli_creds != NULL)
		assert_int_equal(vccid_tls_new(cli_creds, p->cli_fd, server_name, &p->cli), VCCID_OK);
}

static void pair_close(struct pair *p)
{
	vccid_tls_free(p->srv);
	vccid_tls_free(p->cli);
	vccid_tls_creds_free(p->srv_creds);
	vccid_tls_creds_free(p->cli_creds);
	close(p->srv_fd);
	close(p->cli_fd);
	if (p->srv_far >= 0)
		close(p->srv_far);
	if (p->cli_far >= 0)
		close(p->cli_far);
}

/* Moves what waits from @p from to @p to, at most @p max bytes; returns the count. */
static size_t relay(int from, int to, size_t max)
{
	uint8_t buf[65536];
	ssize_t n = recv(from, buf, max < sizeof(buf) ? max : sizeof(buf), MSG_DONTWAIT);

	if (n <= 0)
		return 0;
	assert_int_equal(send(to, buf, (size_t)n, MSG_NOSIGNAL), n);
	return (size_t)n;
}

static void relay_all(struct pair *p)
{
	while (relay(p->cli_far, p->srv_far, SIZE_MAX) + relay(p->srv_far, p->cli_far, SIZE_MAX) > 0)
		;
}

static bool final(int rv)
{
	return rv != VCCID_TLS_WANT_READ && rv != VCCID_TLS_WANT_WRITE;
}

/* Steps both handshakes until both end or one side fails (bounded: 5 s). */
static void pair_handshake(struct pair *p, int *srv_rv, int *cli_rv)
{
	long long deadline = vccid_now_ms() + 5000;

	*srv_rv = VCCID_TLS_WANT_READ;
	*cli_rv = VCCID_TLS_WANT_READ;
	while (vccid_now_ms() < deadline) {
		if (!final(*cli_rv))
			*cli_rv = vccid_tls_handshake(p->cli);
		relay_all(p);
		if (!final(*srv_rv))
			*srv_rv = vccid_tls_handshake(p->srv);
		relay_all(p);
		if ((final(*srv_rv) && final(*cli_rv)) || (*srv_rv < 0) || (*cli_rv < 0))
			break;
	}
	/* A refused client may have finished (TLS 1.3 ends its handshake first). */
	if (*srv_rv < 0 && !final(*cli_rv))
		*cli_rv = vccid_tls_handshake(p->cli);
}

/* --- credentials ------------------------------------------------------------------------- */

struct cred_row {
	const char *name;
	enum vccid_tls_role role;
	const char *dir, *cert, *key, *ca;   /* relative to the PKI; NULL: not set */
	int expect;
	const char *why;                     /* in the reason; NULL when loading works */
};

static const struct cred_row cred_rows[] = {
	{ "server folder", VCCID_TLS_SERVER, "server", NULL, NULL, NULL, VCCID_OK, NULL },
	{ "client folder", VCCID_TLS_CLIENT, "client", NULL, NULL, NULL, VCCID_OK, NULL },
	{ "client folder without certificate", VCCID_TLS_CLIENT, "client-noclient", NULL, NULL,
	  NULL, VCCID_OK, NULL },
	{ "explicit files", VCCID_TLS_SERVER, NULL, "server/server-cert.pem",
	  "server/server-key.pem", "ca/ca-cert.pem", VCCID_OK, NULL },
	{ "explicit server without CA", VCCID_TLS_SERVER, NULL, "server/server-cert.pem",
	  "server/server-key.pem", NULL, VCCID_OK, NULL },
	{ "folder missing its CA", VCCID_TLS_SERVER, "ca", "server/server-cert.pem",
	  "server/server-key.pem", "nowhere/ca-cert.pem", VCCID_ECONFIG,
	  "nowhere/ca-cert.pem: No such file" },
	{ "folder without server files", VCCID_TLS_SERVER, "client", NULL, NULL, NULL,
	  VCCID_ECONFIG, "client/server-cert.pem: No such file" },
	{ "key not matching", VCCID_TLS_SERVER, "server", NULL, "client/client-key.pem", NULL,
	  VCCID_ECONFIG, "client/client-key.pem does not match the certificate" },
	{ "key is not a key", VCCID_TLS_SERVER, "server", NULL, "server/server-cert.pem", NULL,
	  VCCID_ECONFIG, "server/server-cert.pem holds no usable private key" },
	{ "certificate is not one", VCCID_TLS_SERVER, "server", "server/server-key.pem", NULL,
	  NULL, VCCID_ECONFIG, "server/server-key.pem holds no certificate" },
	{ "CA is not a certificate", VCCID_TLS_SERVER, "server", NULL, NULL,
	  "server/server-key.pem", VCCID_ECONFIG, "server/server-key.pem holds no CA" },
	{ "a folder for a file", VCCID_TLS_SERVER, "server", NULL, "server", NULL, VCCID_ECONFIG,
	  "not a regular file" },
	{ "client without CA", VCCID_TLS_CLIENT, NULL, "client/client-cert.pem",
	  "client/client-key.pem", NULL, VCCID_ECONFIG, "no CA file" },
	{ "client key without certificate", VCCID_TLS_CLIENT, NULL, NULL, "client/client-key.pem",
	  "ca/ca-cert.pem", VCCID_ECONFIG, "without its certificate" },
	{ "client folder missing the key", VCCID_TLS_CLIENT, "client", NULL, "client/none.pem",
	  NULL, VCCID_ECONFIG, "client/none.pem: No such file" },
};

static const char *opt_path(const char *rel)
{
	return rel != NULL ? pki_path(rel) : NULL;
}

static void test_creds(void **state)
{
	const struct cred_row *row = *state;
	struct vccid_tls_files f = { opt_path(row->dir), opt_path(row->cert), opt_path(row->key),
				     opt_path(row->ca) };
	vccid_tls_creds *c = (vccid_tls_creds *)1;
	char why[VCCID_TLS_WHY_SIZE];
	int rv = vccid_tls_creds_load(row->role, &f, &c, why, sizeof(why));

	assert_int_equal(rv, row->expect);
	if (row->why != NULL) {
		if (strstr(why, row->why) == NULL)
			fail_msg("reason \"%s\" lacks \"%s\"", why, row->why);
		assert_null(c);
	} else {
		assert_non_null(c);
		assert_int_equal(vccid_tls_creds_verifies_clients(c),
				 row->role == VCCID_TLS_SERVER && (row->dir != NULL ||
								  row->ca != NULL));
	}
	vccid_tls_creds_free(c == (vccid_tls_creds *)1 ? NULL : c);
}

/* --- handshakes ---------------------------------------------------------------------------- */

struct hs_row {
	const char *name;
	const char *server, *client;     /* PKI folders */
	const char *subjects[3];         /* the server's allow-list, NULL-terminated */
	const char *server_name;         /* what the client checks */
	int srv_expect, cli_expect;      /* 1: don't care */
	const char *why;                 /* in the refusing side's reason */
	const char *subject;             /* the subject the server saw, NULL: don't care */
	enum vccid_tls_refusal kind;     /* the refusing side's kind of refusal */
};

static const struct hs_row hs_rows[] = {
	{ "good client", "server", "client", { NULL }, "localhost", VCCID_OK, VCCID_OK, NULL,
	  "CN=alice,O=vccid test", VCCID_TLS_REFUSAL_NONE },
	{ "server checked by IP", "server", "client", { NULL }, "127.0.0.1", VCCID_OK, VCCID_OK,
	  NULL, NULL, VCCID_TLS_REFUSAL_NONE },
	{ "subject by CN", "server", "client", { "bob", "alice", NULL }, "localhost", VCCID_OK,
	  VCCID_OK, NULL, NULL, VCCID_TLS_REFUSAL_NONE },
	{ "subject by DN pattern", "server", "client", { "CN=ali*,O=vccid test", NULL },
	  "localhost", VCCID_OK, VCCID_OK, NULL, NULL, VCCID_TLS_REFUSAL_NONE },
	{ "subject not on the list", "server", "client", { "bob", "CN=carol*", NULL }, "localhost",
	  VCCID_EPROTO, 1, "subject not on the tls-subjects list", "CN=alice,O=vccid test",
	  VCCID_TLS_REFUSAL_SUBJECT },
	{ "no client certificate", "server", "client-noclient", { NULL }, "localhost",
	  VCCID_EPROTO, 1, "no client certificate", "", VCCID_TLS_REFUSAL_NO_CERT },
	{ "client from another CA", "server", "client-otherca", { NULL }, "localhost",
	  VCCID_EPROTO, 1, "client certificate not signed by a trusted CA",
	  "CN=mallory,O=vccid test", VCCID_TLS_REFUSAL_UNTRUSTED },
	{ "client expired", "server", "client-expired", { NULL }, "localhost", VCCID_EPROTO, 1,
	  "client certificate expired", "CN=expired", VCCID_TLS_REFUSAL_EXPIRED },
	{ "client not yet valid", "server", "client-notyet", { NULL }, "localhost", VCCID_EPROTO,
	  1, "client certificate not yet valid", "CN=notyet", VCCID_TLS_REFUSAL_NOT_YET_VALID },
	{ "server from another CA", "server-otherca", "client", { NULL }, "localhost", 1,
	  VCCID_EPROTO, "server certificate not signed by a trusted CA", NULL,
	  VCCID_TLS_REFUSAL_UNTRUSTED },
	{ "server of another name", "server", "client", { NULL }, "example.org", 1, VCCID_EPROTO,
	  "server certificate issued to another name", NULL, VCCID_TLS_REFUSAL_SUBJECT },
};

static void test_handshake(void **state)
{
	const struct hs_row *row = *state;
	vccid_tls_creds *sc = load(VCCID_TLS_SERVER, row->server);
	size_t n = 0;
	struct pair p;
	int srv_rv, cli_rv;
	char subject[VCCID_TLS_SUBJECT_MAX];

	while (row->subjects[n] != NULL)
		n++;
	assert_int_equal(vccid_tls_creds_allow_subjects(sc, row->subjects, n), VCCID_OK);
	pair_open(&p, sc, load(VCCID_TLS_CLIENT, row->client), row->server_name);
	pair_handshake(&p, &srv_rv, &cli_rv);
	if (row->srv_expect != 1)
		assert_int_equal(srv_rv, row->srv_expect);
	if (row->cli_expect != 1)
		assert_int_equal(cli_rv, row->cli_expect);
	if (row->why != NULL) {
		const char *why = vccid_tls_error(row->srv_expect < 0 ? p.srv : p.cli);

		if (strstr(why, row->why) == NULL)
			fail_msg("reason \"%s\" lacks \"%s\"", why, row->why);
		assert_int_equal(vccid_tls_refusal(row->srv_expect < 0 ? p.srv : p.cli), row->kind);
	}
	vccid_tls_peer_subject(p.srv, subject, sizeof(subject));
	if (row->subject != NULL)
		assert_string_equal(subject, row->subject);
	if (srv_rv == VCCID_OK) {
		char desc[64];

		vccid_tls_describe(p.srv, desc, sizeof(desc));
		assert_true(strncmp(desc, "TLS1.2 ", 7) == 0 || strncmp(desc, "TLS1.3 ", 7) == 0);
	}
	pair_close(&p);
}

/* A plaintext VSCard client on a TLS server: refused at its first byte. */
static void test_plaintext_client(void **state)
{
	static const uint8_t init[] = { 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 12, 'V', 'S', 'C', 'D',
					0, 0, 0, 2, 0, 0, 0, 0 };
	struct pair p;
	int rv;

	(void)state;
	pair_open(&p, load(VCCID_TLS_SERVER, "server"), NULL, NULL);
	assert_int_equal(send(p.srv_far, init, sizeof(init), 0), (ssize_t)sizeof(init));
	rv = vccid_tls_handshake(p.srv);
	assert_int_equal(rv, VCCID_EPROTO);
	assert_non_null(strstr(vccid_tls_error(p.srv), "not TLS (first byte 0x00)"));
	assert_int_equal(vccid_tls_refusal(p.srv), VCCID_TLS_REFUSAL_NOT_TLS);
	/* It stays refused. */
	assert_int_equal(vccid_tls_handshake(p.srv), VCCID_EPROTO);
	pair_close(&p);
}

/* A TLS client on a plaintext server, which drops it: the reason says so. */
static void test_server_not_tls(void **state)
{
	static const uint8_t error_msg[] = { 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 1 };
	struct pair p;
	int rv;

	(void)state;
	pair_open(&p, NULL, load(VCCID_TLS_CLIENT, "client"), "localhost");
	assert_int_equal(send(p.cli_far, error_msg, sizeof(error_msg), 0),
			 (ssize_t)sizeof(error_msg));
	rv = vccid_tls_handshake_until(p.cli, vccid_now_ms() + 2000);
	assert_true(rv < 0);
	if (strstr(vccid_tls_error(p.cli), "the server does not speak TLS (first byte 0x00)") == NULL)
		fail_msg("reason: %s", vccid_tls_error(p.cli));
	pair_close(&p);
}

/* A peer that says nothing: the handshake waits for it, and _until gives up in time. */
static void test_stalled(void **state)
{
	struct pair p;
	long long t0;

	(void)state;
	pair_open(&p, load(VCCID_TLS_SERVER, "server"), NULL, NULL);
	assert_int_equal(vccid_tls_handshake(p.srv), VCCID_TLS_WANT_READ);
	t0 = vccid_now_ms();
	assert_int_equal(vccid_tls_handshake_until(p.srv, t0 + 100), VCCID_ETIMEDOUT);
	assert_true(vccid_now_ms() - t0 >= 95);
	assert_true(vccid_now_ms() - t0 < 2000);
	assert_non_null(strstr(vccid_tls_error(p.srv), "timed out"));
	pair_close(&p);
}

/* --- records -------------------------------------------------------------------------------- */

static void connected(struct pair *p)
{
	int s, c;

	pair_open(p, load(VCCID_TLS_SERVER, "server"), load(VCCID_TLS_CLIENT, "client"),
		  "localhost");
	pair_handshake(p, &s, &c);
	assert_int_equal(s, VCCID_OK);
	assert_int_equal(c, VCCID_OK);
}

static ssize_t read_some(vccid_tls *t, void *buf, size_t len, long long deadline)
{
	struct iovec iov = { buf, len };

	return vccid_tls_readv(t, &iov, 1, deadline);
}

/* Records split byte by byte, and several in one read: bytes come out whole and in order. */
static void test_split_and_coalesced(void **state)
{
	uint8_t out[3000], in[3000];
	struct pair p;
	size_t i, got = 0;
	ssize_t n;

	(void)state;
	for (i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7);
	connected(&p);
	/* Three records, the last fed to the server one byte at a time. */
	assert_int_equal(vccid_tls_write_all(p.cli, out, 1000, -1), VCCID_OK);
	assert_int_equal(vccid_tls_write_all(p.cli, out + 1000, 1000, -1), VCCID_OK);
	relay_all(&p);
	assert_int_equal(vccid_tls_write_all(p.cli, out + 2000, 1000, -1), VCCID_OK);
	while (relay(p.cli_far, p.srv_far, 1) > 0) {
		n = read_some(p.srv, in + got, sizeof(in) - got, 0);
		if (n > 0)
			got += (size_t)n;
		else
			assert_int_equal(n, VCCID_ETIMEDOUT);
	}
	while (got < sizeof(in)) {
		n = read_some(p.srv, in + got, sizeof(in) - got, 0);
		assert_true(n > 0);
		got += (size_t)n;
	}
	assert_memory_equal(in, out, sizeof(out));
	assert_int_equal(vccid_tls_pending(p.srv), 0);
	assert_int_equal(read_some(p.srv, in, 1, 0), VCCID_ETIMEDOUT);
	pair_close(&p);
}

/* Bytes decrypted but not yet taken show in vccid_tls_pending(), not on the socket. */
static void test_pending(void **state)
{
	uint8_t out[5000], in[5000];
	struct pollfd pfd;
	struct pair p;
	struct iovec iov[2];

	(void)state;
	memset(out, 0x5a, sizeof(out));
	connected(&p);
	assert_int_equal(vccid_tls_write_all(p.cli, out, 5000, -1), VCCID_OK);
	assert_int_equal(vccid_tls_write_all(p.cli, out, 100, -1), VCCID_OK);
	relay_all(&p);
	assert_int_equal(read_some(p.srv, in, 12, 0), 12);
	assert_true(vccid_tls_pending(p.srv) >= 4988);
	pfd.fd = p.srv_fd;
	pfd.events = POLLIN;
	assert_int_equal(poll(&pfd, 1, 0), 0);   /* the socket is empty: poll alone would hang */
	/* An iovec is filled across its parts from what is pending. */
	iov[0].iov_base = in;
	iov[0].iov_len = 88;
	iov[1].iov_base = in + 88;
	iov[1].iov_len = sizeof(in) - 88;
	assert_int_equal(vccid_tls_readv(p.srv, iov, 2, 0), 4988);
	/* The next record was received with the first: pending, and not on the socket. */
	assert_true(vccid_tls_pending(p.srv) > 0);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(read_some(p.srv, in, sizeof(in), 0), 100);
	assert_int_equal(vccid_tls_pending(p.srv), 0);
	pair_close(&p);
}

/* A read waits for the first byte until its deadline, and no longer. */
static void test_read_deadline(void **state)
{
	uint8_t b;
	struct pair p;
	long long t0;

	(void)state;
	connected(&p);
	t0 = vccid_now_ms();
	assert_int_equal(read_some(p.srv, &b, 1, t0 + 80), VCCID_ETIMEDOUT);
	assert_true(vccid_now_ms() - t0 >= 75);
	assert_true(vccid_now_ms() - t0 < 2000);
	pair_close(&p);
}

/* close_notify, a plain EOF, a record cut short: the reader sees an end, never half a record. */
static void test_end_of_stream(void **state)
{
	uint8_t out[600], in[600];
	struct pair p;
	size_t held;
	ssize_t n;

	(void)state;
	memset(out, 1, sizeof(out));
	connected(&p);
	vccid_tls_bye(p.cli);
	relay_all(&p);
	assert_int_equal(read_some(p.srv, in, sizeof(in), vccid_now_ms() + 1000), 0);
	pair_close(&p);

	connected(&p);
	close(p.srv_far);
	p.srv_far = -1;
	assert_int_equal(read_some(p.srv, in, sizeof(in), vccid_now_ms() + 1000), 0);
	pair_close(&p);

	connected(&p);
	assert_int_equal(vccid_tls_write_all(p.cli, out, sizeof(out), -1), VCCID_OK);
	held = relay(p.cli_far, p.srv_far, sizeof(out) / 2);   /* half the record, then EOF */
	assert_true(held > 0);
	close(p.srv_far);
	p.srv_far = -1;
	n = read_some(p.srv, in, sizeof(in), vccid_now_ms() + 1000);
	assert_true(n <= 0);
	assert_true(n == 0 || n == VCCID_EIO);
	pair_close(&p);
}

/* A damaged record is an error, not data. */
static void test_tampered(void **state)
{
	uint8_t out[100], in[200], wire[512];
	struct pair p;
	ssize_t n;

	(void)state;
	memset(out, 2, sizeof(out));
	connected(&p);
	assert_int_equal(vccid_tls_write_all(p.cli, out, sizeof(out), -1), VCCID_OK);
	n = recv(p.cli_far, wire, sizeof(wire), MSG_DONTWAIT);
	assert_true(n > 20);
	wire[n - 3] ^= 0x40;
	assert_int_equal(send(p.srv_far, wire, (size_t)n, 0), n);
	assert_int_equal(read_some(p.srv, in, sizeof(in), vccid_now_ms() + 1000), VCCID_EIO);
	assert_true(strlen(vccid_tls_error(p.srv)) > 0);
	pair_close(&p);
}

struct writer {
	vccid_tls *t;
	const uint8_t *buf;
	size_t len;
	int rv;
};

static void *write_thread(void *arg)
{
	struct writer *w = arg;

	w->rv = vccid_tls_write_all(w->t, w->buf, w->len, vccid_now_ms() + 10000);
	return NULL;
}

/* One thread writes while another reads (directly connected, no relay): 1 MiB each way. */
static void test_duplex_threads(void **state)
{
	enum { LEN = 1 << 20 };
	uint8_t *a = malloc(LEN), *b = malloc(LEN), *in = malloc(LEN);
	struct writer w1, w2;
	pthread_t t1, t2;
	vccid_tls *srv, *cli;
	int fds[2];
	size_t i, got = 0;
	long long deadline = vccid_now_ms() + 10000;
	vccid_tls_creds *sc = load(VCCID_TLS_SERVER, "server");
	vccid_tls_creds *cc = load(VCCID_TLS_CLIENT, "client");

	(void)state;
	assert_non_null(in);
	for (i = 0; i < LEN; i++) {
		a[i] = (uint8_t)i;
		b[i] = (uint8_t)(i >> 3);
	}
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
	assert_int_equal(vccid_tls_new(sc, fds[0], NULL, &srv), VCCID_OK);
	assert_int_equal(vccid_tls_new(cc, fds[1], "localhost", &cli), VCCID_OK);
	for (i = 0; i < 100; i++) {
		int s = vccid_tls_handshake(srv), c = vccid_tls_handshake(cli);

		if (s == VCCID_OK && c == VCCID_OK)
			break;
		assert_true(s >= 0 && c >= 0);
	}
	assert_true(i < 100);
	w1 = (struct writer){ cli, a, LEN, -1 };
	w2 = (struct writer){ srv, b, LEN, -1 };
	assert_int_equal(pthread_create(&t1, NULL, write_thread, &w1), 0);
	assert_int_equal(pthread_create(&t2, NULL, write_thread, &w2), 0);
	/* This thread reads both directions in turn while both writers write. */
	while (got < 2 * (size_t)LEN && vccid_now_ms() < deadline) {
		size_t off = got < LEN ? got : got - LEN;
		vccid_tls *r = got < LEN ? srv : cli;
		ssize_t n = read_some(r, in + off, LEN - off, vccid_now_ms() + 1000);

		assert_true(n > 0);
		got += (size_t)n;
		if (got == LEN)
			assert_memory_equal(in, a, LEN);
	}
	assert_int_equal(got, 2 * (size_t)LEN);
	assert_memory_equal(in, b, LEN);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(w1.rv, VCCID_OK);
	assert_int_equal(w2.rv, VCCID_OK);
	vccid_tls_free(srv);
	vccid_tls_free(cli);
	vccid_tls_creds_free(sc);
	vccid_tls_creds_free(cc);
	close(fds[0]);
	close(fds[1]);
	free(a);
	free(b);
	free(in);
}

/* A write that finds no room returns ETIMEDOUT; retried with the same bytes it completes. */
static void test_write_no_room(void **state)
{
	static uint8_t big[16384];
	uint8_t sink[65536];
	struct pair p;
	ssize_t n = 1;
	int i;

	(void)state;
	connected(&p);
	for (i = 0; i < 10000 && n > 0; i++)
		n = vccid_tls_write(p.cli, big, sizeof(big), 0);
	assert_int_equal(n, VCCID_ETIMEDOUT);
	while (recv(p.cli_far, sink, sizeof(sink), MSG_DONTWAIT) > 0)
		;
	n = vccid_tls_write(p.cli, big, sizeof(big), vccid_now_ms() + 1000);
	assert_int_equal(n, (ssize_t)sizeof(big));
	pair_close(&p);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_plaintext_client),
		cmocka_unit_test(test_server_not_tls),
		cmocka_unit_test(test_stalled),
		cmocka_unit_test(test_split_and_coalesced),
		cmocka_unit_test(test_pending),
		cmocka_unit_test(test_read_deadline),
		cmocka_unit_test(test_end_of_stream),
		cmocka_unit_test(test_tampered),
		cmocka_unit_test(test_duplex_threads),
		cmocka_unit_test(test_write_no_room),
	};
	const struct table_part parts[] = {
		TABLE_PART(cred_rows, test_creds, NULL),
		TABLE_PART(hs_rows, test_handshake, NULL),
	};
	int rv;

	if (make_pki(NULL) != 0) {
		fprintf(stderr, "cannot make the test PKI with tests/mkpki.sh\n");
		return 1;
	}
	rv = table_run("tls", parts, 2, fixed, sizeof(fixed) / sizeof(fixed[0]));
	(void)remove_pki(NULL);
	return rv;
}
