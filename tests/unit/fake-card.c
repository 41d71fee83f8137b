/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The fake card of the unit tests and fuzzers (see fake-card.h). */
#include "tests/unit/fake-card.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "corelib/error.h"
#include "tests/cac-atr.h"
#include "tests/unit/sync.h"

#define FAKE_MAGIC 0xCA4DCA4Du
#define FAKE_DEAD 0xDEADDEADu

struct fake_card_totals fake_card_totals;

const uint8_t fake_card_t1_atr[18] = {
	0x3B, 0xF8, 0x13, 0x00, 0x00, 0x81, 0x31, 0xFE, 0x15,
	'Y', 'u', 'b', 'i', 'k', 'e', 'y', '4', 0xD4
};

static const uint8_t get_data_256[] = { 0x00, 0xCA, 0x00, 0x00, 0x00 };

uint8_t fake_card_pattern(size_t i)
{
	return (uint8_t)(i * 7 + 1);
}

/* FNV-1a: lets a test check which APDU arrived without keeping it. */
uint32_t fake_card_hash(const uint8_t *p, size_t n)
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void violation(void)
{
	atomic_fetch_add(&fake_card_totals.violations, 1);
}

static void enter(struct fake_card *card)
{
	if (atomic_load(&card->magic) != FAKE_MAGIC)
		violation();   /* a call after release */
	if (atomic_fetch_add(&card->in_call, 1) != 0)
		violation();   /* two calls at once */
}

static void leave(struct fake_card *card)
{
	atomic_fetch_sub(&card->in_call, 1);
}

static int fake_power(void *opaque, enum vccid_power_action action, uint8_t *atr,
		      size_t *atr_len)
{
	struct fake_card *card = opaque;
	int rv = VCCID_OK;

	enter(card);
	atomic_fetch_add(&card->power_calls, 1);
	card->last_action = action;
	if (card->mode == FAKE_POWER_FAIL) {
		rv = VCCID_EIO;
	} else if (action != VCCID_POWER_DOWN) {
		if (atr == NULL || atr_len == NULL || *atr_len < VCCID_MAX_ATR) {
			violation();   /* the slot always offers room for any ATR */
			rv = VCCID_ENOSPC;
		} else {
			memcpy(atr, card->atr, card->atr_len);
			*atr_len = card->atr_len;
			if (card->mode == FAKE_BAD_ATR)
				atr[0] = 0x3C;
			if (card->mode == FAKE_LONG_ATR)
				*atr_len = 4096;
		}
	}
	leave(card);
	return rv;
}

/* Answers into @p rsp (capacity *@p rsp_len) as card->answers says, 90 00 included. */
static int answer(const struct fake_card *card, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
		  size_t *rsp_len)
{
	size_t n = 0, i;

	if (card->answers == FAKE_ANSWER_STATUS) {
		if (cmd_len == sizeof(get_data_256) && memcmp(cmd, get_data_256, cmd_len) == 0)
			n = 256;
		for (i = 0; i < n && i < *rsp_len; i++)
			rsp[i] = (uint8_t)i;
	} else if (cmd_len >= 4 && cmd[1] == 0xEE) {
		return VCCID_EIO;
	} else if (cmd_len >= 4 && cmd[1] == 0xB0) {
		n = (size_t)cmd[2] << 8 | cmd[3];
		for (i = 0; i < n && i < *rsp_len; i++)
			rsp[i] = fake_card_pattern(i);
	} else {
		n = 2;
		if (*rsp_len >= 2) {
			rsp[0] = (uint8_t)(cmd_len >> 8);
			rsp[1] = (uint8_t)cmd_len;
		}
	}
	if (n + 2 > *rsp_len)
		return VCCID_ENOSPC;
	rsp[n] = 0x90;
	rsp[n + 1] = 0x00;
	*rsp_len = n + 2;
	return VCCID_OK;
}

static int fake_transmit(void *opaque, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
			 size_t *rsp_len)
{
	struct fake_card *card = opaque;
	int rv = VCCID_OK;

	enter(card);
	atomic_fetch_add(&card->transmit_calls, 1);
	atomic_fetch_add(&fake_card_totals.transmits, 1);
	card->last_len = cmd_len;
	card->last_hash = fake_card_hash(cmd, cmd_len);
	if (card->mode == FAKE_BLOCK) {
		pthread_mutex_lock(&card->gate_lock);
		card->entered = true;
		pthread_cond_broadcast(&card->gate_cond);
		while (!card->gate_open)
			pthread_cond_wait(&card->gate_cond, &card->gate_lock);
		pthread_mutex_unlock(&card->gate_lock);
	}
	if (card->mode == FAKE_TRANSMIT_FAIL) {
		rv = VCCID_EIO;
	} else if (card->mode == FAKE_RSP_TOO_BIG) {
		*rsp_len = *rsp_len + 1;
	} else if (card->mode == FAKE_RSP_TOO_SHORT) {
		rsp[0] = 0x90;
		*rsp_len = 1;
	} else {
		rv = answer(card, cmd, cmd_len, rsp, rsp_len);
	}
	if (card->mode == FAKE_BLOCK)
		atomic_store(&card->transmit_done, true);
	leave(card);
	return rv;
}

static void fake_release(void *opaque)
{
	struct fake_card *card = opaque;

	if (atomic_load(&card->in_call) != 0)
		atomic_store(&card->release_early, true);
	if (atomic_exchange(&card->magic, FAKE_DEAD) != FAKE_MAGIC)
		violation();   /* released twice */
	atomic_fetch_add(&card->release_calls, 1);
	atomic_fetch_add(&fake_card_totals.releases, 1);
	if (card->on_release != NULL) {
		card->on_release(card);
	} else if (card->free_on_release) {
		fake_card_destroy(card);
		free(card);
	}
}

const struct vccid_card_ops fake_card_ops = {
	.backend = "fake",
	.power = fake_power,
	.transmit = fake_transmit,
	.release = fake_release,
};

void fake_card_init(struct fake_card *card, enum fake_card_mode mode)
{
	memset(card, 0, sizeof(*card));
	atomic_store(&card->magic, FAKE_MAGIC);
	card->mode = mode;
	card->answers = FAKE_ANSWER_STATUS;
	card->atr = cac_atr;
	card->atr_len = sizeof(cac_atr);
	pthread_mutex_init(&card->gate_lock, NULL);
	pthread_cond_init(&card->gate_cond, NULL);
}

void fake_card_destroy(struct fake_card *card)
{
	pthread_cond_destroy(&card->gate_cond);
	pthread_mutex_destroy(&card->gate_lock);
}

struct fake_card *fake_card_new(enum fake_card_mode mode)
{
	struct fake_card *card = malloc(sizeof(*card));

	if (card == NULL)
		abort();
	fake_card_init(card, mode);
	card->free_on_release = true;
	return card;
}

int fake_card_insert(vccid_slot *slot, struct fake_card *card, const char *name)
{
	int rv;

	atomic_store(&card->magic, FAKE_MAGIC);
	rv = vccid_slot_insert(slot, &fake_card_ops, card, name);
	if (rv != VCCID_OK)
		atomic_store(&card->magic, FAKE_DEAD);
	return rv;
}

void fake_card_reset_totals(void)
{
	atomic_store(&fake_card_totals.releases, 0);
	atomic_store(&fake_card_totals.transmits, 0);
	atomic_store(&fake_card_totals.violations, 0);
}

bool fake_card_wait_entered(struct fake_card *card, int timeout_ms)
{
	struct timespec deadline = test_deadline(timeout_ms);
	bool entered;

	pthread_mutex_lock(&card->gate_lock);
	while (!card->entered &&
	       pthread_cond_timedwait(&card->gate_cond, &card->gate_lock, &deadline) != ETIMEDOUT)
		;
	entered = card->entered;
	pthread_mutex_unlock(&card->gate_lock);
	return entered;
}

void fake_card_open_gate(struct fake_card *card)
{
	pthread_mutex_lock(&card->gate_lock);
	card->gate_open = true;
	pthread_cond_broadcast(&card->gate_cond);
	pthread_mutex_unlock(&card->gate_lock);
}

void fake_card_close_gate(struct fake_card *card)
{
	pthread_mutex_lock(&card->gate_lock);
	card->entered = false;
	card->gate_open = false;
	pthread_mutex_unlock(&card->gate_lock);
}
