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

#include "backends/vscard/proto.h"
#include "corelib/error.h"
#include "fuzz-card.h"
#include "fuzz-log.h"
#include "tools/share/client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_write(void *io, const uint8_t *buf, size_t len)
{
	struct vccid_vscard_header header;

	(void)io;
	if (len < VCCID_VSCARD_HEADER_SIZE)
		__builtin_trap();
	vccid_vscard_header_decode(buf, &header);
	if (header.length != len - VCCID_VSCARD_HEADER_SIZE)
		__builtin_trap();
	if (header.type < VCCID_VSCARD_INIT || header.type > VCCID_VSCARD_FLUSH_COMPLETE ||
	    header.type == VCCID_VSCARD_FLUSH)
		__builtin_trap();
	if (header.type == VCCID_VSCARD_ERROR && header.length != 4)
		__builtin_trap();
	return VCCID_OK;
}

/* The fake card reads the INS byte: shorter payloads (which the slot would
 * answer 67 00 before a card sees them) fail here. */
static int share_transmit(void *card, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
			  size_t *rsp_len)
{
	if (cmd_len < 4)
		return VCCID_EPROTO;
	return fake_card_ops.transmit(card, cmd, cmd_len, rsp, rsp_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct vccid_share_client_io io = { .write = check_write };
	static struct vccid_card_ops share_card_ops;
	static struct fake_card cards[2];
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
	if (share_card_ops.transmit == NULL) {
		fuzz_cards_init(cards);
		share_card_ops = fake_card_ops;
		share_card_ops.transmit = share_transmit;
		share_card_ops.release = NULL;   /* the card outlives every input */
	}
	vccid_share_client_set_card(client, &share_card_ops, &cards[0], true);
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
