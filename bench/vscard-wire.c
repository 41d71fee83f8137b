/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The client side of VSCard for the benchmark programs: connect, one-write messages, handshake. */
#define _POSIX_C_SOURCE 200809L
#include "vscard-wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "stats.h"
#include "tcp.h"

int vsw_quickack = 1;
volatile int vsw_stop;
const struct vsw_transport *vsw_transport;

static void on_signal(int sig)
{
	(void)sig;
	vsw_stop = 1;
}

void vsw_install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;   /* no SA_RESTART: a blocked recv returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void arm_quickack(int fd)
{
	bench_quickack(fd, vsw_quickack);
}

int vsw_connect(const char *host, unsigned long port, unsigned long timeout_ms)
{
	int fd = bench_tcp_connect("vscard", host, port, timeout_ms, &vsw_stop);

	if (fd >= 0)
		arm_quickack(fd);
	return fd;
}

static int send_all(int fd, const void *buf, size_t len)
{
	if (vsw_transport != NULL)
		return vsw_transport->send_all(fd, buf, len);
	return bench_send_all(fd, buf, len, &vsw_stop);
}

int vsw_send(int fd, struct vsw_msg *m, uint32_t type, uint32_t reader_id, size_t len)
{
	vccid_vscard_header_encode(m->buf, type, reader_id, (uint32_t)len);
	return send_all(fd, m->buf, VCCID_VSCARD_HEADER_SIZE + len);
}

static int read_all(int fd, uint8_t *buf, size_t len)
{
	if (vsw_transport != NULL)
		return vsw_transport->recv_all(fd, buf, len);
	return bench_recv_all(fd, buf, len, vsw_quickack, &vsw_stop);
}

int vsw_recv(int fd, struct vsw_msg *m, struct vccid_vscard_header *h)
{
	if (read_all(fd, m->buf, VCCID_VSCARD_HEADER_SIZE) != 0)
		return -1;
	vccid_vscard_header_decode(m->buf, h);
	if (h->length > VSW_MAX_PAYLOAD) {
		fprintf(stderr, "vscard: host announces %u bytes, over %u\n", (unsigned)h->length,
			(unsigned)VSW_MAX_PAYLOAD);
		return -1;
	}
	return read_all(fd, VSW_PAYLOAD(m), h->length);
}

int vsw_init(int fd, struct vsw_msg *m, int extended, uint32_t *host_caps)
{
	struct vccid_vscard_header h;
	struct vccid_vscard_init init;
	size_t len = vccid_vscard_init_encode(m->buf, sizeof(m->buf), 0,
					extended ? VCCID_VSCARD_CAP_VCCID_EXTENDED : 0);

	if (send_all(fd, m->buf, len) != 0 || vsw_recv(fd, m, &h) != 0)
		return -1;
	if (h.type != VCCID_VSCARD_INIT || vccid_vscard_init_decode(VSW_PAYLOAD(m), h.length, &init) != 0) {
		fprintf(stderr, "vscard: bad host Init (type %u, %u bytes)\n", (unsigned)h.type,
			(unsigned)h.length);
		return -1;
	}
	*host_caps = init.capabilities[0];
	return 0;
}

size_t vsw_answer(struct vsw_msg *m, size_t len, size_t max_answer)
{
	uint8_t *p = VSW_PAYLOAD(m);
	size_t le = 0;

	/* ISO/IEC 7816-4 §5.1: Le of a case-2 or case-4 APDU; a case 1 or 3 gets 90 00. */
	if (len == 5)
		le = p[4] ? p[4] : 256;
	else if (len == 7 && p[4] == 0)
		le = ((size_t)p[5] << 8 | p[6]) ? ((size_t)p[5] << 8 | p[6]) : 65536;
	else if (len > 9 && p[4] == 0 && len == 9 + ((size_t)p[5] << 8 | p[6]))
		le = ((size_t)p[len - 2] << 8 | p[len - 1]) ? ((size_t)p[len - 2] << 8 | p[len - 1])
							   : 65536; /* extended case 4 */
	else if (len > 6 && p[4] != 0 && len == 6 + (size_t)p[4])
		le = p[len - 1] ? p[len - 1] : 256; /* short case 4 */
	if (le + 2 > max_answer)
		le = max_answer - 2;
	memset(p, 0, le);
	p[le] = 0x90;
	p[le + 1] = 0x00;
	return le + 2;
}

int vsw_wait_error(int fd, struct vsw_msg *m, uint32_t *reader_id, uint32_t *code)
{
	struct vccid_vscard_header h;
	int guard;

	for (guard = 0; guard < 1000; guard++) {
		if (vsw_recv(fd, m, &h) != 0)
			return -1;
		if (h.type == VCCID_VSCARD_ERROR) {
			*reader_id = h.reader_id;
			if (vccid_vscard_error_decode(VSW_PAYLOAD(m), h.length, code) != 0)
				*code = 0xFFFFFFFFu;
			return 0;
		}
		if (h.type == VCCID_VSCARD_APDU &&
		    vsw_send(fd, m, VCCID_VSCARD_APDU, h.reader_id, vsw_answer(m, h.length, 258)) != 0)
			return -1;
	}
	return -1;
}
