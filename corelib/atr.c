/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ATR parser, ISO 7816-3:2006 §8.2: the driver, the slots and the CCID engine all read ATRs here. */
#include "atr.h"

#include <string.h>

#include "error.h"
#include "slot.h"

enum {
	TS_DIRECT = 0x3B,
	TS_INVERSE = 0x3F,
	PROTOCOL_T1 = 1,
};

static void atr_clear(struct vccid_atr *a, size_t len)
{
	size_t i;

	memset(a, 0, sizeof(*a));
	a->len = len;
	for (i = 0; i <= VCCID_ATR_MAX_GROUPS; i++)
		a->ta[i] = a->tb[i] = a->tc[i] = a->td[i] = -1;
	a->t1_ifsc = a->t1_bwi_cwi = a->t1_edc = -1;
}

/* The first TAi, TBi, TCi (i > 2) of a group that a TD naming T=1 announced. */
static void note_t1(struct vccid_atr *a, unsigned group)
{
	if (a->t1_ifsc < 0)
		a->t1_ifsc = a->ta[group];
	if (a->t1_bwi_cwi < 0)
		a->t1_bwi_cwi = a->tb[group];
	if (a->t1_edc < 0)
		a->t1_edc = a->tc[group];
}

/*
 * Reads the interface bytes from atr[2]; returns the offset after them, or 0
 * when they run past @p len. *need_tck is set when a TD names a protocol
 * other than T=0.
 */
static size_t parse_interface(const uint8_t *atr, size_t len, struct vccid_atr *a,
			      bool *need_tck)
{
	size_t pos = 2;
	unsigned group = 1;
	unsigned protocol = 0;   /* the protocol the bytes of this group belong to */
	uint8_t y = atr[1] >> 4;

	for (;;) {
		int16_t *bytes[3] = { a->ta, a->tb, a->tc };
		unsigned k;

		for (k = 0; k < 3; k++) {
			if ((y & (1u << k)) == 0)
				continue;
			if (pos >= len)
				return 0;
			bytes[k][group] = atr[pos++];
		}
		if (group > 2 && protocol == PROTOCOL_T1)
			note_t1(a, group);
		if ((y & 8u) == 0)
			return pos;
		/* 33 bytes hold at most 31 TDs: a longer ATR was refused already. */
		if (pos >= len || group >= VCCID_ATR_MAX_GROUPS)
			return 0;
		a->td[group] = atr[pos];
		protocol = atr[pos] & 0x0F;
		if (protocol != VCCID_ATR_T15)
			a->protocols |= 1u << protocol;
		if (protocol != 0)
			*need_tck = true;
		if (group == 1)
			a->first_protocol = protocol;
		y = atr[pos++] >> 4;
		group++;
	}
}

int vccid_atr_parse(const uint8_t *atr, size_t len, struct vccid_atr *out)
{
	struct vccid_atr a;
	bool need_tck = false;
	uint8_t xor_sum = 0;
	size_t end;
	size_t i;
	int rv = VCCID_EPROTO;

	atr_clear(&a, len);
	if (atr == NULL || len < 2 || len > VCCID_MAX_ATR)
		goto out;
	if (atr[0] != TS_DIRECT && atr[0] != TS_INVERSE)
		goto out;
	a.inverse = atr[0] == TS_INVERSE;
	a.hist_len = atr[1] & 0x0F;
	a.hist_offset = parse_interface(atr, len, &a, &need_tck);
	if (a.hist_offset == 0)
		goto out;
	end = a.hist_offset + a.hist_len;
	if (end > len)
		goto out;
	if (need_tck && end < len) {
		a.tck_present = true;
		for (i = 1; i <= end; i++)   /* T0 to TCK */
			xor_sum ^= atr[i];
		a.tck_ok = xor_sum == 0;
		end++;
	}
	if (end != len || (need_tck && !a.tck_ok))
		goto out;
	if (a.protocols == 0)
		a.protocols = 1u;   /* no TD1: T=0 only */
	rv = VCCID_OK;
out:
	if (out != NULL)
		*out = a;
	return rv;
}

int vccid_atr_check(const uint8_t *atr, size_t len, unsigned *protocols)
{
	struct vccid_atr a;
	int rv = vccid_atr_parse(atr, len, &a);

	if (rv == VCCID_OK && protocols != NULL)
		*protocols = a.protocols;
	return rv;
}
