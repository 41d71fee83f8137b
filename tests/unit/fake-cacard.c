/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A stand-in for backends/cacard in unit tests: named fake cards (fake-card.c) answering like a
 * CAC, counted. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cacard/cacard.h"
#include "corelib/error.h"
#include "corelib/slot.h"
#include "tests/unit/fake-cacard.h"
#include "tests/unit/fake-card.h"

enum { FAKE_MAX_CARDS = 32 };

struct fake_known {
	char name[64];
	bool in_slot;
};

/* What sits in a slot: a fake card (fake-card.c) that knows which known card it is. */
struct fake_instance {
	struct fake_card card;   /* first: the release hook gets it back */
	size_t index;
};

static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fake_known known[FAKE_MAX_CARDS];
static size_t n_known;
static int acquires, releases, active, inserts, card_releases;

static void instance_released(struct fake_card *card)
{
	struct fake_instance *inst = (struct fake_instance *)card;

	pthread_mutex_lock(&fake_lock);
	known[inst->index].in_slot = false;
	card_releases++;
	pthread_mutex_unlock(&fake_lock);
	fake_card_destroy(card);
	free(inst);
}

static struct fake_known *find_known(const char *name)
{
	size_t i;

	for (i = 0; i < n_known; i++)
		if (strcmp(known[i].name, name) == 0)
			return &known[i];
	return NULL;
}

int vccid_cacard_acquire(const struct vccid_config *config)
{
	size_t i;

	pthread_mutex_lock(&fake_lock);
	acquires++;
	active++;
	for (i = 0; i < config->n_cards; i++) {
		const char *name = config->cards[i].name;

		if (find_known(name) == NULL && n_known < FAKE_MAX_CARDS) {
			memset(&known[n_known], 0, sizeof(known[n_known]));
			strncpy(known[n_known].name, name, sizeof(known[n_known].name) - 1);
			n_known++;
		}
	}
	pthread_mutex_unlock(&fake_lock);
	return VCCID_OK;
}

void vccid_cacard_release(void)
{
	pthread_mutex_lock(&fake_lock);
	releases++;
	active--;
	pthread_mutex_unlock(&fake_lock);
}

bool vccid_cacard_known(const char *name)
{
	bool found;

	pthread_mutex_lock(&fake_lock);
	found = find_known(name) != NULL;
	pthread_mutex_unlock(&fake_lock);
	return found;
}

int vccid_cacard_insert(const char *name, vccid_slot *slot)
{
	struct fake_instance *inst;
	struct fake_known *card;
	int rv;

	pthread_mutex_lock(&fake_lock);
	card = find_known(name);
	if (card == NULL || active == 0) {
		pthread_mutex_unlock(&fake_lock);
		return VCCID_ENOENT;
	}
	if (card->in_slot) {
		pthread_mutex_unlock(&fake_lock);
		return VCCID_EBUSY;
	}
	inst = malloc(sizeof(*inst));
	if (inst == NULL) {
		pthread_mutex_unlock(&fake_lock);
		return VCCID_ENOMEM;
	}
	fake_card_init(&inst->card, FAKE_OK);
	inst->card.on_release = instance_released;
	inst->index = (size_t)(card - known);
	/* The slot never calls back into the backend from insert, so the lock may stay held:
	 * a concurrent insert of the same card then sees in_slot. */
	rv = fake_card_insert(slot, &inst->card, name);
	if (rv == VCCID_OK) {
		card->in_slot = true;
		inserts++;
	} else {
		fake_card_destroy(&inst->card);
		free(inst);
	}
	pthread_mutex_unlock(&fake_lock);
	return rv;
}

void fake_cacard_reset(void)
{
	pthread_mutex_lock(&fake_lock);
	n_known = 0;
	acquires = releases = active = inserts = card_releases = 0;
	fake_card_reset_totals();
	pthread_mutex_unlock(&fake_lock);
}

#define FAKE_GETTER(fn, var) \
	int fn(void) \
	{ \
		int value; \
		pthread_mutex_lock(&fake_lock); \
		value = var; \
		pthread_mutex_unlock(&fake_lock); \
		return value; \
	}

FAKE_GETTER(fake_cacard_acquires, acquires)
FAKE_GETTER(fake_cacard_releases, releases)
FAKE_GETTER(fake_cacard_inserts, inserts)
FAKE_GETTER(fake_cacard_card_releases, card_releases)

int fake_cacard_transmits(void)
{
	return atomic_load(&fake_card_totals.transmits);
}
