/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-card CAC identifiers: libcacard's cac.c gives every card the same CCC card identifier. */
#include "card-id.h"

#include <string.h>

#include <pk11pub.h>

/* The CCC card identifier libcacard answers for every card (its cac.c). */
static const uint8_t ccc_card_identifier[] = {
	0xA0, 0x00, 0x00, 0x00, 0x79, 0x03, 0x02, 0x40, 0x70, 0x50, 0x72,
	0x36, 0x0E, 0x00, 0x00, 0x58, 0xBD, 0x00, 0x2C, 0x19, 0xB5,
};

bool vccid_card_id_derive(const uint8_t *der, size_t der_len, uint8_t id[VCCID_CARD_ID_BYTES])
{
	uint8_t digest[32];

	if (der == NULL || der_len == 0 || der_len > 0x7FFFFFFF ||
	    PK11_HashBuf(SEC_OID_SHA256, digest, der, (PRInt32)der_len) != SECSuccess)
		return false;
	memcpy(id, digest, VCCID_CARD_ID_BYTES);
	return true;
}

void vccid_card_id_apply(const uint8_t id[VCCID_CARD_ID_BYTES], uint8_t *rsp, size_t len)
{
	size_t i;

	for (i = 0; i + sizeof(ccc_card_identifier) <= len; i++) {
		if (rsp[i] == ccc_card_identifier[0] &&
		    memcmp(rsp + i, ccc_card_identifier, sizeof(ccc_card_identifier)) == 0) {
			memcpy(rsp + i + sizeof(ccc_card_identifier) - VCCID_CARD_ID_BYTES, id,
			       VCCID_CARD_ID_BYTES);
			return;
		}
	}
}
