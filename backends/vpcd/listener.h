/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vpcd transport inside the driver: card emulators connect to a port per slot, or vccid connects to a card that listens. */
#ifndef VCCID_VPCD_LISTENER_H
#define VCCID_VPCD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corelib/slot.h"

struct vccid_vpcd_slot_opts {
	const char *host;            /* listen address without port: "127.0.0.1", "[::]" */
	uint16_t port;
	const char *connect;         /* "HOST:PORT" of a card that listens, or NULL to listen */
	unsigned backoff_first_ms;   /* connecting out: the first wait (0: 100 ms) */
	unsigned backoff_max_ms;     /* and its cap (0: 5000 ms) */
	unsigned timeout_ms;         /* first ATR and every exchange */
	unsigned max_connections;    /* of the whole process: the first offer's value counts */
	const char *reader;          /* for logs */
	unsigned index;
};

/**
 * Listens on @p opts' host and port for the card of @p slot (one connection
 * at a time; the card goes into the slot once its ATR came), or, with
 * opts->connect, connects to that card from the vpcd thread, again after
 * each failure or disconnect with a backoff (0.1 s doubling to 5 s, or as
 * opts says; a card that stayed for the cap starts it over). The
 * first offer starts the process's one vpcd thread. Returns 0 or a negative
 * vccid_error (logged: the slot takes no vpcd card).
 */
int vccid_vpcd_offer_slot(vccid_slot *slot, const struct vccid_vpcd_slot_opts *opts);
/** Closes the slot's port and removes its card; the last one stops the thread. */
void vccid_vpcd_withdraw_slot(vccid_slot *slot);
/** True when @p slot is offered to vpcd cards (then only they may fill it). */
bool vccid_vpcd_slot_bound(vccid_slot *slot);
/**
 * Copies the slot's peer: its connection's ("127.0.0.1:35963"), else for a
 * slot that connects out the card's address, else "-". *outbound says whether
 * the slot connects out. Returns true while a card is connected.
 */
bool vccid_vpcd_slot_peer(vccid_slot *slot, char *peer, size_t size, bool *outbound);
/**
 * vccid-ctl remove: the card leaves the slot (power off is sent) and its
 * connection stays; no card goes into the slot until vccid_vpcd_slot_reinsert().
 * Waits for an exchange in flight. Returns 0, VCCID_ENOCARD (no card was in:
 * the slot is held empty all the same), VCCID_ENOENT (not a vpcd slot).
 */
int vccid_vpcd_slot_eject(vccid_slot *slot);
/**
 * vccid-ctl insert: ends the hold. A connected card is powered on and asked
 * for its ATR again without waiting, and goes back in when that comes (as at
 * connect). Returns 0, VCCID_ENOCARD (no card connected: the next one goes
 * in), VCCID_EBUSY (the card is in), VCCID_ENOENT (not a vpcd slot).
 */
int vccid_vpcd_slot_reinsert(vccid_slot *slot);

#endif
