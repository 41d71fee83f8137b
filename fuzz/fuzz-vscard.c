/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the VSCard host state machine (framing, handshake, readers,
 * ATRs, answers) as a client drives it. Input: the byte stream a client
 * sends; the first byte picks the chunk size the bytes arrive in (1-32), so
 * messages are also split across reads. Every message vccid writes back is
 * checked: whole, and only of a type a client expects (Init, Error, FlushComplete).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vscard/host.h"
#include "backends/vscard/proto.h"
#include "core/error.h"
#include "fuzz-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_write(void *io, const uint8_t *buf, size_t len, int timeout_ms)
{
	struct vscard_header header;

	(void)io;
	(void)timeout_ms;
	if (len < VSCARD_HEADER_SIZE)
		__builtin_trap();
	vscard_header_decode(buf, &header);
	if (header.length != len - VSCARD_HEADER_SIZE)
		__builtin_trap();
	if (header.type != VSCARD_INIT && header.type != VSCARD_ERROR &&
	    header.type != VSCARD_FLUSH_COMPLETE)
		__builtin_trap();
	if (header.type == VSCARD_ERROR && header.length != 4)
		__builtin_trap();
	return VCCID_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vscard_io io = { .write = check_write, .fd = -1 };
	vccid_slot *slots[2];
	vscard_conn *conn;
	size_t chunk;
	size_t i;

	fuzz_enable_logging();
	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] % 32) + 1;
	data++;
	size--;
	for (i = 0; i < 2; i++) {
		slots[i] = vccid_slot_new();
		if (slots[i] == NULL)
			abort();
		vscard_host_offer_slot(slots[i], "fuzz", (unsigned)i);
	}
	conn = vscard_conn_new(&io, "fuzz", 100);
	if (conn == NULL)
		abort();
	while (size > 0) {
		size_t n = size < chunk ? size : chunk;

		if (vscard_conn_input(conn, data, n) != VCCID_OK)
			break;
		data += n;
		size -= n;
	}
	vscard_conn_close(conn, "fuzz input ended");
	for (i = 0; i < 2; i++) {
		vscard_host_withdraw_slot(slots[i]);
		if (vccid_slot_present(slots[i]))   /* a closed client leaves no card behind */
			__builtin_trap();
		vccid_slot_free(slots[i]);
	}
	return 0;
}
