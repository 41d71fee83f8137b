/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Command APDU parsing, ISO 7816-4:2013 §5.1 (short and extended length fields). */
#include "apdu.h"

#include <string.h>

#include "error.h"

enum { HEADER_LEN = 4 };

static size_t read_be16(const uint8_t *p)
{
	return ((size_t)p[0] << 8) | p[1];
}

int vccid_apdu_parse(const uint8_t *buf, size_t len, struct vccid_apdu *apdu)
{
	size_t body;
	size_t lc;

	if (buf == NULL || apdu == NULL || len < HEADER_LEN)
		return VCCID_EPROTO;
	memset(apdu, 0, sizeof(*apdu));
	apdu->cla = buf[0];
	apdu->ins = buf[1];
	apdu->p1 = buf[2];
	apdu->p2 = buf[3];
	body = len - HEADER_LEN;
	buf += HEADER_LEN;

	if (body == 0) {
		apdu->apdu_case = VCCID_APDU_CASE_1;
		return VCCID_OK;
	}
	if (body == 1) {  /* short Le */
		apdu->apdu_case = VCCID_APDU_CASE_2;
		apdu->le = buf[0] ? buf[0] : 256;
		return VCCID_OK;
	}
	if (buf[0] != 0) {  /* short Lc */
		lc = buf[0];
		apdu->lc = lc;
		apdu->data = buf + 1;
		if (body == 1 + lc) {
			apdu->apdu_case = VCCID_APDU_CASE_3;
			return VCCID_OK;
		}
		if (body == 2 + lc) {
			apdu->apdu_case = VCCID_APDU_CASE_4;
			apdu->le = buf[1 + lc] ? buf[1 + lc] : 256;
			return VCCID_OK;
		}
		return VCCID_EPROTO;
	}

	/* A first body byte of 00 with more following: extended form. */
	apdu->extended = true;
	if (body == 3) {
		apdu->apdu_case = VCCID_APDU_CASE_2;
		apdu->le = read_be16(buf + 1);
		if (apdu->le == 0)
			apdu->le = 65536;
		return VCCID_OK;
	}
	if (body < 3)
		return VCCID_EPROTO;
	lc = read_be16(buf + 1);
	if (lc == 0)
		return VCCID_EPROTO;
	apdu->lc = lc;
	apdu->data = buf + 3;
	if (body == 3 + lc) {
		apdu->apdu_case = VCCID_APDU_CASE_3;
		return VCCID_OK;
	}
	if (body == 5 + lc) {
		apdu->apdu_case = VCCID_APDU_CASE_4;
		apdu->le = read_be16(buf + 3 + lc);
		if (apdu->le == 0)
			apdu->le = 65536;
		return VCCID_OK;
	}
	return VCCID_EPROTO;
}
