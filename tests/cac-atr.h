/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ATR of libcacard's CAC cards, for the test fixtures, fuzzers and helpers written in C
 * (lib.sh has it as VCCID_CAC_ATR, vscard-peer.py as CAC_ATR): TS 3B, T0 7A (TA1 18, TB1 00,
 * TC1 00, no TD1: T=0 only, no TCK), ten historical bytes "sfte cd144".
 */
#ifndef VCCID_TESTS_CAC_ATR_H
#define VCCID_TESTS_CAC_ATR_H

#include <stdint.h>

#define CAC_ATR_BYTES 0x3B, 0x7A, 0x18, 0x00, 0x00, 0x73, 0x66, 0x74, 0x65, 0x20, 0x63, 0x64, \
	0x31, 0x34, 0x34
/* As vccid-ctl's status line prints it. */
#define CAC_ATR_HEX "3B7A18000073667465206364313434"

static const uint8_t cac_atr[] = { CAC_ATR_BYTES };

#endif
