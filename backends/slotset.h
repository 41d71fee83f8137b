/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A reader built from vccid.conf: its slots, the cards configured into them and the VSCard listener. */
#ifndef VCCID_SLOTSET_H
#define VCCID_SLOTSET_H

#include <stdbool.h>
#include <stddef.h>

#include "corelib/config.h"
#include "corelib/slot.h"

typedef struct vccid_slotset vccid_slotset;

/**
 * Builds the reader @p reader_name of configuration file @p path: its slots,
 * its libcacard cards (inserted when configured so) and, with a [vscard]
 * group, the listener with the slots that have no configured card. Every
 * problem is logged and the reader still comes up (with empty slots).
 * @p max_slots caps the slot count (a USB reader has at most 8).
 * Returns NULL only when memory runs out.
 */
vccid_slotset *vccid_slotset_open(const char *path, const char *reader_name, unsigned max_slots);
/* The reader a vsmartcard reader.conf entry describes: two slots, as vpcd builds in. */
#define VCCID_VPCD_DROPIN_SLOTS 2
/* A vsmartcard reader.conf DEVICENAME. */
struct vccid_vpcd_device {
	bool connect;                /* HOST:PORT (the cards listen), else /dev/null:PORT */
	char host[256];              /* connect only */
	unsigned port;               /* of slot 0; slot 1 on port + 1 */
};
/**
 * Reads vsmartcard's DEVICENAME "/dev/null:PORT" (vccid listens) or
 * "HOST:PORT" (vccid connects to cards that listen; HOST an address or name
 * as corelib/addr.c writes them, without '/'), PORT hex with 0x or decimal,
 * 1024-65534. Returns 0 and fills @p out, VCCID_ENOENT when @p device is not
 * of that form (a vccid.conf path), VCCID_EINVAL when its port or host is bad.
 */
int vccid_slotset_vpcd_device(const char *device, struct vccid_vpcd_device *out);
/** A reader of VCCID_VPCD_DROPIN_SLOTS vpcd slots for @p device, no file: listening on
 *  127.0.0.1 ports PORT and PORT+1, or connecting to HOST ports PORT and PORT+1 (NULL: the
 *  slots stay empty). */
vccid_slotset *vccid_slotset_open_vpcd(const struct vccid_vpcd_device *device);
/** The largest APDU data field every slot carries (dwMaxAPDUDataSize). */
size_t vccid_slotset_max_apdu_data(const vccid_slotset *set);
/** The largest command every slot carries (SCARD_ATTR_MAXINPUT). */
size_t vccid_slotset_max_command(const vccid_slotset *set);
/** Withdraws remote readers, removes the cards and frees everything. NULL is fine. */
void vccid_slotset_close(vccid_slotset *set);

const struct vccid_config *vccid_slotset_config(const vccid_slotset *set);
const char *vccid_slotset_name(const vccid_slotset *set);
unsigned vccid_slotset_count(const vccid_slotset *set);
/** Slot @p index, or NULL. */
vccid_slot *vccid_slotset_slot(const vccid_slotset *set, unsigned index);
/** The slots as an array of vccid_slotset_count() entries. */
vccid_slot *const *vccid_slotset_slots(const vccid_slotset *set);

/** Inserts @p card_name (NULL or "": the slot's configured card) into slot @p index. */
int vccid_slotset_insert(vccid_slotset *set, unsigned index, const char *card_name);
int vccid_slotset_remove(vccid_slotset *set, unsigned index);
/** Copies the slot's remote VSCard reader name and peer; false if it has none. */
bool vccid_slotset_remote(const vccid_slotset *set, unsigned index, char *name,
			  size_t name_size, char *peer, size_t peer_size);
/** Writes the slot's status line (see ifdhandler/control.h); returns its length or an error. */
int vccid_slotset_describe(const vccid_slotset *set, unsigned index, char *buf, size_t size);

/** Splits "CONFIG[:READER]" (a suffix with '/' belongs to the path); caller frees both. */
int vccid_slotset_split_device(const char *device, char **path, char **reader_name);

#endif
