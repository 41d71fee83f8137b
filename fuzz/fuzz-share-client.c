/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: vccid-share's VSCard client state machine (framing, handshake,
 * Error answers, APDUs) as a host drives it. Input: the byte stream a host
 * sends; the first byte picks the chunk size the bytes arrive in (1-32), so
 * messages are also split across reads. When the client drops the
 * connection it reconnects and takes the rest. Every message it writes is
 * checked: whole, and of a type a client sends (never Flush or unknown).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vscard/proto.h"
#include "core/error.h"
#include "fuzz-log.h"
#include "tools/share/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_write(void *io, const uint8_t *buf, size_t len)
{
	struct vscard_header header;

	(void)io;
	if (len < VSCARD_HEADER_SIZE)
		__builtin_trap();
	vscard_header_decode(buf, &header);
	if (header.length != len - VSCARD_HEADER_SIZE)
		__builtin_trap();
	if (header.type < VSCARD_INIT || header.type > VSCARD_FLUSH_COMPLETE ||
	    header.type == VSCARD_FLUSH)
		__builtin_trap();
	if (header.type == VSCARD_ERROR && header.length != 4)
		__builtin_trap();
	return VCCID_OK;
}

static int fake_power(void *card, enum vccid_power_action action, uint8_t *atr, size_t *atr_len)
{
	static const uint8_t cac_atr[] = {
		0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20, 0x63, 0x64, 0x31,
		0x34, 0x34,
	};

	(void)card;
	if (action == VCCID_POWER_DOWN)
		return VCCID_OK;
	memcpy(atr, cac_atr, sizeof(cac_atr));
	*atr_len = sizeof(cac_atr);
	return VCCID_OK;
}

/* Echoes the command back with 90 00, so long answers travel too. */
static int fake_transmit(void *card, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
			 size_t *rsp_len)
{
	(void)card;
	if (cmd_len + 2 > *rsp_len)
		return VCCID_ENOSPC;
	memcpy(rsp, cmd, cmd_len);
	rsp[cmd_len] = 0x90;
	rsp[cmd_len + 1] = 0x00;
	*rsp_len = cmd_len + 2;
	return VCCID_OK;
}

static const struct vccid_card_ops fake_ops = {
	.backend = "fuzz",
	.power = fake_power,
	.transmit = fake_transmit,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vccid_share_client_io io = { .write = check_write };
	vccid_share_client *client;
	size_t chunk;

	fuzz_enable_logging();
	if (size == 0)
		return 0;
	chunk = (size_t)(data[0] % 32) + 1;
	data++;
	size--;
	client = vccid_share_client_new(&io, "fuzz");
	if (client == NULL)
		abort();
	vccid_share_client_set_card(client, &fake_ops, NULL, true);
	vccid_share_client_connected(client);
	while (size > 0) {
		size_t n = size < chunk ? size : chunk;

		if (vccid_share_client_input(client, data, n) != VCCID_OK) {
			vccid_share_client_disconnected(client);
			vccid_share_client_connected(client);
		}
		data += n;
		size -= n;
	}
	vccid_share_client_goodbye(client);
	vccid_share_client_free(client);
	return 0;
}
