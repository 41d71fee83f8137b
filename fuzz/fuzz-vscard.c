/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the VSCard host state machine (framing, handshake, readers,
 * ATRs, answers) and the transmit's direct read (its own answer, stashing what
 * is not, handing back), as a client drives them, through the in-memory
 * transport. Input:
 *   byte 0: bits 0-4 the most bytes one read returns (1-32), so messages
 *           are split and glued together; bit 7: the client reads only as
 *           much as the steps let it (else all);
 *   byte 1: bit 0 transmits read their own answers, bit 1 the client closes
 *           after its bytes (else it stalls), bits 2-7 the number of steps;
 *   the steps, 3 bytes each: an operation and a big-endian count of bytes
 *           the client sends (from the stream) before it. Operations below
 *           0x80: the transport's thread serves the connection, except from 0x40 the
 *           client reads (bits 0-5) x 8 more bytes and the transport writes
 *           what waits; from 0x80: a
 *           transmit on slot (bit 0) of an APDU with (bits 1-5) x 8 data bytes
 *           and a small (bit 6) response buffer;
 *   the rest: the byte stream the client sends; what the steps did not send
 *           is sent at the end, and the transport serves it.
 * Every message vccid writes is checked: whole, and only of a type a client
 * expects (Init, Error, FlushComplete, and APDU for a transmit).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vscard/host.h"
#include "backends/vscard/proto.h"
#include "corelib/error.h"
#include "fuzz-log.h"
#include "tests/unit/vscard-memio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SLOTS 2

static void check_write(const uint8_t *buf, size_t len, void *ctx)
{
	struct vccid_vscard_header header;

	(void)ctx;
	if (len < VCCID_VSCARD_HEADER_SIZE)
		__builtin_trap();
	vccid_vscard_header_decode(buf, &header);
	if (header.length != len - VCCID_VSCARD_HEADER_SIZE)
		__builtin_trap();
	if (header.type != VCCID_VSCARD_INIT && header.type != VCCID_VSCARD_ERROR &&
	    header.type != VCCID_VSCARD_FLUSH_COMPLETE && header.type != VCCID_VSCARD_APDU)
		__builtin_trap();
	if (header.type == VCCID_VSCARD_ERROR && header.length != 4)
		__builtin_trap();
}

static void transmit(vccid_slot *slot, uint8_t step)
{
	static uint8_t rsp[VCCID_MAX_RESPONSE];
	uint8_t cmd[5 + 32 * 8];
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);
	size_t data_len = (size_t)((step >> 1) & 0x1F) * 8;
	size_t rsp_len = (step & 0x40) ? 258 : sizeof(rsp);
	int rv;

	if (!vccid_slot_present(slot) ||
	    vccid_slot_power(slot, VCCID_POWER_UP, atr, &atr_len) != VCCID_OK)
		return;
	memset(cmd, 0x5A, sizeof(cmd));
	cmd[0] = 0x00;   /* SELECT, case 3 or case 1 */
	cmd[1] = 0xA4;
	cmd[2] = 0x04;
	cmd[3] = 0x00;
	cmd[4] = (uint8_t)data_len;
	rv = vccid_slot_transmit(slot, cmd, data_len > 0 ? 5 + data_len : 4, rsp, &rsp_len);
	if (rv == VCCID_OK && (rsp_len < 2 || rsp_len > sizeof(rsp)))
		__builtin_trap();
}

/* The client sends @p n more bytes of its stream (the memio reads in order). */
static void client_sends(struct vccid_vscard_memio *memio, size_t *unsent, size_t n)
{
	if (n > *unsent)
		n = *unsent;
	memio->in_len += n;
	*unsent -= n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vccid_vscard_memio memio;
	vccid_slot *slots[SLOTS];
	const uint8_t *steps;
	vccid_vscard_conn *conn;
	size_t n_steps;
	size_t unsent;
	bool closes;
	size_t i;

	fuzz_enable_logging();
	if (size < 2)
		return 0;
	vccid_vscard_memio_init(&memio, (data[1] & 1) != 0, (size_t)(data[0] % 32) + 1);
	if (data[0] & 0x80)
		memio.write_room = 0;
	closes = (data[1] & 2) != 0;
	memio.on_write = check_write;
	n_steps = (size_t)(data[1] >> 2);
	data += 2;
	size -= 2;
	if (n_steps > size / 3)
		n_steps = size / 3;
	steps = data;
	vccid_vscard_memio_feed(&memio, data + 3 * n_steps, 0);
	unsent = size - 3 * n_steps;
	for (i = 0; i < SLOTS; i++) {
		slots[i] = vccid_slot_new();
		if (slots[i] == NULL)
			abort();
		vccid_vscard_host_offer_slot(slots[i], "fuzz", (unsigned)i);
	}
	/* A timeout of 0: a transmit whose answer is not there gives up at once. */
	conn = vccid_vscard_conn_new(&memio.io, "fuzz", 0);
	if (conn == NULL)
		abort();
	/* The steps, then the transport serves until the client has nothing more. */
	for (i = 0; i < n_steps + 64 && !vccid_vscard_conn_dead(conn); i++) {
		uint8_t step = 0;

		/* It closes a step after its last byte, so a step can meet the end. */
		memio.eof_at_end = closes && unsent == 0;
		if (i < n_steps) {
			step = steps[3 * i];
			client_sends(&memio, &unsent, (size_t)steps[3 * i + 1] << 8 | steps[3 * i + 2]);
		} else {
			client_sends(&memio, &unsent, unsent);
			memio.eof_at_end = closes;
		}
		if (step & 0x80) {
			transmit(slots[step & 1], step);
		} else if (step & 0x40) {
			if (memio.write_room != SIZE_MAX)
				memio.write_room += (size_t)(step & 0x3F) * 8;
			vccid_vscard_conn_writable(conn);
		} else if (vccid_vscard_conn_read_begin(conn)) {
			const char *reason = vccid_vscard_conn_serve(conn);

			vccid_vscard_conn_read_end(conn);
			if (reason != NULL)
				break;
		}
		if (i >= n_steps && memio.in_len == 0 && !vccid_vscard_conn_stashed(conn))
			break;
	}
	vccid_vscard_conn_close(conn, "fuzz input ended");
	for (i = 0; i < SLOTS; i++) {
		vccid_vscard_host_withdraw_slot(slots[i]);
		if (vccid_slot_present(slots[i]))   /* a closed client leaves no card behind */
			__builtin_trap();
		vccid_slot_free(slots[i]);
	}
	return 0;
}
