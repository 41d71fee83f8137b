/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* In-process virtual CAC cards emulated by libcacard from NSS certificates. */
#ifndef VCCID_CACARD_H
#define VCCID_CACARD_H

#include "corelib/config.h"
#include "corelib/slot.h"

/**
 * Makes the cards of @p config available. libcacard can be initialised only
 * once per process, so the first call initialises it with every card of
 * @p config (all readers); a later call with other cards logs that they are
 * unavailable. Starts the event thread if it is not running. Each call must
 * be paired with vccid_cacard_release(). Returns 0 or a negative vccid_error
 * (problems are logged either way).
 */
int vccid_cacard_acquire(const struct vccid_config *config);
/** Drops one acquire; the last one stops the event thread (libcacard stays initialised). */
void vccid_cacard_release(void);

/** True when a card called @p name was set up. */
bool vccid_cacard_known(const char *name);
/**
 * Puts the card @p name into @p slot. VCCID_ENOENT if no such card was set
 * up, VCCID_EBUSY if it is already in a slot or the slot is occupied.
 */
int vccid_cacard_insert(const char *name, vccid_slot *slot);

#endif
