/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Concurrency tests of the VSCard host through the IFDH entry points: the real listener
 * and host state machine on real sockets (TCP and unix), against a scripted client
 * thread that puts four readers on one connection and answers in awkward ways (several
 * answers in one write, in reverse order; headers split in two). Many threads transmit
 * at once, as pcscd's do, so a transmit reading its own answer, handing the socket back
 * and stashing other readers' answers all race here. Built with TSan by hand, and with
 * ASan in CI.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <debuglog.h>
#include <ifdhandler.h>

#include "backends/vscard/proto.h"

#define READERS 4
#define THREADS 8            /* two per reader: the slot serialises them */
#define ROUNDS 1500          /* transmits per thread */
#define HEADER VSCARD_HEADER_SIZE

/* pcscd's log_msg: only errors are configured, and a test that logs one shows it. */
void log_msg(const int priority, const char *fmt, ...)
{
	va_list ap;

	(void)priority;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static size_t message(uint8_t *out, uint32_t type, uint32_t id, const uint8_t *data, size_t len)
{
	return vscard_message_encode(out, HEADER + len, type, id, data, len);
}

/* The sequence number in an APDU or answer, big-endian as everything here. */
static uint32_t seq_of(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Writes all of @p buf; false when the host closed the connection. */
static bool write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

/* Reads exactly @p len bytes; false on EOF (the host closed the connection). */
static bool read_all(int fd, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = recv(fd, buf, len, 0);

		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static bool read_message(int fd, uint32_t *type, uint32_t *id, uint8_t *payload, size_t *len)
{
	uint8_t head[HEADER];

	if (!read_all(fd, head, sizeof(head)))
		return false;
	struct vscard_header h;

	vscard_header_decode(head, &h);
	*type = h.type;
	*id = h.reader_id;
	*len = h.length;
	return *len <= 300 && read_all(fd, payload, *len);
}

/* ------------------------------------------------------------------ the client */

struct client {
	int fd;
	pthread_t thread;
	atomic_ulong answered, batched, split;
	atomic_bool unexpected;   /* a message the client did not expect (checked at the end) */
};

/* Answer to an APDU 80 CA 00 00 04 S S S S: the reader id, S S S S, 90 00. */
static size_t answer(uint32_t id, const uint8_t *apdu, uint8_t *out)
{
	out[0] = (uint8_t)id;
	memcpy(out + 1, apdu + 5, 4);
	out[5] = 0x90;
	out[6] = 0x00;
	return 7;
}

/*
 * Serves APDUs until the host closes the connection. Every APDU that has already arrived
 * is answered in the same write, the last first; every third lone answer has its header
 * written in two parts.
 */
static void *client_loop(void *arg)
{
	struct client *c = arg;
	uint8_t out[READERS * 2 * (HEADER + 16)], payload[300];

	for (;;) {
		size_t used = 0, batch = 0, len;
		uint8_t answers[READERS * 2][HEADER + 16];
		size_t sizes[READERS * 2];
		uint32_t type, id;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };

		if (!read_message(c->fd, &type, &id, payload, &len))
			break;
		do {
			uint8_t rsp[16];

			if (type != VSCARD_APDU || len != 9 || batch == READERS * 2) {
				atomic_store(&c->unexpected, true);
				return NULL;
			}
			sizes[batch] = message(answers[batch], VSCARD_APDU, id, rsp,
					       answer(id, payload, rsp));
			batch++;
		} while (poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) &&
			 read_message(c->fd, &type, &id, payload, &len));
		for (size_t i = batch; i-- > 0;) {
			memcpy(out + used, answers[i], sizes[i]);
			used += sizes[i];
		}
		if (batch == 1 && atomic_fetch_add(&c->answered, 1) % 3 == 0) {
			if (!write_all(c->fd, out, 5))
				break;
			usleep(200);
			if (!write_all(c->fd, out + 5, used - 5))
				break;
			atomic_fetch_add(&c->split, 1);
		} else {
			if (batch > 1) {
				atomic_fetch_add(&c->answered, batch);
				atomic_fetch_add(&c->batched, 1);
			}
			if (!write_all(c->fd, out, used))
				break;
		}
	}
	return NULL;
}

/* Handshake, four readers with a card each; then the serving thread. */
static void client_start(struct client *c, int fd)
{
	static const uint8_t atr[] = { 0x3B, 0x02, 0x14, 0x50 };
	uint8_t buf[64], payload[300];
	uint32_t type, id, code;
	size_t len;

	c->fd = fd;
	assert_true(write_all(fd, buf, vscard_init_encode(buf, sizeof(buf), 0, 0)));
	assert_true(read_message(fd, &type, &id, payload, &len));
	assert_int_equal(type, VSCARD_INIT);
	for (uint32_t r = 0; r < READERS; r++) {
		char name[16];

		snprintf(name, sizeof(name), "stress%u", r);
		assert_true(write_all(fd, buf, message(buf, VSCARD_READER_ADD, 0, (const uint8_t *)name,
						       strlen(name))));
		assert_true(read_message(fd, &type, &id, payload, &len));
		assert_int_equal(type, VSCARD_ERROR);
		assert_int_equal(id, r);
		assert_true(write_all(fd, buf, message(buf, VSCARD_ATR, r, atr, sizeof(atr))));
		assert_true(read_message(fd, &type, &id, payload, &len));
		assert_int_equal(type, VSCARD_ERROR);
		assert_int_equal(vscard_error_decode(payload, len, &code), 0);
		assert_int_equal(code, 0);
	}
	assert_int_equal(pthread_create(&c->thread, NULL, client_loop, c), 0);
}

/* ------------------------------------------------------------------ the PC/SC side */

struct worker {
	DWORD lun;
	unsigned index;
	int id_seen;        /* the reader id the answers carried, -1 before the first */
	unsigned failures;
};

static void *worker_loop(void *arg)
{
	struct worker *w = arg;
	SCARD_IO_HEADER pci = { .Protocol = 1, .Length = 0 };

	for (unsigned i = 0; i < ROUNDS; i++) {
		uint8_t apdu[9] = { 0x80, 0xCA, 0x00, 0x00, 0x04 }, rsp[258];
		DWORD rsp_len = sizeof(rsp);
		uint32_t seq = (uint32_t)w->index << 24 | i;

		apdu[5] = (uint8_t)(seq >> 24);
		apdu[6] = (uint8_t)(seq >> 16);
		apdu[7] = (uint8_t)(seq >> 8);
		apdu[8] = (uint8_t)seq;
		if (IFDHTransmitToICC(w->lun, pci, apdu, sizeof(apdu), rsp, &rsp_len, NULL) !=
			    IFD_SUCCESS ||
		    rsp_len != 7 || seq_of(rsp + 1) != seq || rsp[5] != 0x90 || rsp[6] != 0x00 ||
		    (w->id_seen >= 0 && rsp[0] != w->id_seen)) {
			w->failures++;
			continue;
		}
		w->id_seen = rsp[0];
	}
	return NULL;
}

static bool wait_present(DWORD lun)
{
	for (int i = 0; i < 500; i++) {   /* 5 s at most */
		if (IFDHICCPresence(lun) == IFD_ICC_PRESENT)
			return true;
		usleep(10000);
	}
	return false;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static int connect_tcp(unsigned port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A loopback port nobody listens on now (the listener binds it a moment later). */
static unsigned free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static void stress(bool tcp)
{
	char dir[] = "/tmp/vccid-vscard-host.XXXXXX", conf[128], sock[128], device[160];
	struct worker workers[THREADS];
	pthread_t tids[THREADS];
	struct client client = { .fd = -1 };
	unsigned port = tcp ? free_port() : 0;
	unsigned failures = 0;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/vccid.conf", dir);
	snprintf(sock, sizeof(sock), "%s/vscard.sock", dir);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[vccid]\nlog-level = error\n\n[reader:default]\nslots = %d\n\n[vscard]\n"
		   "timeout-ms = 5000\n", READERS);
	if (tcp)
		fprintf(f, "listen = 127.0.0.1:%u\n", port);
	else
		fprintf(f, "unix-socket = %s\n", sock);
	assert_int_equal(fclose(f), 0);
	snprintf(device, sizeof(device), "%s:default", conf);

	for (DWORD s = 0; s < READERS; s++)
		assert_int_equal(IFDHCreateChannelByName(s, device), IFD_SUCCESS);
	client_start(&client, tcp ? connect_tcp(port) : connect_unix(sock));
	for (DWORD s = 0; s < READERS; s++) {
		UCHAR atr[MAX_ATR_SIZE];
		DWORD atr_len = sizeof(atr);

		assert_true(wait_present(s));
		assert_int_equal(IFDHPowerICC(s, IFD_POWER_UP, atr, &atr_len), IFD_SUCCESS);
	}
	for (unsigned t = 0; t < THREADS; t++) {
		workers[t] = (struct worker){ .lun = t % READERS, .index = t, .id_seen = -1 };
		assert_int_equal(pthread_create(&tids[t], NULL, worker_loop, &workers[t]), 0);
	}
	for (unsigned t = 0; t < THREADS; t++) {
		pthread_join(tids[t], NULL);
		failures += workers[t].failures;
	}
	/* Each slot saw one reader id, and the four are distinct. */
	for (unsigned t = 0; t < THREADS; t++)
		for (unsigned u = 0; u < THREADS; u++)
			assert_true((workers[t].lun == workers[u].lun) ==
				    (workers[t].id_seen == workers[u].id_seen));
	print_message("%s: %u transmits, %lu answers, %lu batched writes, %lu split headers, "
		      "%u failures\n", tcp ? "tcp" : "unix", THREADS * ROUNDS,
		      atomic_load(&client.answered), atomic_load(&client.batched),
		      atomic_load(&client.split), failures);
	assert_int_equal(failures, 0);
	assert_false(atomic_load(&client.unexpected));
	/* The awkward writes really happened. */
	assert_true(atomic_load(&client.batched) > 0);
	assert_true(atomic_load(&client.split) > 0);

	/* The client leaves: every card goes at once; closing the channels ends the host. */
	shutdown(client.fd, SHUT_RDWR);
	pthread_join(client.thread, NULL);
	close(client.fd);
	for (DWORD s = 0; s < READERS; s++) {
		int i;

		for (i = 0; i < 500 && IFDHICCPresence(s) == IFD_ICC_PRESENT; i++)
			usleep(10000);
		assert_int_equal(IFDHICCPresence(s), IFD_ICC_NOT_PRESENT);
	}
	for (DWORD s = 0; s < READERS; s++)
		assert_int_equal(IFDHCloseChannel(s), IFD_SUCCESS);
	unlink(conf);
	unlink(sock);
	rmdir(dir);
}

static void test_stress_unix(void **state)
{
	(void)state;
	stress(false);
}

static void test_stress_tcp(void **state)
{
	(void)state;
	stress(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress_unix),
		cmocka_unit_test(test_stress_tcp),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
