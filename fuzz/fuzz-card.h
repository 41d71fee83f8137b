/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cards the CCID and USB/IP fuzz targets put into their two slots: the unit tests' fake
 * card (tests/unit/fake-card.h) answering by length, with the CAC (T=0) ATR and a T=1 ATR.
 */
#ifndef VCCID_FUZZ_CARD_H
#define VCCID_FUZZ_CARD_H

#include "tests/unit/fake-card.h"

/* Makes @p cards ready once; a fuzz target keeps them for every input. */
static inline void fuzz_cards_init(struct fake_card cards[2])
{
	static bool done;

	if (done)
		return;
	fake_card_init(&cards[0], FAKE_OK);
	fake_card_init(&cards[1], FAKE_OK);
	cards[0].answers = cards[1].answers = FAKE_ANSWER_LENGTH;
	cards[1].atr = fake_card_t1_atr;
	cards[1].atr_len = sizeof(fake_card_t1_atr);
	done = true;
}

#endif
