/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vpcd card state machine: first GET ATR, then power controls and APDUs with a deadline, all through a transport. */
#define _DEFAULT_SOURCE   /* explicit_bzero */
#include "card.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corelib/atr.h"
#include "corelib/clock.h"
#include "corelib/error.h"
#include "corelib/log.h"
#include "proto.h"

/* The most reads one serve makes: a fast peer cannot keep the thread from the others. */
#define SERVE_MAX_READS 4

/*
 * A card's life on one connection (a failure ends it in any state):
 *   WAIT_ATR --the ATR came and is valid--> OUT --vccid_vpcd_card_insert--> IN
 *   IN --release kept (vccid-ctl remove: power off sent)--> OUT
 *   OUT --vccid_vpcd_card_restart (power on, GET ATR)--> WAIT_ATR
 */
enum card_state {
	CARD_WAIT_ATR,   /* a GET ATR is out: nothing else may be sent or come */
	CARD_OUT,        /* an ATR taken, not in a slot: nothing may come */
	CARD_IN,         /* in its slot: exchanges run */
};

struct vccid_vpcd_card {
	/* Held by an exchange (power, transmit) and by serve: the connection has
	 * one reader at a time. Lock order: the slot's lock, then this one. */
	pthread_mutex_t lock;
	struct vccid_vpcd_io io;
	char peer[64];
	unsigned timeout_ms;
	struct vccid_vpcd_framer framer;
	uint8_t *payload;       /* the framer's buffer: VCCID_VPCD_MAX_PAYLOAD bytes */
	uint8_t *chunk;         /* what one recv brings: at most one message (VCCID_VPCD_MAX_MESSAGE) */
	uint8_t *tx;            /* one encoded message: VCCID_VPCD_MAX_MESSAGE */
	uint8_t atr[VCCID_MAX_ATR];
	size_t atr_len;
	atomic_int state;            /* enum card_state; changed under lock */
	atomic_bool keep;            /* the next release keeps the connection (set without the lock) */
	atomic_bool failed;
	_Atomic(const char *) why;
	atomic_llong last_exchange;
	atomic_llong atr_asked;      /* when the outstanding GET ATR went out; 0: none */
	atomic_uint refs;            /* the transport's, and the slot's while it holds the card */
};

vccid_vpcd_card *vccid_vpcd_card_new(const struct vccid_vpcd_io *io, const char *peer,
				     unsigned timeout_ms)
{
	vccid_vpcd_card *card = calloc(1, sizeof(*card));

	if (card == NULL)
		return NULL;
	card->payload = malloc(VCCID_VPCD_MAX_PAYLOAD);
	card->chunk = malloc(VCCID_VPCD_MAX_MESSAGE);
	card->tx = malloc(VCCID_VPCD_MAX_MESSAGE);
	if (card->payload == NULL || card->chunk == NULL || card->tx == NULL) {
		vccid_vpcd_card_free(card);
		return NULL;
	}
	pthread_mutex_init(&card->lock, NULL);
	card->io = *io;
	snprintf(card->peer, sizeof(card->peer), "%s", peer ? peer : "?");
	card->timeout_ms = timeout_ms;
	vccid_vpcd_framer_init(&card->framer, card->payload, VCCID_VPCD_MAX_PAYLOAD);
	atomic_init(&card->why, "");
	atomic_init(&card->state, CARD_WAIT_ATR);
	atomic_init(&card->refs, 1);
	return card;
}

static void card_destroy(vccid_vpcd_card *card)
{
	if (card->payload != NULL) {
		/* APDUs may carry PINs and keys. */
		explicit_bzero(card->payload, VCCID_VPCD_MAX_PAYLOAD);
		explicit_bzero(card->chunk, VCCID_VPCD_MAX_MESSAGE);
		explicit_bzero(card->tx, VCCID_VPCD_MAX_MESSAGE);
		pthread_mutex_destroy(&card->lock);
	}
	free(card->payload);
	free(card->chunk);
	free(card->tx);
	free(card);
}

void vccid_vpcd_card_free(vccid_vpcd_card *card)
{
	if (card != NULL && atomic_fetch_sub(&card->refs, 1) == 1)
		card_destroy(card);
}

/* Marks the card unusable with the first reason, and tells the transport. */
static int card_fail(vccid_vpcd_card *card, int err, const char *why)
{
	const char *none = "";

	(void)atomic_compare_exchange_strong(&card->why, &none, why);
	if (!atomic_exchange(&card->failed, true) && card->io.failed != NULL)
		card->io.failed(card->io.io);
	return err;
}

static int send_message(vccid_vpcd_card *card, const uint8_t *payload, size_t len,
			long long deadline)
{
	size_t n;
	int rv = vccid_vpcd_encode(payload, len, card->tx, VCCID_VPCD_MAX_MESSAGE, &n);

	if (rv != VCCID_OK)
		return rv;
	/* One send per message: two (as vpcd does) stall on the peer's delayed ACK. */
	rv = card->io.send(card->io.io, card->tx, n, deadline);
	explicit_bzero(card->tx, n);
	if (rv == VCCID_ETIMEDOUT)
		return card_fail(card, rv, "stalled: it does not read");
	if (rv != VCCID_OK)
		return card_fail(card, VCCID_EIO, "write failed");
	return VCCID_OK;
}

static int send_control(vccid_vpcd_card *card, enum vccid_vpcd_ctrl ctrl, long long deadline)
{
	uint8_t byte = (uint8_t)ctrl;

	return send_message(card, &byte, 1, deadline);
}

/*
 * Reads one whole message before @p deadline into card->payload (*len). A
 * byte after it is unsolicited: nothing may follow an answer.
 */
static int read_message(vccid_vpcd_card *card, long long deadline, size_t *len)
{
	for (;;) {
		ssize_t n = card->io.recv(card->io.io, card->chunk, VCCID_VPCD_MAX_MESSAGE, deadline);
		size_t used = 0;
		int rv;

		if (n == 0)
			return card_fail(card, VCCID_EIO, "connection closed");
		if (n == VCCID_ETIMEDOUT)
			return card_fail(card, VCCID_ETIMEDOUT, "stalled: no answer in time");
		if (n < 0)
			return card_fail(card, VCCID_EIO, "read failed");
		rv = vccid_vpcd_framer_feed(&card->framer, card->chunk, (size_t)n, &used);
		if (rv < 0)
			return card_fail(card, rv, "a length over the limit");
		if (rv == 1 && used < (size_t)n)
			return card_fail(card, VCCID_EPROTO, "unsolicited bytes after an answer");
		if (rv == 1) {
			(void)vccid_vpcd_framer_payload(&card->framer, len);
			vccid_vpcd_framer_reset(&card->framer);
			return VCCID_OK;
		}
	}
}

/* Takes an ATR answer of @p len bytes in card->payload. */
static int take_atr(vccid_vpcd_card *card, size_t len)
{
	if (len == 0)
		return card_fail(card, VCCID_ENOCARD, "card gone (empty ATR)");
	if (len > VCCID_MAX_ATR || vccid_atr_check(card->payload, len, NULL) != VCCID_OK)
		return card_fail(card, VCCID_EPROTO, "invalid ATR");
	memcpy(card->atr, card->payload, len);
	card->atr_len = len;
	return VCCID_OK;
}

int vccid_vpcd_card_start(vccid_vpcd_card *card)
{
	int rv = VCCID_EIO;

	pthread_mutex_lock(&card->lock);
	if (!atomic_load(&card->failed)) {
		atomic_store(&card->atr_asked, vccid_now_ms());
		rv = send_control(card, VCCID_VPCD_CTRL_ATR, 0);
	}
	pthread_mutex_unlock(&card->lock);
	return rv;
}

int vccid_vpcd_card_restart(vccid_vpcd_card *card)
{
	int rv = VCCID_EIO;

	pthread_mutex_lock(&card->lock);
	if (atomic_load(&card->failed)) {
		rv = VCCID_EIO;
	} else if (atomic_load(&card->state) != CARD_OUT) {
		rv = VCCID_EBUSY;
	} else {
		/* As a reader powers a card it finds: on, then the ATR again (it may change). */
		atomic_store(&card->state, CARD_WAIT_ATR);
		atomic_store(&card->atr_asked, vccid_now_ms());
		rv = send_control(card, VCCID_VPCD_CTRL_ON, 0);
		if (rv == VCCID_OK)
			rv = send_control(card, VCCID_VPCD_CTRL_ATR, 0);
	}
	pthread_mutex_unlock(&card->lock);
	return rv;
}

int vccid_vpcd_card_insert(vccid_vpcd_card *card, vccid_slot *slot, const char *name)
{
	int rv = VCCID_EBUSY;

	pthread_mutex_lock(&card->lock);
	if (atomic_load(&card->failed)) {
		rv = VCCID_EIO;
	} else if (atomic_load(&card->state) == CARD_OUT) {
		/* The slot's reference, given back by release (lock order: slot before card). */
		atomic_fetch_add(&card->refs, 1);
		atomic_store(&card->keep, false);
		rv = vccid_slot_insert(slot, &vccid_vpcd_card_ops, card, name);
		if (rv == VCCID_OK)
			atomic_store(&card->state, CARD_IN);
		else
			atomic_fetch_sub(&card->refs, 1);
	}
	pthread_mutex_unlock(&card->lock);
	return rv;
}

void vccid_vpcd_card_keep(vccid_vpcd_card *card)
{
	/* No lock: the caller holds vpcd_lock, and an exchange may hold the card's. */
	atomic_store(&card->keep, true);
}

void vccid_vpcd_card_detach(vccid_vpcd_card *card)
{
	const char *none = "";

	/* The lock waits for an exchange in flight, which the shut socket ends at once. */
	pthread_mutex_lock(&card->lock);
	(void)atomic_compare_exchange_strong(&card->why, &none, "connection dropped");
	atomic_store(&card->failed, true);
	pthread_mutex_unlock(&card->lock);
}

static int card_input_locked(vccid_vpcd_card *card, const uint8_t *data, size_t len)
{
	size_t used = 0;
	size_t atr_len;
	int rv;

	if (atomic_load(&card->failed))
		return VCCID_EIO;
	if (len == 0)
		return 0;
	if (atomic_load(&card->state) != CARD_WAIT_ATR)
		return card_fail(card, VCCID_EPROTO, "unsolicited bytes");
	rv = vccid_vpcd_framer_feed(&card->framer, data, len, &used);
	if (rv < 0)
		return card_fail(card, rv, "a length over the limit");
	if (rv == 0)
		return 0;
	(void)vccid_vpcd_framer_payload(&card->framer, &atr_len);
	vccid_vpcd_framer_reset(&card->framer);
	rv = take_atr(card, atr_len);
	if (rv != VCCID_OK)
		return rv;
	if (used < len)
		return card_fail(card, VCCID_EPROTO, "unsolicited bytes after the ATR");
	atomic_store(&card->atr_asked, 0);
	atomic_store(&card->state, CARD_OUT);
	return 1;
}

int vccid_vpcd_card_input(vccid_vpcd_card *card, const uint8_t *data, size_t len)
{
	int rv;

	pthread_mutex_lock(&card->lock);
	rv = card_input_locked(card, data, len);
	pthread_mutex_unlock(&card->lock);
	return rv;
}

int vccid_vpcd_card_serve(vccid_vpcd_card *card)
{
	int rv = 0;
	int i;

	if (pthread_mutex_trylock(&card->lock) != 0)
		return VCCID_EBUSY;
	for (i = 0; i < SERVE_MAX_READS && rv == 0; i++) {
		ssize_t n;

		if (atomic_load(&card->failed)) {
			rv = VCCID_EIO;
			break;
		}
		n = card->io.recv(card->io.io, card->chunk, VCCID_VPCD_MAX_MESSAGE, 0);
		if (n == VCCID_ETIMEDOUT)
			break;   /* nothing more there */
		if (n == 0)
			rv = card_fail(card, VCCID_EIO, "connection closed");
		else if (n < 0)
			rv = card_fail(card, VCCID_EIO, "read failed");
		else
			rv = card_input_locked(card, card->chunk, (size_t)n);
	}
	pthread_mutex_unlock(&card->lock);
	return rv;
}

static int card_power(void *opaque, enum vccid_power_action action, uint8_t *atr,
		      size_t *atr_len)
{
	vccid_vpcd_card *card = opaque;
	long long deadline = vccid_now_ms() + card->timeout_ms;
	size_t len = 0;
	int rv;

	pthread_mutex_lock(&card->lock);
	if (atomic_load(&card->failed)) {
		rv = VCCID_ENOCARD;
		goto out;
	}
	switch (action) {
	case VCCID_POWER_DOWN:
		rv = send_control(card, VCCID_VPCD_CTRL_OFF, deadline);
		goto out;
	case VCCID_POWER_UP:
		rv = send_control(card, VCCID_VPCD_CTRL_ON, deadline);
		break;
	case VCCID_POWER_RESET:
	default:
		rv = send_control(card, VCCID_VPCD_CTRL_RESET, deadline);
		break;
	}
	/* The ATR may change with power on or reset: ask again. */
	if (rv == VCCID_OK)
		rv = send_control(card, VCCID_VPCD_CTRL_ATR, deadline);
	if (rv == VCCID_OK)
		rv = read_message(card, deadline, &len);
	if (rv == VCCID_OK)
		rv = take_atr(card, len);
	if (rv == VCCID_OK && atr != NULL && atr_len != NULL) {
		if (*atr_len < card->atr_len) {
			rv = VCCID_ENOSPC;
		} else {
			memcpy(atr, card->atr, card->atr_len);
			*atr_len = card->atr_len;
		}
	}
out:
	atomic_store(&card->last_exchange, vccid_now_ms());
	pthread_mutex_unlock(&card->lock);
	return rv;
}

static int card_transmit(void *opaque, const uint8_t *cmd, size_t cmd_len, uint8_t *rsp,
			 size_t *rsp_len)
{
	vccid_vpcd_card *card = opaque;
	long long deadline = vccid_now_ms() + card->timeout_ms;
	size_t len = 0;
	int rv;

	/* A 1-byte payload would be a control; the slot passes only APDUs of 4 bytes or more. */
	if (cmd_len < 2 || cmd_len > VCCID_VPCD_MAX_PAYLOAD)
		return VCCID_EINVAL;
	pthread_mutex_lock(&card->lock);
	if (atomic_load(&card->failed)) {
		rv = VCCID_ENOCARD;
		goto out;
	}
	rv = send_message(card, cmd, cmd_len, deadline);
	if (rv == VCCID_OK)
		rv = read_message(card, deadline, &len);
	if (rv != VCCID_OK)
		goto out;
	if (len == 0) {
		rv = card_fail(card, VCCID_ENOCARD, "card gone (empty answer)");
	} else if (len < 2) {
		rv = card_fail(card, VCCID_EPROTO, "an answer without SW1 SW2");
	} else if (len > *rsp_len) {
		rv = VCCID_ENOSPC;
	} else {
		memcpy(rsp, card->payload, len);
		*rsp_len = len;
	}
	explicit_bzero(card->payload, len);
out:
	atomic_store(&card->last_exchange, vccid_now_ms());
	pthread_mutex_unlock(&card->lock);
	return rv;
}

/*
 * The slot let the card go: a removal by the transport or at shutdown ends
 * the card; vccid-ctl remove (kept) powers it off and leaves the connection
 * up, the card out of its slot. The slot calls this after its last exchange.
 */
static void card_release(void *opaque)
{
	vccid_vpcd_card *card = opaque;

	pthread_mutex_lock(&card->lock);
	if (atomic_exchange(&card->keep, false) && !atomic_load(&card->failed)) {
		atomic_store(&card->state, CARD_OUT);
		/* No wait: three bytes fit any socket buffer but a stalled peer's. */
		(void)send_control(card, VCCID_VPCD_CTRL_OFF, 0);
	} else {
		(void)card_fail(card, VCCID_ENOCARD, "removed from its slot");
	}
	pthread_mutex_unlock(&card->lock);
	vccid_vpcd_card_free(card);   /* the slot's reference */
}

const struct vccid_card_ops vccid_vpcd_card_ops = {
	.backend = "vpcd",
	.power = card_power,
	.transmit = card_transmit,
	.release = card_release,
};

bool vccid_vpcd_card_ready(vccid_vpcd_card *card)
{
	return atomic_load(&card->state) != CARD_WAIT_ATR;
}

bool vccid_vpcd_card_in_slot(vccid_vpcd_card *card)
{
	return atomic_load(&card->state) == CARD_IN;
}

long long vccid_vpcd_card_atr_asked(vccid_vpcd_card *card)
{
	return atomic_load(&card->atr_asked);
}

bool vccid_vpcd_card_partial(vccid_vpcd_card *card)
{
	bool partial;

	if (pthread_mutex_trylock(&card->lock) != 0)
		return false;   /* an exchange runs: it has its own deadline */
	partial = vccid_vpcd_framer_partial(&card->framer);
	pthread_mutex_unlock(&card->lock);
	return partial;
}

bool vccid_vpcd_card_failed(vccid_vpcd_card *card)
{
	return atomic_load(&card->failed);
}

long long vccid_vpcd_card_last_exchange(vccid_vpcd_card *card)
{
	return atomic_load(&card->last_exchange);
}

const char *vccid_vpcd_card_why(vccid_vpcd_card *card)
{
	return atomic_load(&card->why);
}

size_t vccid_vpcd_card_atr(vccid_vpcd_card *card, uint8_t *atr)
{
	size_t len;

	pthread_mutex_lock(&card->lock);
	len = card->atr_len;
	memcpy(atr, card->atr, len);
	pthread_mutex_unlock(&card->lock);
	return len;
}

const char *vccid_vpcd_card_peer(const vccid_vpcd_card *card)
{
	return card->peer;
}
