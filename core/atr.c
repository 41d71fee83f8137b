/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ATR validation, ISO 7816-3:2006 §8.2. */
#include "atr.h"

#include "error.h"
#include "slot.h"

enum {
	TS_DIRECT = 0x3B,
	TS_INVERSE = 0x3F,
	PROTOCOL_GLOBAL = 15,   /* T=15 qualifies global bytes, not a protocol */
};

int vccid_atr_check(const uint8_t *atr, size_t len, unsigned *protocols)
{
	size_t pos = 2;
	unsigned offered = 0;
	bool need_tck = false;
	uint8_t y;
	size_t historical;
	size_t i;
	uint8_t xor_sum = 0;

	if (atr == NULL || len < 2 || len > VCCID_MAX_ATR)
		return VCCID_EPROTO;
	if (atr[0] != TS_DIRECT && atr[0] != TS_INVERSE)
		return VCCID_EPROTO;
	y = atr[1] >> 4;
	historical = atr[1] & 0x0F;

	while (y != 0) {
		unsigned count = (y & 1u) + ((y >> 1) & 1u) + ((y >> 2) & 1u);

		pos += count;  /* TAi, TBi, TCi */
		if ((y & 8u) == 0)
			break;
		if (pos >= len)
			return VCCID_EPROTO;
		/* TDi: the low nibble names a protocol; any but T=0 needs TCK. */
		{
			unsigned t = atr[pos] & 0x0F;

			if (t != PROTOCOL_GLOBAL)
				offered |= 1u << t;
			if (t != 0)
				need_tck = true;
		}
		y = atr[pos] >> 4;
		pos++;
	}
	if (pos > len)
		return VCCID_EPROTO;
	pos += historical;
	if (need_tck)
		pos++;
	if (pos != len)
		return VCCID_EPROTO;
	if (need_tck) {
		for (i = 1; i < len; i++)
			xor_sum ^= atr[i];
		if (xor_sum != 0)
			return VCCID_EPROTO;
	}
	if (offered == 0)
		offered = 1u;   /* no TD1: T=0 only */
	if (protocols != NULL)
		*protocols = offered;
	return VCCID_OK;
}
