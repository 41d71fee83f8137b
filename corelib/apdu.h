/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ISO 7816-4 command APDU parsing: cases 1-4, short and extended forms. */
#ifndef VCCID_APDU_H
#define VCCID_APDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum vccid_apdu_case {
	VCCID_APDU_CASE_1 = 1,   /* CLA INS P1 P2 */
	VCCID_APDU_CASE_2 = 2,   /* ... Le */
	VCCID_APDU_CASE_3 = 3,   /* ... Lc data */
	VCCID_APDU_CASE_4 = 4,   /* ... Lc data Le */
};

struct vccid_apdu {
	uint8_t cla, ins, p1, p2;
	enum vccid_apdu_case apdu_case;
	bool extended;
	size_t lc;              /* Nc: number of data bytes */
	size_t le;              /* Ne: 0 when absent; 256 or 65536 for encoded 00 / 0000 */
	const uint8_t *data;    /* points into the caller's buffer, NULL when lc == 0 */
};

/**
 * Parses @p len bytes of @p buf as one command APDU (ISO 7816-4:2013 §5.1).
 * Returns 0, or VCCID_EPROTO for any length form that does not match the
 * buffer exactly (including Lc = 0 in short form and 0x00 0x00 0x00 Lc).
 */
int vccid_apdu_parse(const uint8_t *buf, size_t len, struct vccid_apdu *apdu);

#endif
