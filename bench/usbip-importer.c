/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A USB/IP importer without the kernel: imports vccid-usb's reader over TCP and drives APDUs through its bulk endpoints, for the soak benchmark. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ccid/ccid.h"
#include "stats.h"
#include "tcp.h"
#include "usb/usbip-proto.h"

#define IMP_EP_BULK_OUT 1
#define IMP_EP_BULK_IN 2
/* One bulk-in URB as large as vccid's biggest answer (a CCID header and 64 KiB + SW). */
#define IMP_IN_LEN (VCCID_CCID_HEADER_SIZE + 65536 + 2)
#define IMP_MAX_APDU 261

/* The SELECT of the CAC applet, as apdu-bench sends by default. */
static const uint8_t default_apdu[] = { 0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00,
					0x00, 0x00, 0x79, 0x01, 0x00 };

static volatile int stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: usbip-importer -p PORT [-H HOST] [-b BUSID] [-n COUNT] [-e EVERY] [-W]\n"
		"                      [-a HEXAPDU] [-T CONNECT_TIMEOUT_MS]\n"
		"  Imports BUSID (default 1-1) from a USB/IP server (vccid-usb --usbip) over\n"
		"  TCP, sets configuration 1, powers slot 0 on (PC_to_RDR_IccPowerOn) and\n"
		"  sends COUNT (default 1000000) PC_to_RDR_XfrBlock messages with HEXAPDU\n"
		"  (default: SELECT of the CAC applet), each as a bulk-out URB with a bulk-in\n"
		"  URB for its RDR_to_PC_DataBlock answer. Every answer is checked (message\n"
		"  type, sequence number, status); any SW is accepted.\n"
		"  Prints 'progress n=N' after every EVERY exchanges (default 50000) and a\n"
		"  last line: n, wall_s, apdus_per_s, sw (of the last answer). With -W it then\n"
		"  waits for a line (or EOF) on standard input before closing the connection,\n"
		"  so a caller can look at the server with the device still imported.\n");
}

struct imp {
	int fd;
	uint32_t devid;
	uint32_t seqnum;
	uint8_t bseq;
	uint8_t *in;          /* the bulk-in answer */
	size_t in_len;
};

static int hexparse(const char *s, uint8_t *out, size_t size, size_t *len)
{
	size_t n = 0;

	while (*s != '\0') {
		unsigned v;

		if (*s == ' ' || *s == ':') {
			s++;
			continue;
		}
		if (n == size || sscanf(s, "%2x", &v) != 1 || s[1] == '\0')
			return -1;
		out[n++] = (uint8_t)v;
		s += 2;
	}
	*len = n;
	return n >= 4 ? 0 : -1;
}

static int send_submit(struct imp *im, uint32_t dir, uint32_t ep, uint32_t len,
		       const uint8_t setup[8], const uint8_t *data, uint32_t *seq)
{
	uint8_t buf[VCCID_USBIP_HEADER_SIZE + VCCID_CCID_HEADER_SIZE + IMP_MAX_APDU];
	struct vccid_usbip_cmd c;
	size_t n = VCCID_USBIP_HEADER_SIZE;

	memset(&c, 0, sizeof c);
	c.command = USBIP_CMD_SUBMIT;
	c.seqnum = *seq = ++im->seqnum;
	c.devid = im->devid;
	c.direction = dir;
	c.ep = ep;
	c.transfer_buffer_length = len;
	if (setup != NULL)
		memcpy(c.setup, setup, 8);
	vccid_usbip_cmd_submit_encode(buf, &c);
	if (dir == USBIP_DIR_OUT && data != NULL) {
		memcpy(buf + n, data, len);
		n += len;
	}
	return bench_send_all(im->fd, buf, n, &stop);
}

/* Reads one RET_SUBMIT; an IN URB's data goes to im->in. */
static int read_ret(struct imp *im, struct vccid_usbip_ret *r, int is_in)
{
	uint8_t hdr[VCCID_USBIP_HEADER_SIZE];

	if (bench_recv_all(im->fd, hdr, sizeof hdr, 0, &stop) != 0)
		return -1;
	if (vccid_usbip_ret_decode(hdr, r) != 0 || r->command != USBIP_RET_SUBMIT) {
		fprintf(stderr, "usbip-importer: not a RET_SUBMIT\n");
		return -1;
	}
	if (r->status != 0) {
		fprintf(stderr, "usbip-importer: URB %u failed with status %d\n", r->seqnum,
			r->status);
		return -1;
	}
	if (is_in) {
		if (r->actual_length > IMP_IN_LEN)
			return -1;
		if (bench_recv_all(im->fd, im->in, r->actual_length, 0, &stop) != 0)
			return -1;
		im->in_len = r->actual_length;
	}
	return 0;
}

/* One CCID exchange: bulk-in URB first (as a host keeps one pending), then the bulk-out
 * message; both RET_SUBMITs, in whatever order they come. Returns the answer's length. */
static int exchange(struct imp *im, const uint8_t *msg, size_t len)
{
	struct vccid_usbip_ret r;
	uint32_t in_seq, out_seq;
	int got_in = 0, got_out = 0;

	if (send_submit(im, USBIP_DIR_IN, IMP_EP_BULK_IN, IMP_IN_LEN, NULL, NULL, &in_seq) != 0 ||
	    send_submit(im, USBIP_DIR_OUT, IMP_EP_BULK_OUT, (uint32_t)len, NULL, msg, &out_seq) != 0)
		return -1;
	while (!got_in || !got_out) {
		uint8_t hdr[VCCID_USBIP_HEADER_SIZE];

		/* Peek at the header to know whether data follows. */
		if (recv(im->fd, hdr, sizeof hdr, MSG_PEEK | MSG_WAITALL) != (ssize_t)sizeof hdr)
			return -1;
		if (vccid_usbip_ret_decode(hdr, &r) != 0)
			return -1;
		if (r.seqnum == in_seq) {
			if (read_ret(im, &r, 1) != 0)
				return -1;
			got_in = 1;
		} else if (r.seqnum == out_seq) {
			if (read_ret(im, &r, 0) != 0)
				return -1;
			got_out = 1;
		} else {
			fprintf(stderr, "usbip-importer: RET_SUBMIT for unknown seqnum %u\n", r.seqnum);
			return -1;
		}
	}
	if (im->in_len < VCCID_CCID_HEADER_SIZE || im->in[0] != VCCID_RDR_to_PC_DataBlock ||
	    im->in[6] != msg[6] || (im->in[7] & 0xC3) != 0) {
		fprintf(stderr, "usbip-importer: bad answer (type %02x seq %02x status %02x)\n",
			im->in_len > 0 ? im->in[0] : 0, im->in_len > 6 ? im->in[6] : 0,
			im->in_len > 7 ? im->in[7] : 0);
		return -1;
	}
	return (int)im->in_len;
}

static void ccid_header(uint8_t *m, uint8_t type, size_t len, uint8_t seq)
{
	memset(m, 0, VCCID_CCID_HEADER_SIZE);
	m[0] = type;
	m[1] = (uint8_t)len;
	m[2] = (uint8_t)(len >> 8);
	m[3] = (uint8_t)(len >> 16);
	m[4] = (uint8_t)(len >> 24);
	m[5] = 0;      /* slot 0 */
	m[6] = seq;
}

static int import_device(struct imp *im, const char *busid)
{
	uint8_t req[VCCID_USBIP_REQ_IMPORT_SIZE];
	uint8_t rep[VCCID_USBIP_REP_IMPORT_SIZE];
	struct vccid_usbip_device dev;
	/* SET_CONFIGURATION(1) on the control endpoint */
	static const uint8_t set_conf[8] = { 0x00, 0x09, 0x01, 0x00, 0, 0, 0, 0 };
	struct vccid_usbip_ret r;
	uint32_t seq;

	memset(req, 0, sizeof req);
	vccid_usbip_op_encode(req, OP_REQ_IMPORT, 0);
	strncpy((char *)req + VCCID_USBIP_OP_HEADER_SIZE, busid, VCCID_USBIP_BUSID_SIZE - 1);
	if (bench_send_all(im->fd, req, sizeof req, &stop) != 0 ||
	    bench_recv_all(im->fd, rep, VCCID_USBIP_OP_HEADER_SIZE, 0, &stop) != 0)
		return -1;
	if (rep[7] != USBIP_ST_OK || rep[2] != 0x00 || rep[3] != 0x03) {
		fprintf(stderr, "usbip-importer: import of %s refused (status %u)\n", busid, rep[7]);
		return -1;
	}
	if (bench_recv_all(im->fd, rep + VCCID_USBIP_OP_HEADER_SIZE, VCCID_USBIP_DEVICE_SIZE, 0,
			   &stop) != 0)
		return -1;
	vccid_usbip_device_decode(rep + VCCID_USBIP_OP_HEADER_SIZE, &dev);
	im->devid = dev.busnum << 16 | dev.devnum;
	if (send_submit(im, USBIP_DIR_OUT, 0, 0, set_conf, NULL, &seq) != 0 ||
	    read_ret(im, &r, 0) != 0 || r.seqnum != seq)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1", *busid = "1-1";
	unsigned long port = 0, count = 1000000, every = 50000, timeout_ms = 10000, i;
	uint8_t apdu[IMP_MAX_APDU], msg[VCCID_CCID_HEADER_SIZE + IMP_MAX_APDU];
	size_t apdu_len = sizeof default_apdu;
	struct imp im = { .fd = -1 };
	struct sigaction sa;
	uint64_t t0, t1;
	int opt, n = 0, hold = 0;

	memcpy(apdu, default_apdu, sizeof default_apdu);
	while ((opt = getopt(argc, argv, "H:p:b:n:e:a:T:Wh")) != -1) {
		switch (opt) {
		case 'H': host = optarg; break;
		case 'b': busid = optarg; break;
		case 'p':
			if (stats_parse_count(optarg, 1, 65535, &port) != 0)
				goto bad;
			break;
		case 'n':
			if (stats_parse_count(optarg, 1, 1000000000ul, &count) != 0)
				goto bad;
			break;
		case 'e':
			if (stats_parse_count(optarg, 1, 1000000000ul, &every) != 0)
				goto bad;
			break;
		case 'T':
			if (stats_parse_count(optarg, 1, 600000, &timeout_ms) != 0)
				goto bad;
			break;
		case 'a':
			if (hexparse(optarg, apdu, sizeof apdu, &apdu_len) != 0)
				goto bad;
			break;
		case 'W': hold = 1; break;
		case 'h': usage(stdout); return 0;
		default: goto bad;
		}
	}
	if (port == 0 || optind != argc || strlen(busid) >= VCCID_USBIP_BUSID_SIZE)
		goto bad;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	im.in = malloc(IMP_IN_LEN);
	if (im.in == NULL)
		return 1;
	im.fd = bench_tcp_connect("usbip-importer", host, port, timeout_ms, &stop);
	if (im.fd < 0 || import_device(&im, busid) != 0) {
		fprintf(stderr, "usbip-importer: cannot import %s from %s:%lu\n", busid, host, port);
		return 1;
	}
	ccid_header(msg, VCCID_PC_to_RDR_IccPowerOn, 0, im.bseq++);
	if (exchange(&im, msg, VCCID_CCID_HEADER_SIZE) <= VCCID_CCID_HEADER_SIZE) {
		fprintf(stderr, "usbip-importer: IccPowerOn gave no ATR\n");
		return 1;
	}
	memcpy(msg + VCCID_CCID_HEADER_SIZE, apdu, apdu_len);
	t0 = stats_now_ns();
	for (i = 0; i < count && !stop; i++) {
		ccid_header(msg, VCCID_PC_to_RDR_XfrBlock, apdu_len, im.bseq++);
		n = exchange(&im, msg, VCCID_CCID_HEADER_SIZE + apdu_len);
		if (n < VCCID_CCID_HEADER_SIZE + 2) {
			fprintf(stderr, "usbip-importer: exchange %lu failed\n", i + 1);
			return 1;
		}
		if ((i + 1) % every == 0) {
			printf("progress n=%lu\n", i + 1);
			fflush(stdout);
		}
	}
	t1 = stats_now_ns();
	printf("n=%lu wall_s=%.3f apdus_per_s=%.0f sw=%02X%02X\n", i, (double)(t1 - t0) / 1e9,
	       (double)i / ((double)(t1 - t0) / 1e9), n >= 2 ? im.in[n - 2] : 0,
	       n >= 2 ? im.in[n - 1] : 0);
	fflush(stdout);
	if (hold) {
		char line[16];

		(void)!fgets(line, sizeof line, stdin);
	}
	close(im.fd);
	free(im.in);
	return i == count ? 0 : 1;
bad:
	usage(stderr);
	return 2;
}
