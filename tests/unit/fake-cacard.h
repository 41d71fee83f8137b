/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* fake-cacard.c, the stand-in for backends/cacard: its counters, for the tests. */
#ifndef VCCID_TESTS_FAKE_CACARD_H
#define VCCID_TESTS_FAKE_CACARD_H

void fake_cacard_reset(void);
int fake_cacard_acquires(void);
int fake_cacard_releases(void);
int fake_cacard_inserts(void);
int fake_cacard_card_releases(void);
int fake_cacard_transmits(void);

#endif
