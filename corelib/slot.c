/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The slot model: card presence and power under one lock, exchanges serialised under another. */
#include "slot.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apdu.h"
#include "atr.h"
#include "clock.h"
#include "error.h"
#include "log.h"

struct vccid_slot {
	/* state_lock guards every field below except io_lock; it is never held
	 * across a backend call, so presence queries never wait for a card. */
	pthread_mutex_t state_lock;
	pthread_cond_t changed;
	/* io_lock serialises backend calls for the card in the slot; remove
	 * takes it before release so no exchange can still use the card. */
	pthread_mutex_t io_lock;
	const struct vccid_card_ops *ops;
	void *card;
	char card_name[64];
	bool powered;
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len;
	uint64_t changes;
	uint64_t removals;
	unsigned waiters;
	uint64_t cancels;          /* bumps on every cancel that found waiters */
	bool cancel_pending;       /* a cancel found no waiter: the next wait takes it */
};

vccid_slot *vccid_slot_new(void)
{
	vccid_slot *slot = calloc(1, sizeof(*slot));
	pthread_condattr_t attr;

	if (slot == NULL)
		return NULL;
	pthread_mutex_init(&slot->state_lock, NULL);
	pthread_mutex_init(&slot->io_lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&slot->changed, &attr);
	pthread_condattr_destroy(&attr);
	return slot;
}

void vccid_slot_free(vccid_slot *slot)
{
	if (slot == NULL)
		return;
	(void)vccid_slot_remove(slot);
	pthread_cond_destroy(&slot->changed);
	pthread_mutex_destroy(&slot->io_lock);
	pthread_mutex_destroy(&slot->state_lock);
	free(slot);
}

int vccid_slot_insert(vccid_slot *slot, const struct vccid_card_ops *ops,
		      void *card, const char *name)
{
	int rv = VCCID_EBUSY;

	if (slot == NULL || ops == NULL || ops->power == NULL || ops->transmit == NULL)
		return VCCID_EINVAL;
	pthread_mutex_lock(&slot->state_lock);
	if (slot->ops == NULL) {
		slot->ops = ops;
		slot->card = card;
		snprintf(slot->card_name, sizeof(slot->card_name), "%s", name ? name : "");
		slot->powered = false;
		slot->atr_len = 0;
		slot->changes++;
		pthread_cond_broadcast(&slot->changed);
		rv = VCCID_OK;
	}
	pthread_mutex_unlock(&slot->state_lock);
	return rv;
}

int vccid_slot_remove(vccid_slot *slot)
{
	const struct vccid_card_ops *ops;
	void *card;

	if (slot == NULL)
		return VCCID_EINVAL;
	pthread_mutex_lock(&slot->state_lock);
	ops = slot->ops;
	card = slot->card;
	if (ops != NULL) {
		slot->ops = NULL;
		slot->card = NULL;
		slot->card_name[0] = '\0';
		slot->powered = false;
		slot->atr_len = 0;
		slot->changes++;
		slot->removals++;
		pthread_cond_broadcast(&slot->changed);
	}
	pthread_mutex_unlock(&slot->state_lock);
	if (ops == NULL)
		return VCCID_ENOCARD;

	/* Wait for an exchange in flight with this card, then let it go. */
	pthread_mutex_lock(&slot->io_lock);
	if (ops->release != NULL)
		ops->release(card);
	pthread_mutex_unlock(&slot->io_lock);
	return VCCID_OK;
}

bool vccid_slot_present(vccid_slot *slot)
{
	bool present;

	pthread_mutex_lock(&slot->state_lock);
	present = slot->ops != NULL;
	pthread_mutex_unlock(&slot->state_lock);
	return present;
}

void vccid_slot_get_status(vccid_slot *slot, struct vccid_slot_status *status)
{
	memset(status, 0, sizeof(*status));
	pthread_mutex_lock(&slot->state_lock);
	status->present = slot->ops != NULL;
	status->powered = slot->powered;
	status->changes = slot->changes;
	status->removals = slot->removals;
	status->atr_len = slot->powered ? slot->atr_len : 0;
	memcpy(status->atr, slot->atr, status->atr_len);
	memcpy(status->card_name, slot->card_name, sizeof(status->card_name));
	if (slot->ops != NULL && slot->ops->backend != NULL)
		snprintf(status->backend, sizeof(status->backend), "%s", slot->ops->backend);
	pthread_mutex_unlock(&slot->state_lock);
}

int vccid_slot_wait_change(vccid_slot *slot, uint64_t seen_changes, int timeout_ms)
{
	struct timespec deadline;
	uint64_t cancels;
	int rv = VCCID_OK;

	if (timeout_ms >= 0)
		vccid_deadline_after(&deadline, (unsigned)timeout_ms);
	pthread_mutex_lock(&slot->state_lock);
	cancels = slot->cancels;
	slot->waiters++;
	while (slot->changes == seen_changes) {
		int err;

		if (slot->cancel_pending || slot->cancels != cancels) {
			slot->cancel_pending = false;
			rv = VCCID_ECANCELED;
			break;
		}
		if (timeout_ms < 0)
			err = pthread_cond_wait(&slot->changed, &slot->state_lock);
		else
			err = pthread_cond_timedwait(&slot->changed, &slot->state_lock, &deadline);
		if (err == ETIMEDOUT && slot->changes == seen_changes) {
			rv = VCCID_ETIMEDOUT;
			break;
		}
	}
	slot->waiters--;
	pthread_mutex_unlock(&slot->state_lock);
	return rv;
}

void vccid_slot_cancel_waits(vccid_slot *slot)
{
	pthread_mutex_lock(&slot->state_lock);
	if (slot->waiters > 0)
		slot->cancels++;
	else
		slot->cancel_pending = true;
	pthread_cond_broadcast(&slot->changed);
	pthread_mutex_unlock(&slot->state_lock);
}

/* Takes io_lock and returns the card in the slot, or VCCID_ENOCARD (lock released).
 * The card's name is copied: a remove and insert may rewrite card_name meanwhile. */
static int slot_begin_io(vccid_slot *slot, const struct vccid_card_ops **ops, void **card,
			 uint64_t *changes, char name[64])
{
	pthread_mutex_lock(&slot->io_lock);
	pthread_mutex_lock(&slot->state_lock);
	*ops = slot->ops;
	*card = slot->card;
	*changes = slot->changes;
	memcpy(name, slot->card_name, sizeof(slot->card_name));
	pthread_mutex_unlock(&slot->state_lock);
	if (*ops == NULL) {
		pthread_mutex_unlock(&slot->io_lock);
		return VCCID_ENOCARD;
	}
	return VCCID_OK;
}

int vccid_slot_power(vccid_slot *slot, enum vccid_power_action action,
		     uint8_t *atr, size_t *atr_len)
{
	const struct vccid_card_ops *ops;
	void *card;
	uint64_t changes;
	char name[64];
	uint8_t new_atr[VCCID_MAX_ATR + 8];
	size_t new_len = sizeof(new_atr);
	unsigned protocols;
	int rv;

	if (slot == NULL || (action != VCCID_POWER_DOWN && (atr == NULL || atr_len == NULL)))
		return VCCID_EINVAL;
	rv = slot_begin_io(slot, &ops, &card, &changes, name);
	if (rv != VCCID_OK)
		return rv;

	rv = ops->power(card, action, action == VCCID_POWER_DOWN ? NULL : new_atr, &new_len);
	if (rv == VCCID_OK && action != VCCID_POWER_DOWN) {
		if (new_len > sizeof(new_atr) ||
		    vccid_atr_check(new_atr, new_len, &protocols) != VCCID_OK) {
			VCCID_LOG(VCCID_LOG_ERROR, "card %s gave an invalid ATR (%zu bytes)",
				  name, new_len);
			rv = VCCID_EPROTO;
		} else if (new_len > *atr_len) {
			rv = VCCID_ENOSPC;
		} else {
			memcpy(atr, new_atr, new_len);
			*atr_len = new_len;
		}
	}

	pthread_mutex_lock(&slot->state_lock);
	if (slot->changes == changes) { /* still the same card */
		if (action == VCCID_POWER_DOWN) {
			slot->powered = false;
			slot->atr_len = 0;
		} else if (rv == VCCID_OK) {
			slot->powered = true;
			memcpy(slot->atr, new_atr, new_len);
			slot->atr_len = new_len;
		} else {
			slot->powered = false;
			slot->atr_len = 0;
		}
	}
	pthread_mutex_unlock(&slot->state_lock);
	pthread_mutex_unlock(&slot->io_lock);
	return rv;
}

static const uint8_t sw_wrong_length[2] = { 0x67, 0x00 };

int vccid_slot_transmit(vccid_slot *slot, const uint8_t *cmd, size_t cmd_len,
			uint8_t *rsp, size_t *rsp_len)
{
	const struct vccid_card_ops *ops;
	void *card;
	uint64_t changes;
	struct vccid_apdu apdu;
	char name[64];
	bool powered;
	size_t capacity;
	int rv;

	if (slot == NULL || cmd == NULL || rsp == NULL || rsp_len == NULL)
		return VCCID_EINVAL;
	capacity = *rsp_len;
	*rsp_len = 0;
	if (capacity < 2)
		return VCCID_ENOSPC;
	rv = slot_begin_io(slot, &ops, &card, &changes, name);
	if (rv != VCCID_OK)
		return rv;
	*rsp_len = capacity;

	pthread_mutex_lock(&slot->state_lock);
	powered = slot->powered;
	pthread_mutex_unlock(&slot->state_lock);

	if (!powered) {
		rv = VCCID_ENOTPOWERED;
	} else if (vccid_apdu_parse(cmd, cmd_len, &apdu) != VCCID_OK) {
		VCCID_LOG(VCCID_LOG_INFO, "malformed APDU of %zu bytes for card %s: answered 67 00",
			  cmd_len, name);
		memcpy(rsp, sw_wrong_length, sizeof(sw_wrong_length));
		*rsp_len = sizeof(sw_wrong_length);
	} else {
		VCCID_HEX("APDU", cmd, cmd_len);
		rv = ops->transmit(card, cmd, cmd_len, rsp, rsp_len);
		if (rv == VCCID_OK && (*rsp_len < 2 || *rsp_len > capacity)) {
			VCCID_LOG(VCCID_LOG_ERROR, "card %s gave a response of %zu bytes",
				  name, *rsp_len);
			rv = VCCID_EIO;
		}
		if (rv == VCCID_OK)
			VCCID_HEX("response", rsp, *rsp_len);
	}
	pthread_mutex_unlock(&slot->io_lock);
	if (rv != VCCID_OK)
		*rsp_len = 0;
	return rv;
}
