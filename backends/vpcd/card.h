/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One vpcd card without sockets: connected, ATR fetched, in a slot; power, reset and transmit through a transport. */
#ifndef VCCID_VPCD_CARD_H
#define VCCID_VPCD_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "corelib/slot.h"

/* A frame carries 0xFFFF bytes: an extended C-APDU (4 header, 3 Lc, 2 Le) and the
 * R-APDU's SW1 SW2 fit when the data field is at most this (dwMaxAPDUDataSize). */
#define VCCID_VPCD_MAX_APDU_DATA (0xFFFFu - 9u)

/**
 * How a card reaches its peer. Every byte goes through these calls: the
 * socket listener (listener.c) implements them, a fake in-memory transport
 * the tests and the fuzzer.
 */
struct vccid_vpcd_io {
	/** Writes all @p len bytes (one whole message) before @p deadline_ms
	 *  (vccid_now_ms() time). Returns 0, VCCID_ETIMEDOUT or VCCID_EIO. */
	int (*send)(void *io, const uint8_t *buf, size_t len, long long deadline_ms);
	/** Reads what is there into @p buf, waiting until @p deadline_ms; a
	 *  deadline <= 0 does not wait. Returns the count (> 0), 0 at end of
	 *  stream, VCCID_ETIMEDOUT when nothing came, or VCCID_EIO. */
	ssize_t (*recv)(void *io, uint8_t *buf, size_t len, long long deadline_ms);
	/** The card became unusable (stall, garbage, gone, released): the
	 *  transport should drop the connection. Must not block. May be NULL. */
	void (*failed)(void *io);
	void *io;
};

typedef struct vccid_vpcd_card vccid_vpcd_card;

/** The slot operations of a vpcd card (the slot calls them one at a time). A card goes
 *  into a slot only through vccid_vpcd_card_insert(), which gives the slot its reference. */
extern const struct vccid_card_ops vccid_vpcd_card_ops;

/*
 * A card's life on one connection: it asks for the ATR (start); once that
 * came and is valid the card is ready but out of a slot, and the transport
 * puts it in (insert). vccid-ctl remove takes it out with the connection kept
 * (keep, then the slot's remove: power off is sent), vccid-ctl insert asks
 * again (restart: power on, GET ATR) and the card goes back in when the ATR
 * comes. Any failure ends the card (the transport drops the connection).
 */

/** A card in state "connected"; @p peer is copied for logs. NULL without memory. */
vccid_vpcd_card *vccid_vpcd_card_new(const struct vccid_vpcd_io *io, const char *peer,
				     unsigned timeout_ms);
/**
 * Drops the creator's reference; the card is wiped and freed once its slot
 * (if it is in one) let it go too. Call vccid_vpcd_card_detach() first when
 * the transport goes away. NULL is fine.
 */
void vccid_vpcd_card_free(vccid_vpcd_card *card);
/**
 * The transport is going: waits for an exchange in flight (shut the
 * connection down first, so it ends at once), then the card fails and never
 * touches the transport again, in or out of its slot.
 */
void vccid_vpcd_card_detach(vccid_vpcd_card *card);

/** Sends the first GET ATR without waiting (it fits any empty socket buffer). */
int vccid_vpcd_card_start(vccid_vpcd_card *card);
/**
 * Puts a ready card that is out of a slot into @p slot (which holds a
 * reference until it releases the card). Returns 0, VCCID_EBUSY (the card is
 * not ready, already in, or the slot is taken), VCCID_EIO (failed).
 */
int vccid_vpcd_card_insert(vccid_vpcd_card *card, vccid_slot *slot, const char *name);
/** The next release by the slot (vccid-ctl remove) keeps the connection: power off is
 *  sent without waiting and the card waits out of its slot. */
void vccid_vpcd_card_keep(vccid_vpcd_card *card);
/**
 * A card out of its slot is powered on and asked for its ATR again, without
 * waiting (as at the start): it is ready again once that came. Returns 0,
 * VCCID_EBUSY (not out of a slot), VCCID_EIO (failed: the transport drops it).
 */
int vccid_vpcd_card_restart(vccid_vpcd_card *card);
/**
 * Bytes the peer sent while no exchange runs (tests, fuzzers; the transport
 * calls vccid_vpcd_card_serve()). Returns 1 when the ATR asked for came and
 * is valid (the card can go into its slot), 0, or why the card must go:
 * VCCID_ENOCARD (empty ATR), VCCID_EPROTO (bad ATR, unsolicited bytes, a
 * length over the limit).
 */
int vccid_vpcd_card_input(vccid_vpcd_card *card, const uint8_t *data, size_t len);
/**
 * For the transport's thread when the connection is readable: unless an
 * exchange runs (then VCCID_EBUSY at once: the exchange reads its own
 * answer), reads what is there without waiting and feeds it as above.
 * End of stream and read errors give VCCID_EIO.
 */
int vccid_vpcd_card_serve(vccid_vpcd_card *card);
/** True when the card has an ATR and no GET ATR is out (in its slot or not). */
bool vccid_vpcd_card_ready(vccid_vpcd_card *card);
/** True while the card is in its slot. */
bool vccid_vpcd_card_in_slot(vccid_vpcd_card *card);
/** When the outstanding GET ATR went out (vccid_now_ms()), 0 when none is out. */
long long vccid_vpcd_card_atr_asked(vccid_vpcd_card *card);
/** True while a message from the peer is partly received (a stall shows here). */
bool vccid_vpcd_card_partial(vccid_vpcd_card *card);
/** True after a failure (or release): the transport drops the connection. */
bool vccid_vpcd_card_failed(vccid_vpcd_card *card);
/** When the last exchange ended (vccid_now_ms()), 0 if none yet. */
long long vccid_vpcd_card_last_exchange(vccid_vpcd_card *card);
/** The reason of the failure, for the transport's log; "" when none. */
const char *vccid_vpcd_card_why(vccid_vpcd_card *card);
/** The current ATR (copied to @p atr of capacity VCCID_MAX_ATR); its length. */
size_t vccid_vpcd_card_atr(vccid_vpcd_card *card, uint8_t *atr);
const char *vccid_vpcd_card_peer(const vccid_vpcd_card *card);

#endif
