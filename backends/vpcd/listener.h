/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The vpcd listener inside the driver: vsmartcard card emulators connect to a port per slot. */
#ifndef VCCID_VPCD_LISTENER_H
#define VCCID_VPCD_LISTENER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corelib/slot.h"

struct vccid_vpcd_slot_opts {
	const char *host;            /* listen address without port: "127.0.0.1", "[::]" */
	uint16_t port;
	unsigned timeout_ms;         /* first ATR and every exchange */
	unsigned max_connections;    /* of the whole process: the first offer's value counts */
	const char *reader;          /* for logs */
	unsigned index;
};

/**
 * Listens on @p opts' host and port for the card of @p slot (one connection
 * at a time; the card goes into the slot once its ATR came). The first offer
 * starts the process's one vpcd thread. Returns 0 or a negative vccid_error
 * (logged: the port stays closed).
 */
int vccid_vpcd_offer_slot(vccid_slot *slot, const struct vccid_vpcd_slot_opts *opts);
/** Closes the slot's port and removes its card; the last one stops the thread. */
void vccid_vpcd_withdraw_slot(vccid_slot *slot);
/** True when @p slot is offered to vpcd cards (then only they may fill it). */
bool vccid_vpcd_slot_bound(vccid_slot *slot);
/** Copies the peer of the slot's connection; false if it has none. */
bool vccid_vpcd_slot_peer(vccid_slot *slot, char *peer, size_t size);

#endif
