/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ATR structure checks (ISO 7816-3 §8.2). */
#ifndef VCCID_ATR_H
#define VCCID_ATR_H

#include <stddef.h>
#include <stdint.h>

/**
 * Checks that @p atr is a well-formed ATR of at most 33 bytes: TS 3B or 3F,
 * interface bytes as announced by T0/TDi, the historical bytes, and TCK when
 * a protocol other than T=0 is indicated (its XOR checked).
 * Returns 0 or VCCID_EPROTO. On success *protocols gets a bit mask of the
 * offered protocols (bit 0 = T=0, bit 1 = T=1), T=0 when none is indicated.
 */
int vccid_atr_check(const uint8_t *atr, size_t len, unsigned *protocols);

#endif
