/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzz target: the vpcd card state machine (first GET ATR, power controls,
 * transmits) and its framer, as a card emulator drives them, through the
 * in-memory transport, with the card in a slot once its ATR came. Input:
 *   byte 0: bits 0-5 the most bytes one read returns (0: all there is), bit 6
 *           the peer closes after its bytes (else it stalls), bit 7 all its
 *           bytes are readable at once (else one frame per GET ATR or APDU);
 *   byte 1: the number of steps (at most 64), then one byte per step:
 *           0x00-0x3F the transport serves the connection, 0x40 power up,
 *           0x41 power down, 0x42 reset, 0x43 vccid-ctl remove (the connection
 *           kept), 0x44 vccid-ctl insert (power on, GET ATR again), 0x45-0x7F
 *           serve, from 0x80 a transmit
 *           of an APDU with (bits 0-5) x 1024 + 1 data bytes (bit 6: a 3-byte
 *           response buffer);
 *   the rest: the bytes the peer sends.
 * Every message vccid sends is checked: whole, and a control only 00, 01, 02 or 04.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/vpcd/card.h"
#include "backends/vpcd/proto.h"
#include "corelib/error.h"
#include "fuzz-log.h"
#include "tests/unit/vpcd-fakeio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STEPS 64

/* Every frame sent is whole; a 1-byte payload is one of the four controls. */
static void check_sent(const struct vpcd_fakeio *f)
{
	size_t pos = 0;

	if (f->out_len == VPCD_FAKEIO_OUT_MAX)
		return;   /* only the head was kept */
	while (pos < f->out_len) {
		size_t len;

		if (f->out_len - pos < VCCID_VPCD_HEADER)
			__builtin_trap();
		len = (size_t)f->out[pos] << 8 | f->out[pos + 1];
		if (f->out_len - pos - VCCID_VPCD_HEADER < len || len == 0)
			__builtin_trap();
		if (len == 1 && f->out[pos + 2] != VCCID_VPCD_CTRL_OFF &&
		    f->out[pos + 2] != VCCID_VPCD_CTRL_ON && f->out[pos + 2] != VCCID_VPCD_CTRL_RESET &&
		    f->out[pos + 2] != VCCID_VPCD_CTRL_ATR)
			__builtin_trap();
		pos += VCCID_VPCD_HEADER + len;
	}
}

static void transmit(vccid_slot *slot, uint8_t step)
{
	static uint8_t cmd[4 + 3 + 0xFFFF];
	static uint8_t rsp[VCCID_MAX_RESPONSE];
	size_t data_len = (size_t)(step & 0x3F) * 1024 + 1;
	size_t cmd_len, rsp_len = step & 0x40 ? 3 : sizeof(rsp);

	if (data_len > VCCID_VPCD_MAX_APDU_DATA)
		data_len = VCCID_VPCD_MAX_APDU_DATA;
	/* Case 3 (ISO 7816-4 §5.1): extended Lc when the data need it. */
	cmd[0] = 0x00;
	cmd[1] = 0xD6;
	cmd[2] = 0x00;
	cmd[3] = 0x00;
	if (data_len <= 255) {
		cmd[4] = (uint8_t)data_len;
		cmd_len = 5;
	} else {
		cmd[4] = 0x00;
		cmd[5] = (uint8_t)(data_len >> 8);
		cmd[6] = (uint8_t)data_len;
		cmd_len = 7;
	}
	memset(cmd + cmd_len, 0x5A, data_len);
	(void)vccid_slot_transmit(slot, cmd, cmd_len + data_len, rsp, &rsp_len);
}

static void run_step(vccid_vpcd_card *card, vccid_slot *slot, uint8_t step)
{
	bool inserted = vccid_vpcd_card_in_slot(card);
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len = sizeof(atr);

	if (step >= 0x80) {
		if (inserted)
			transmit(slot, step);
		return;
	}
	if (inserted && step >= 0x40 && step <= 0x42) {
		static const enum vccid_power_action actions[] = { VCCID_POWER_UP, VCCID_POWER_DOWN,
								   VCCID_POWER_RESET };

		(void)vccid_slot_power(slot, actions[step - 0x40], atr, &atr_len);
		return;
	}
	if (step == 0x43) {
		/* As the listener's eject: kept, out of the slot, the connection up. */
		vccid_vpcd_card_keep(card);
		if (vccid_slot_remove(slot) == VCCID_OK && !vccid_vpcd_card_failed(card) &&
		    (vccid_vpcd_card_in_slot(card) || !vccid_vpcd_card_ready(card)))
			__builtin_trap();
		return;
	}
	if (step == 0x44) {
		if (vccid_vpcd_card_restart(card) == VCCID_OK && vccid_vpcd_card_ready(card))
			__builtin_trap();
		return;
	}
	if (vccid_vpcd_card_serve(card) == 1) {
		if (vccid_vpcd_card_insert(card, slot, "vpcd fuzz") != VCCID_OK)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vpcd_fakeio fake;
	vccid_vpcd_card *card;
	vccid_slot *slot;
	bool inserted;
	size_t n_steps, i;

	fuzz_enable_logging();
	if (size < 2)
		return 0;
	n_steps = data[1] < MAX_STEPS ? data[1] : MAX_STEPS;
	if (size < 2 + n_steps)
		return 0;
	vpcd_fakeio_init(&fake, data + 2 + n_steps, size - 2 - n_steps);
	fake.chunk = data[0] & 0x3F;
	fake.eof = (data[0] & 0x40) != 0;
	fake.whole = (data[0] & 0x80) != 0;
	card = vccid_vpcd_card_new(&fake.io, "fuzz", 100);
	slot = vccid_slot_new();
	if (card == NULL || slot == NULL)
		abort();
	(void)vccid_vpcd_card_start(card);
	for (i = 0; i < n_steps; i++)
		run_step(card, slot, data[2 + i]);
	/* The slot's remove releases the card; a failed card stays failed. */
	inserted = vccid_vpcd_card_in_slot(card);
	(void)vccid_slot_remove(slot);
	if (inserted && !vccid_vpcd_card_failed(card))
		__builtin_trap();
	check_sent(&fake);
	vccid_slot_free(slot);
	vccid_vpcd_card_free(card);
	return 0;
}
