/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A distinct CAC card identifier per emulated card (libcacard hard-codes one for all). */
#ifndef VCCID_CARD_ID_H
#define VCCID_CARD_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VCCID_CARD_ID_BYTES 6   /* the trailing bytes of the CCC card identifier vccid sets */

/**
 * Derives the identifier bytes from the DER of the card's identity
 * certificate (SHA-256 through NSS, which must be initialised). False on failure.
 */
bool vccid_card_id_derive(const uint8_t *der, size_t der_len, uint8_t id[VCCID_CARD_ID_BYTES]);
/**
 * Replaces libcacard's fixed CCC card identifier in a response, if present,
 * with one ending in @p id. OpenSC derives the token serial from it.
 */
void vccid_card_id_apply(const uint8_t id[VCCID_CARD_ID_BYTES], uint8_t *rsp, size_t len);

#endif
