/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Big-endian byte helpers for tests that build and check protocol bytes by hand: an
 * independent oracle for vccid's codecs (a test that used the codec under test to make
 * its expectations could not catch the codec's mistakes).
 */
#ifndef VCCID_TESTS_BYTES_H
#define VCCID_TESTS_BYTES_H

#include <stdint.h>

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
