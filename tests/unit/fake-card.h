/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The one fake card of the unit tests and fuzzers: a struct vccid_card_ops backend whose
 * behaviour is chosen by options (a mode, an answer style, an ATR), counting its calls and
 * checking the slot's guarantees (one call at a time, none after release, one release).
 */
#ifndef VCCID_TESTS_FAKE_CARD_H
#define VCCID_TESTS_FAKE_CARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corelib/slot.h"

enum fake_card_mode {
	FAKE_OK,
	FAKE_BAD_ATR,        /* power gives a malformed ATR (TS 3C) */
	FAKE_LONG_ATR,       /* power claims an ATR longer than any buffer */
	FAKE_POWER_FAIL,     /* power returns VCCID_EIO */
	FAKE_RSP_TOO_BIG,    /* transmit claims capacity + 1 bytes */
	FAKE_RSP_TOO_SHORT,  /* transmit returns 1 byte */
	FAKE_TRANSMIT_FAIL,  /* transmit returns VCCID_EIO */
	FAKE_BLOCK,          /* transmit waits until the gate opens (fake_card_open_gate) */
};

/* What a working card answers; every answer ends in 90 00. */
enum fake_card_answers {
	/* Like a CAC: GET DATA 00 CA 00 00 00 gives bytes 00..FF, anything else nothing. */
	FAKE_ANSWER_STATUS,
	/* READ BINARY (INS B0) gives P1P2 bytes fake_card_pattern(0...), INS EE fails with
	 * VCCID_EIO (so fuzz input reaches the error path), anything else its own length in
	 * two bytes (big-endian), so a test sees what arrived. */
	FAKE_ANSWER_LENGTH,
};

struct fake_card {
	/* Options: set after fake_card_init, before the card is inserted. */
	enum fake_card_mode mode;           /* may change while inserted */
	enum fake_card_answers answers;
	const uint8_t *atr;                 /* default: the CAC ATR */
	size_t atr_len;
	bool free_on_release;               /* release destroys and frees the card */
	/* Called by release instead of freeing: the card's owner takes it back. */
	void (*on_release)(struct fake_card *card);

	/* What the card saw. */
	atomic_int power_calls;
	atomic_int transmit_calls;
	atomic_int release_calls;
	enum vccid_power_action last_action;
	size_t last_len;                    /* the last command APDU: length and hash */
	uint32_t last_hash;
	atomic_bool transmit_done;          /* a FAKE_BLOCK transmit has returned */
	atomic_bool release_early;          /* release came while a call was in progress */

	/* Internal. */
	atomic_uint magic;
	atomic_int in_call;
	pthread_mutex_t gate_lock;
	pthread_cond_t gate_cond;
	bool entered;
	bool gate_open;
};

/* Totals over every fake card since the last fake_card_reset_totals. */
struct fake_card_totals {
	atomic_int releases;
	atomic_int transmits;
	atomic_int violations;              /* broken slot guarantees seen by any card */
};
extern struct fake_card_totals fake_card_totals;

extern const struct vccid_card_ops fake_card_ops;
/* TA1 13, TD1 81 (T=1), TD2 31, TA3 (IFSC) FE, TB3 (BWI/CWI) 15, "Yubikey4", TCK. */
extern const uint8_t fake_card_t1_atr[18];

void fake_card_init(struct fake_card *card, enum fake_card_mode mode);
void fake_card_destroy(struct fake_card *card);
/* A card on the heap, freed by its release. */
struct fake_card *fake_card_new(enum fake_card_mode mode);
/* Inserts @p card (again: a released card may go back into a slot). */
int fake_card_insert(vccid_slot *slot, struct fake_card *card, const char *name);
void fake_card_reset_totals(void);

/* FAKE_BLOCK: waits up to @p timeout_ms for a transmit to reach the gate (false if none did),
 * opens the gate, closes it again for the next transmit. */
bool fake_card_wait_entered(struct fake_card *card, int timeout_ms);
void fake_card_open_gate(struct fake_card *card);
void fake_card_close_gate(struct fake_card *card);

uint8_t fake_card_pattern(size_t i);
uint32_t fake_card_hash(const uint8_t *p, size_t n);

#endif
