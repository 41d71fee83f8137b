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
#include <sys/ioctl.h>
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
#define HEADER VCCID_VSCARD_HEADER_SIZE

static atomic_uint refusal_lines;   /* log lines about refused clients */

/* pcscd's log_msg: only errors are configured, and a test that logs one shows it. */
void log_msg(const int priority, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	(void)priority;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (strstr(line, "refused") != NULL)
		atomic_fetch_add(&refusal_lines, 1);
	fprintf(stderr, "%s\n", line);
}

static size_t message(uint8_t *out, uint32_t type, uint32_t id, const uint8_t *data, size_t len)
{
	return vccid_vscard_message_encode(out, HEADER + len, type, id, data, len);
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
	struct vccid_vscard_header h;

	vccid_vscard_header_decode(head, &h);
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

			if (type != VCCID_VSCARD_APDU || len != 9 || batch == READERS * 2) {
				atomic_store(&c->unexpected, true);
				return NULL;
			}
			sizes[batch] = message(answers[batch], VCCID_VSCARD_APDU, id, rsp,
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
	assert_true(write_all(fd, buf, vccid_vscard_init_encode(buf, sizeof(buf), 0, 0)));
	assert_true(read_message(fd, &type, &id, payload, &len));
	assert_int_equal(type, VCCID_VSCARD_INIT);
	for (uint32_t r = 0; r < READERS; r++) {
		char name[16];

		snprintf(name, sizeof(name), "stress%u", r);
		assert_true(write_all(fd, buf, message(buf, VCCID_VSCARD_READER_ADD, 0, (const uint8_t *)name,
						       strlen(name))));
		assert_true(read_message(fd, &type, &id, payload, &len));
		assert_int_equal(type, VCCID_VSCARD_ERROR);
		assert_int_equal(id, r);
		assert_true(write_all(fd, buf, message(buf, VCCID_VSCARD_ATR, r, atr, sizeof(atr))));
		assert_true(read_message(fd, &type, &id, payload, &len));
		assert_int_equal(type, VCCID_VSCARD_ERROR);
		assert_int_equal(vccid_vscard_error_decode(payload, len, &code), 0);
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

/* A private directory with a vccid.conf of @p slots slots whose [vscard] listens on
 * @p port (TCP) or on dir/vscard.sock; its channels opened. */
struct host_setup {
	char dir[64], conf[128], sock[128];
	unsigned slots;
};

static struct host_setup *open_host;   /* closed by the teardown if a test failed */

static void host_open_with(struct host_setup *h, unsigned slots, unsigned port,
			   unsigned timeout_ms, const char *extra)
{
	char device[160];
	FILE *f;

	snprintf(h->dir, sizeof(h->dir), "/tmp/vccid-vscard-host.XXXXXX");
	assert_non_null(mkdtemp(h->dir));
	snprintf(h->conf, sizeof(h->conf), "%s/vccid.conf", h->dir);
	snprintf(h->sock, sizeof(h->sock), "%s/vscard.sock", h->dir);
	h->slots = slots;
	f = fopen(h->conf, "w");
	assert_non_null(f);
	fprintf(f, "[vccid]\nlog-level = error\n\n[reader:default]\nslots = %u\n\n[vscard]\n"
		   "timeout-ms = %u\n", slots, timeout_ms);
	if (port != 0)
		fprintf(f, "listen = 127.0.0.1:%u\n", port);
	else
		fprintf(f, "unix-socket = %s\n", h->sock);
	fputs(extra, f);
	assert_int_equal(fclose(f), 0);
	snprintf(device, sizeof(device), "%s:default", h->conf);
	for (DWORD s = 0; s < slots; s++)
		assert_int_equal(IFDHCreateChannelByName(s, device), IFD_SUCCESS);
	open_host = h;
}

static void host_open(struct host_setup *h, unsigned slots, unsigned port, unsigned timeout_ms)
{
	host_open_with(h, slots, port, timeout_ms, "");
}

static void host_close(struct host_setup *h)
{
	open_host = NULL;
	for (DWORD s = 0; s < h->slots; s++)
		assert_int_equal(IFDHCloseChannel(s), IFD_SUCCESS);
	unlink(h->conf);
	unlink(h->sock);
	rmdir(h->dir);
}

static void stress(bool tcp)
{
	struct host_setup host;
	struct worker workers[THREADS];
	pthread_t tids[THREADS];
	struct client client = { .fd = -1 };
	unsigned port = tcp ? free_port() : 0;
	unsigned failures = 0;

	host_open(&host, READERS, port, 5000);
	client_start(&client, tcp ? connect_tcp(port) : connect_unix(host.sock));
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
	host_close(&host);
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

/* ------------------------------------------------------------------ a client that stops reading */

#define STUCK_READERS 6
#define STUCK_TIMEOUT_MS 3000

struct stuck_transmit {
	DWORD lun;
	int rv;
};

/* A 64 KiB APDU that the client never reads: its transmit fails at the timeout. */
static void *stuck_transmit(void *arg)
{
	struct stuck_transmit *t = arg;
	/* UPDATE BINARY, extended Lc 65535; shared by the threads, read only. */
	static const uint8_t apdu[7 + 65535] = { 0x00, 0xD6, 0x00, 0x00, 0x00, 0xFF, 0xFF };
	SCARD_IO_HEADER pci = { .Protocol = 1, .Length = 0 };
	uint8_t rsp[258];
	DWORD rsp_len = sizeof(rsp);

	t->rv = (int)IFDHTransmitToICC(t->lun, pci, (PUCHAR)apdu, sizeof(apdu), rsp, &rsp_len, NULL);
	return NULL;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Handshake with the extended-APDU capability and @p readers readers with a card each. */
static void stuck_client_start(int fd, unsigned readers)
{
	static const uint8_t atr[] = { 0x3B, 0x02, 0x14, 0x50 };
	uint8_t buf[64], payload[300];
	uint32_t type, id;
	size_t len;

	assert_true(write_all(fd, buf, vccid_vscard_init_encode(buf, sizeof(buf), 0,
							  VCCID_VSCARD_CAP_VCCID_EXTENDED)));
	assert_true(read_message(fd, &type, &id, payload, &len));
	assert_int_equal(type, VCCID_VSCARD_INIT);
	for (uint32_t r = 0; r < readers; r++) {
		assert_true(write_all(fd, buf, message(buf, VCCID_VSCARD_READER_ADD, 0,
						       (const uint8_t *)"stuck", 5)));
		assert_true(read_message(fd, &type, &id, payload, &len));
		assert_int_equal(id, r);
		assert_true(write_all(fd, buf, message(buf, VCCID_VSCARD_ATR, r, atr, sizeof(atr))));
		assert_true(read_message(fd, &type, &id, payload, &len));
		assert_int_equal(type, VCCID_VSCARD_ERROR);
	}
}

/*
 * A client stops reading while its readers get 64 KiB APDUs, so a transmit blocks
 * writing to it, and it asks for a Flush meanwhile. Another client must still be
 * handshaken and get its ReaderAdd answered at once: the listener thread never
 * waits for the stuck one (it did for the whole timeout, answering the Flush).
 */
static void test_stuck_client_does_not_stall_listener(void **state)
{
	struct host_setup host;
	struct stuck_transmit transmits[STUCK_READERS];
	pthread_t tids[STUCK_READERS];
	uint8_t buf[64], payload[300];
	uint32_t type, id;
	size_t len;
	long long start, took;
	int queued = 0;
	int stuck, other;

	(void)state;
	host_open(&host, STUCK_READERS + 1, 0, STUCK_TIMEOUT_MS);
	stuck = connect_unix(host.sock);
	stuck_client_start(stuck, STUCK_READERS);
	for (DWORD s = 0; s < STUCK_READERS; s++) {
		UCHAR atr[MAX_ATR_SIZE];
		DWORD atr_len = sizeof(atr);

		assert_true(wait_present(s));
		assert_int_equal(IFDHPowerICC(s, IFD_POWER_UP, atr, &atr_len), IFD_SUCCESS);
		transmits[s] = (struct stuck_transmit){ .lun = s, .rv = -1 };
		assert_int_equal(pthread_create(&tids[s], NULL, stuck_transmit, &transmits[s]), 0);
	}
	/* Until the socket holds more than its buffer takes: a transmit blocks in its write. */
	for (int i = 0; i < 200 && queued < 5 * 65536; i++) {
		struct timespec ts = { 0, 5000000 };

		nanosleep(&ts, NULL);   /* polling the socket's fill level, 1 s at most */
		assert_int_equal(ioctl(stuck, FIONREAD, &queued), 0);
	}
	assert_true(queued >= 3 * 65536);
	assert_true(write_all(stuck, buf, message(buf, VCCID_VSCARD_FLUSH, 0, NULL, 0)));
	usleep(100000);   /* the listener has the Flush to answer before the newcomer comes */

	start = now_ms();
	other = connect_unix(host.sock);
	assert_true(write_all(other, buf, vccid_vscard_init_encode(buf, sizeof(buf), 0, 0)));
	assert_true(read_message(other, &type, &id, payload, &len));
	assert_int_equal(type, VCCID_VSCARD_INIT);
	assert_true(write_all(other, buf, message(buf, VCCID_VSCARD_READER_ADD, 0,
						  (const uint8_t *)"other", 5)));
	assert_true(read_message(other, &type, &id, payload, &len));
	took = now_ms() - start;
	assert_int_equal(type, VCCID_VSCARD_ERROR);
	print_message("another client handshaken in %lld ms while one is stuck (timeout %d ms)\n",
		      took, STUCK_TIMEOUT_MS);
	assert_true(took < STUCK_TIMEOUT_MS / 3);

	for (unsigned r = 0; r < STUCK_READERS; r++) {
		pthread_join(tids[r], NULL);
		assert_int_not_equal(transmits[r].rv, IFD_SUCCESS);
	}
	close(stuck);
	close(other);
	host_close(&host);
}

/* ------------------------------------------------------------------ admission */

struct squatter {
	const char *sock;
	atomic_bool stop;
	atomic_uint connects;
};

/* Keeps four connections that never send Init, reconnecting as soon as one is closed. */
static void *squat(void *arg)
{
	struct squatter *sq = arg;
	int fds[4] = { -1, -1, -1, -1 };
	long long end = now_ms() + 10000;   /* bounded even if the test fails to stop it */

	while (!atomic_load(&sq->stop) && now_ms() < end) {
		for (int i = 0; i < 4; i++) {
			struct pollfd pfd = { .fd = fds[i], .events = POLLIN };
			char byte;

			if (fds[i] >= 0 && poll(&pfd, 1, 0) == 1 && recv(fds[i], &byte, 1, 0) <= 0) {
				close(fds[i]);
				fds[i] = -1;
			}
			if (fds[i] < 0) {
				fds[i] = connect_unix(sq->sock);
				atomic_fetch_add(&sq->connects, 1);
			}
		}
		usleep(1000);   /* the reconnect pace of a hostile client, not synchronisation */
	}
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return NULL;
}

/* Sends Init and waits (2 s at most) for the host's; true when it came. */
static bool handshake_within(int fd, int timeout_ms)
{
	uint8_t buf[64], payload[300];
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint32_t type, id;
	size_t len;

	if (!write_all(fd, buf, vccid_vscard_init_encode(buf, sizeof(buf), 0, 0)))
		return false;
	if (poll(&pfd, 1, timeout_ms) != 1 || !(pfd.revents & POLLIN))
		return false;
	return read_message(fd, &type, &id, payload, &len) && type == VCCID_VSCARD_INIT;
}

/*
 * Four connections that never send Init and reconnect at once kept every newcomer
 * out (0 of 12 admitted). Now the oldest of them makes room after a grace period,
 * and refusals are logged a line per second at most.
 */
static void test_pending_squatters_do_not_lock_out(void **state)
{
	struct host_setup host;
	struct squatter sq = { 0 };
	pthread_t tid;
	unsigned admitted = 0;

	(void)state;
	host_open_with(&host, 1, 0, 5000, "max-pending = 4\nhandshake-timeout-ms = 5000\n");
	sq.sock = host.sock;
	assert_int_equal(pthread_create(&tid, NULL, squat, &sq), 0);
	usleep(600000);   /* the squatters hold every place, past the eviction grace */
	atomic_store(&refusal_lines, 0);
	for (int i = 0; i < 12; i++) {
		int fd = connect_unix(host.sock);

		admitted += handshake_within(fd, 2000);
		close(fd);
		usleep(250000);   /* newcomers arrive four a second, half what 4 squatters free */
	}
	atomic_store(&sq.stop, true);
	pthread_join(tid, NULL);
	print_message("%u of 12 clients admitted while squatters made %u connections; "
		      "%u refusal log lines\n", admitted, atomic_load(&sq.connects),
		      atomic_load(&refusal_lines));
	assert_int_equal(admitted, 12);
	host_close(&host);
}

/* A handshaken connection that adds no reader is closed after idle-timeout-ms, and one
 * that has been readerless past the grace period makes room for a newcomer. */
static void test_idle_connections(void **state)
{
	struct host_setup host;
	uint8_t byte;
	struct pollfd pfd;
	long long start;
	int idle[2], fd;

	(void)state;
	host_open_with(&host, 1, 0, 5000, "max-connections = 2\nidle-timeout-ms = 800\n");
	idle[0] = connect_unix(host.sock);
	idle[1] = connect_unix(host.sock);
	assert_true(handshake_within(idle[0], 2000));
	assert_true(handshake_within(idle[1], 2000));
	usleep(600000);   /* past the eviction grace, before the idle timeout */
	fd = connect_unix(host.sock);
	assert_true(handshake_within(fd, 2000));   /* admitted: a readerless one made room */
	start = now_ms();
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 3000), 1);
	assert_true(recv(fd, &byte, 1, 0) <= 0);   /* then it is closed for idling itself */
	print_message("idle connection closed after %lld ms (idle-timeout-ms 800)\n",
		      now_ms() - start);
	assert_true(now_ms() - start >= 700);
	close(fd);
	close(idle[0]);
	close(idle[1]);
	host_close(&host);
}

/* Thousands of refused connections give a handful of log lines, each with a count. */
static void test_refusals_rate_limited(void **state)
{
	struct host_setup host;
	unsigned refused = 0;
	int holder;

	(void)state;
	host_open_with(&host, 1, 0, 5000, "max-connections = 1\n");
	holder = connect_unix(host.sock);   /* holds a reader: nobody may evict it */
	stuck_client_start(holder, 1);
	atomic_store(&refusal_lines, 0);
	for (int i = 0; i < 2000; i++) {
		int fd = connect_unix(host.sock);
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char byte;

		if (poll(&pfd, 1, 2000) == 1 && recv(fd, &byte, 1, 0) <= 0)
			refused++;   /* closed at once */
		close(fd);
	}
	print_message("%u refusals gave %u log lines\n", refused, atomic_load(&refusal_lines));
	assert_int_equal(refused, 2000);
	assert_true(atomic_load(&refusal_lines) <= 10);
	close(holder);
	host_close(&host);
}

static int close_open_host(void **state)
{
	(void)state;
	if (open_host != NULL)
		host_close(open_host);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_stress_unix, close_open_host),
		cmocka_unit_test_teardown(test_stress_tcp, close_open_host),
		cmocka_unit_test_teardown(test_stuck_client_does_not_stall_listener, close_open_host),
		cmocka_unit_test_teardown(test_pending_squatters_do_not_lock_out, close_open_host),
		cmocka_unit_test_teardown(test_idle_connections, close_open_host),
		cmocka_unit_test_teardown(test_refusals_rate_limited, close_open_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
