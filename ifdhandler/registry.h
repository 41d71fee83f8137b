/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The readers pcscd created through the driver, keyed by the reader half of the Lun. */
#ifndef VCCID_REGISTRY_H
#define VCCID_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corelib/slot.h"

#define VCCID_MAX_READERS 16      /* PCSCLITE_MAX_READERS_CONTEXTS */

typedef struct vccid_reader vccid_reader;

/** Reader index of a Lun: pcscd puts it in the high 16 bits. */
#define VCCID_LUN_READER(lun) (((lun) >> 16) & 0xFFFFu)
#define VCCID_LUN_SLOT(lun) ((lun) & 0xFFFFu)

/**
 * Opens the channel of @p lun. For slot 0 this creates the reader from
 * @p device, which is "CONFIG[:READER]" as in reader.conf's DEVICENAME (NULL:
 * the default configuration file); a bad configuration gives a reader with
 * empty slots. pcscd then opens each further slot of the reader, which only
 * marks it open. Returns VCCID_EBUSY if already open, VCCID_ENOMEM.
 */
int vccid_reader_open(unsigned long lun, const char *device, unsigned channel);
/** Closes the channel of @p lun; closing the last one removes the reader's
 *  cards and frees it. VCCID_ENOENT if it was not open. */
int vccid_reader_close(unsigned long lun);

/** The slot addressed by @p lun, or NULL. Valid until the reader is closed. */
vccid_slot *vccid_reader_slot(unsigned long lun);
unsigned vccid_reader_slot_count(unsigned long lun);
unsigned vccid_reader_channel(unsigned long lun);
/** The largest APDU data field and command the reader's slots carry (vpcd frames are smaller). */
size_t vccid_reader_max_apdu_data(unsigned long lun);
size_t vccid_reader_max_command(unsigned long lun);
/** The reader's configured name (the [reader:NAME] group), or NULL. */
const char *vccid_reader_name(unsigned long lun);

/**
 * Presence as pcscd must see it: a removal since the last call is reported
 * once as absent even when a card is back (the latch pcscd needs to notice a
 * quick remove and insert). Never blocks on I/O.
 */
bool vccid_reader_poll_presence(unsigned long lun);
/** Waits for a change since the last vccid_reader_poll_presence(); see vccid_slot_wait_change. */
int vccid_reader_wait_change(unsigned long lun, int timeout_ms);

/** Writes the slot's status line (see control.h) into @p buf of @p size; returns its length. */
int vccid_reader_describe(unsigned long lun, char *buf, size_t size);
/** Copies the remote VSCard reader name and peer of the slot; false if it has none. */
bool vccid_reader_remote(unsigned long lun, char *name, size_t name_size, char *peer,
			 size_t peer_size);
/** Inserts @p card_name (NULL or "" means the slot's configured card) into the slot of @p lun. */
int vccid_reader_insert(unsigned long lun, const char *card_name);
int vccid_reader_remove(unsigned long lun);

#endif
