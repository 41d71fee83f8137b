/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Minimal card client for vsmartcard's vpcd: answers every APDU in place, to measure vpcd's own cost. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "apdu-le.h"
#include "stats.h"
#include "tcp.h"

/* vpcd protocol (vsmartcard virtualsmartcard/src/vpcd/vpcd.h): every message is
 * a 2-byte big-endian length and a payload; a 1-byte payload is a control. */
enum {
	VPCD_CTRL_OFF = 0,
	VPCD_CTRL_ON = 1,
	VPCD_CTRL_RESET = 2,
	VPCD_CTRL_ATR = 4,
};
#define VPCD_CTRL_LEN 1
#define VPCD_DEFAULT_PORT 35963 /* 0x8C7B, vpcd's reader.conf CHANNELID */
#define VPCD_MAX_MSG 0xFFFF

/* Same card as bench/floor-driver.c: TS 3B, T=0, historical bytes 14 50. */
static const unsigned char card_atr[] = { 0x3B, 0x02, 0x14, 0x50 };

static int quickack = 1;

static void usage(FILE *f)
{
	fprintf(f, "usage: vpcd-card [-H HOST] [-p PORT] [-T CONNECT_TIMEOUT_MS] [--no-quickack]\n"
		   "  Connects to vpcd (default 127.0.0.1:%d), retrying until the timeout\n"
		   "  (default 10000 ms), and answers APDUs with 90 00 (case 2: Le zero bytes\n"
		   "  and 90 00) until vpcd closes the connection. TCP_NODELAY is always set;\n"
		   "  TCP_QUICKACK is re-armed after every receive unless --no-quickack.\n",
		VPCD_DEFAULT_PORT);
}

static void arm_quickack(int fd)
{
	bench_quickack(fd, quickack);
}

/* Reads exactly @p len bytes; returns 0, or -1 on EOF or error. */
static int read_all(int fd, unsigned char *buf, size_t len)
{
	return bench_recv_all(fd, buf, len, quickack, NULL);
}

/* Writes length and payload with one send. */
static int send_msg(int fd, unsigned char *msg, size_t payload_len)
{
	msg[0] = (unsigned char)(payload_len >> 8);
	msg[1] = (unsigned char)payload_len;
	return bench_send_all(fd, msg, payload_len + 2, NULL);
}

/* ISO/IEC 7816-4 §5.1: Le of a case-2 APDU, 0 for other shapes. */

int main(int argc, char **argv)
{
	const char *host = "127.0.0.1";
	unsigned long port = VPCD_DEFAULT_PORT, timeout_ms = 10000;
	/* 2 length bytes + the largest payload either way (65536 + 2 data would not fit
	 * vpcd's 16-bit length: such answers are cut to 0xFFFF). */
	static unsigned char in[2 + VPCD_MAX_MSG], out[2 + VPCD_MAX_MSG];
	unsigned long apdus = 0;
	int fd, i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--no-quickack") == 0) {
			quickack = 0;
		} else if (strcmp(argv[i], "-H") == 0 && i + 1 < argc) {
			host = argv[++i];
		} else if (strcmp(argv[i], "-p") == 0 && i + 1 < argc) {
			if (stats_option_count("vpcd-card", "PORT", argv[++i], 1, 65535, &port) != 0)
				return 2;
		} else if (strcmp(argv[i], "-T") == 0 && i + 1 < argc) {
			if (stats_option_count("vpcd-card", "TIMEOUT_MS", argv[++i], 1, 600000,
					       &timeout_ms) != 0)
				return 2;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	fd = bench_tcp_connect("vpcd-card", host, port, timeout_ms, NULL);
	if (fd >= 0)
		arm_quickack(fd);
	if (fd < 0)
		return 1;
	for (;;) {
		size_t len, le;

		if (read_all(fd, in, 2) != 0)
			break;
		len = (size_t)in[0] << 8 | in[1];
		if (read_all(fd, in + 2, len) != 0)
			break;
		if (len == VPCD_CTRL_LEN) {
			/* Power on, off and reset need no answer; the ATR request does. */
			if (in[2] == VPCD_CTRL_ATR) {
				memcpy(out + 2, card_atr, sizeof card_atr);
				if (send_msg(fd, out, sizeof card_atr) != 0)
					break;
			}
			continue;
		}
		if (len == 0)
			continue;
		le = bench_case2_le(in + 2, len);
		if (le + 2 > VPCD_MAX_MSG)
			le = VPCD_MAX_MSG - 2;
		memset(out + 2, 0, le);
		out[2 + le] = 0x90;
		out[3 + le] = 0x00;
		if (send_msg(fd, out, le + 2) != 0)
			break;
		apdus++;
	}
	close(fd);
	fprintf(stderr, "vpcd-card: connection closed after %lu APDUs\n", apdus);
	return 0;
}
