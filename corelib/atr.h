/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one ATR parser (ISO 7816-3 §8.2): structure checks and the interface bytes by index. */
#ifndef VCCID_ATR_H
#define VCCID_ATR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Interface byte groups: group i holds TAi, TBi, TCi, TDi. In 33 bytes every
 * byte after T0 can be a TD, so groups 1 to 32 can exist.
 */
#define VCCID_ATR_MAX_GROUPS 32

/* Protocol T=15 qualifies global interface bytes; it is no protocol. */
#define VCCID_ATR_T15 15

/** An ATR taken apart by vccid_atr_parse(). Absent bytes read -1. */
struct vccid_atr {
	size_t len;                    /* the whole ATR, TCK included */
	bool inverse;                  /* TS 3F: inverse convention */
	/* ta[i] is TAi for i = 1..VCCID_ATR_MAX_GROUPS; index 0 is unused (-1). */
	int16_t ta[VCCID_ATR_MAX_GROUPS + 1];
	int16_t tb[VCCID_ATR_MAX_GROUPS + 1];
	int16_t tc[VCCID_ATR_MAX_GROUPS + 1];
	int16_t td[VCCID_ATR_MAX_GROUPS + 1];
	unsigned protocols;            /* bit t: T=t offered (T=15 excluded); T=0 without TD1 */
	unsigned first_protocol;       /* T of TD1, 0 without TD1 (ISO 7816-3 §8.2.3) */
	/* T=1 (ISO 7816-3 §11.4): the first TAi, TBi, TCi (i > 2) after a TD naming T=1. */
	int16_t t1_ifsc;               /* TA: IFSC */
	int16_t t1_bwi_cwi;            /* TB: BWI and CWI */
	int16_t t1_edc;                /* TC: bit 0 set = CRC, else LRC */
	size_t hist_offset;            /* where the historical bytes start */
	size_t hist_len;               /* K of T0 */
	bool tck_present;              /* a TCK byte is required (a protocol other than T=0) and there */
	bool tck_ok;                   /* ... and the XOR of T0..TCK is 0 */
};

/**
 * Parses @p len bytes of @p atr: TS 3B or 3F, at most 33 bytes, interface
 * bytes as announced by T0 and each TDi, the K historical bytes, and TCK when
 * a protocol other than T=0 is indicated (its XOR checked), nothing after.
 * Returns 0 or VCCID_EPROTO. @p out (may be NULL) is always written: on
 * failure it holds what was read before the fault, absent bytes -1, so a
 * caller can say what was wrong; use its fields only after a 0 return.
 */
int vccid_atr_parse(const uint8_t *atr, size_t len, struct vccid_atr *out);

/**
 * vccid_atr_parse() for callers that only need the verdict: returns 0 or
 * VCCID_EPROTO; on success *protocols (may be NULL) gets the mask of the
 * offered protocols (bit 0 = T=0, bit 1 = T=1), T=0 when none is indicated,
 * and is left alone on failure.
 */
int vccid_atr_check(const uint8_t *atr, size_t len, unsigned *protocols);

#endif
