/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pcsc-xfer READER HEXAPDU...: sends the APDUs in order on one PC/SC connection and prints
 * "apdu=N tx=LEN rx=LEN sw=XXXX us=MICROSECONDS" for each (answer length with SW).
 * Exit status: 0, 1 on a PC/SC error (printed), 2 on a usage error.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <winscard.h>

#define XFER_MAX_APDU 65544
#define XFER_MAX_RX (65536 + 2)

static long parse_hex(const char *s, unsigned char *out, size_t size)
{
	size_t n = 0;

	while (*s != '\0') {
		unsigned v;

		if (isspace((unsigned char)*s) || *s == ':') {
			s++;
			continue;
		}
		if (n == size || !isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]) ||
		    sscanf(s, "%2x", &v) != 1)
			return -1;
		out[n++] = (unsigned char)v;
		s += 2;
	}
	return (long)n;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
	static unsigned char tx[XFER_MAX_APDU], rx[XFER_MAX_RX];
	SCARDCONTEXT ctx;
	SCARDHANDLE card;
	DWORD proto;
	LONG rv;
	int i, status = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: pcsc-xfer READER HEXAPDU...\n");
		return 2;
	}
	rv = SCardEstablishContext(SCARD_SCOPE_SYSTEM, NULL, NULL, &ctx);
	if (rv != SCARD_S_SUCCESS) {
		printf("error=SCardEstablishContext:%s\n", pcsc_stringify_error(rv));
		return 1;
	}
	rv = SCardConnect(ctx, argv[1], SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1,
			  &card, &proto);
	if (rv != SCARD_S_SUCCESS) {
		printf("error=SCardConnect:%s\n", pcsc_stringify_error(rv));
		SCardReleaseContext(ctx);
		return 1;
	}
	for (i = 2; i < argc; i++) {
		const SCARD_IO_REQUEST *pci = proto == SCARD_PROTOCOL_T1 ? SCARD_PCI_T1 : SCARD_PCI_T0;
		long tx_len = parse_hex(argv[i], tx, sizeof(tx));
		DWORD rx_len = sizeof(rx);
		double t0;

		if (tx_len < 4) {
			fprintf(stderr, "pcsc-xfer: bad APDU %s\n", argv[i]);
			status = 2;
			break;
		}
		t0 = now_us();
		rv = SCardTransmit(card, pci, tx, (DWORD)tx_len, NULL, rx, &rx_len);
		if (rv != SCARD_S_SUCCESS) {
			printf("apdu=%d tx=%ld error=SCardTransmit:%s\n", i - 1, tx_len,
			       pcsc_stringify_error(rv));
			status = 1;
			break;
		}
		printf("apdu=%d tx=%ld rx=%lu sw=%02X%02X us=%.0f\n", i - 1, tx_len,
		       (unsigned long)rx_len, rx_len >= 2 ? rx[rx_len - 2] : 0,
		       rx_len >= 2 ? rx[rx_len - 1] : 0, now_us() - t0);
	}
	SCardDisconnect(card, SCARD_LEAVE_CARD);
	SCardReleaseContext(ctx);
	return status;
}
