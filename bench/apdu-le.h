/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Le of a case-2 APDU, for the bench's cards that answer in place. */
#ifndef VCCID_BENCH_APDU_LE_H
#define VCCID_BENCH_APDU_LE_H

#include <stddef.h>

/* Ne of a case-2 APDU (short or extended; 00 and 0000 mean 256 and 65536), else 0.
 * The bench's cards stay this small on purpose: they stand for a card that costs nothing. */
static inline size_t bench_case2_le(const unsigned char *apdu, size_t len)
{
	if (len == 5)
		return apdu[4] ? apdu[4] : 256;
	if (len == 7 && apdu[4] == 0) {
		size_t le = ((size_t)apdu[5] << 8) | apdu[6];

		return le ? le : 65536;
	}
	return 0;
}

#endif
