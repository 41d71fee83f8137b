/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The card the CCID and USB/IP fuzz targets put into their slots: a T=0 and a
 * T=1 ATR; INS B0 answers P1P2 bytes (to reach response chaining), INS EE
 * fails, anything else answers its own length and 90 00.
 */
#ifndef VCCID_FUZZ_CARD_H
#define VCCID_FUZZ_CARD_H

#include <stdint.h>
#include <string.h>

#include "core/error.h"
#include "core/slot.h"
#include "tests/cac-atr.h"

/* TA1 13, TD1 81 (T=1), TD2 31, TA3 FE, TB3 15, 8 historical bytes, TCK. */
static const uint8_t fuzz_t1_atr[] = {
	0x3B, 0xF8, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15,
	'Y', 'u', 'b', 'i', 'k', 'e', 'y', '4', 0xD4
};

struct fuzz_card {
	const uint8_t *atr;
	size_t atr_len;
};

static inline int fuzz_card_power(void *opaque, enum vccid_power_action action, uint8_t *atr,
				  size_t *atr_len)
{
	struct fuzz_card *card = opaque;

	if (action != VCCID_POWER_DOWN) {
		memcpy(atr, card->atr, card->atr_len);
		*atr_len = card->atr_len;
	}
	return VCCID_OK;
}

static inline int fuzz_card_transmit(void *opaque, const uint8_t *cmd, size_t cmd_len,
				     uint8_t *rsp, size_t *rsp_len)
{
	size_t n, i;

	(void)opaque;
	if (cmd[1] == 0xEE)
		return VCCID_EIO;
	if (cmd[1] == 0xB0) {
		n = (size_t)cmd[2] << 8 | cmd[3];
		if (n + 2 > *rsp_len)
			return VCCID_ENOSPC;
		for (i = 0; i < n; i++)
			rsp[i] = (uint8_t)i;
	} else {
		n = 2;
		rsp[0] = (uint8_t)(cmd_len >> 8);
		rsp[1] = (uint8_t)cmd_len;
	}
	rsp[n] = 0x90;
	rsp[n + 1] = 0x00;
	*rsp_len = n + 2;
	return VCCID_OK;
}

static const struct vccid_card_ops fuzz_card_ops = {
	.backend = "fuzz",
	.power = fuzz_card_power,
	.transmit = fuzz_card_transmit,
	.release = NULL,
};

#endif
