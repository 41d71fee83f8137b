/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reader registry: the slot set of each reader pcscd opened, keyed by the reader half of the Lun. */
#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/slotset.h"
#include "corelib/config.h"
#include "corelib/error.h"
#include "corelib/log.h"

#ifndef VCCID_DEFAULT_CONFIG
#define VCCID_DEFAULT_CONFIG "/etc/vccid/vccid.conf"
#endif

struct vccid_reader {
	unsigned index;
	unsigned channel;
	vccid_slotset *set;
	uint32_t open_slots;      /* pcscd opens and closes each slot's channel */
	_Atomic uint64_t seen_changes[VCCID_MAX_SLOTS];  /* as of the last presence poll */
	_Atomic uint64_t seen_removals[VCCID_MAX_SLOTS];
};

static pthread_mutex_t readers_lock = PTHREAD_MUTEX_INITIALIZER;
static vccid_reader *readers[VCCID_MAX_READERS];

static vccid_reader *reader_get(unsigned index)
{
	vccid_reader *reader = NULL;

	if (index >= VCCID_MAX_READERS)
		return NULL;
	pthread_mutex_lock(&readers_lock);
	reader = readers[index];
	pthread_mutex_unlock(&readers_lock);
	return reader;
}

/* Resolves a Lun to its reader and slot index; false when either is unknown. */
static bool lun_resolve(unsigned long lun, vccid_reader **reader, unsigned *slot)
{
	*reader = reader_get(VCCID_LUN_READER(lun));
	*slot = VCCID_LUN_SLOT(lun);
	return *reader != NULL && *slot < vccid_slotset_count((*reader)->set);
}

static void reader_free(vccid_reader *reader)
{
	vccid_slotset_close(reader->set);
	free(reader);
}

/* pcscd opens a channel for every slot of a reader after the first. */
static int open_other_slot(unsigned reader_index, unsigned slot)
{
	int rv = VCCID_ENOENT;

	pthread_mutex_lock(&readers_lock);
	if (readers[reader_index] != NULL) {
		rv = VCCID_EBUSY;
		if (slot < vccid_slotset_count(readers[reader_index]->set) &&
		    !(readers[reader_index]->open_slots & (1u << slot))) {
			readers[reader_index]->open_slots |= 1u << slot;
			rv = VCCID_OK;
		}
	}
	pthread_mutex_unlock(&readers_lock);
	return rv;
}

static vccid_slotset *open_set(const char *device)
{
	char *path = NULL;
	char *name = NULL;
	vccid_slotset *set = NULL;
	struct vccid_vpcd_device vpcd;

	if (device == NULL || device[0] == '\0')
		device = getenv("VCCID_CONFIG");   /* pcscd's environment may name another file */
	if (device == NULL || device[0] == '\0')
		device = VCCID_DEFAULT_CONFIG;
	switch (vccid_slotset_vpcd_device(device, &vpcd)) {
	case VCCID_OK:   /* a vsmartcard reader.conf entry, unchanged but for LIBPATH */
		return vccid_slotset_open_vpcd(&vpcd);
	case VCCID_ENOENT:
		break;
	default:
		VCCID_LOG(VCCID_LOG_ERROR, "DEVICENAME %s: vsmartcard's /dev/null:PORT or "
			  "HOST:PORT, with a port of 1024 to 65534, decimal or 0x hex; the reader "
			  "has empty slots", device);
		return vccid_slotset_open_vpcd(NULL);
	}
	if (vccid_slotset_split_device(device, &path, &name) != VCCID_OK)
		return NULL;
	set = vccid_slotset_open(path, name, VCCID_MAX_SLOTS);
	free(path);
	free(name);
	return set;
}

int vccid_reader_open(unsigned long lun, const char *device, unsigned channel)
{
	unsigned reader_index = VCCID_LUN_READER(lun);
	vccid_reader *reader;

	if (reader_index >= VCCID_MAX_READERS || VCCID_LUN_SLOT(lun) >= VCCID_MAX_SLOTS)
		return VCCID_EINVAL;
	if (VCCID_LUN_SLOT(lun) != 0)
		return open_other_slot(reader_index, VCCID_LUN_SLOT(lun));
	if (reader_get(reader_index) != NULL)
		return VCCID_EBUSY;
	reader = calloc(1, sizeof(*reader));
	if (reader == NULL)
		return VCCID_ENOMEM;
	reader->index = reader_index;
	reader->channel = channel;
	reader->set = open_set(device);
	if (reader->set == NULL) {
		free(reader);
		return VCCID_ENOMEM;
	}
	reader->open_slots = 1u;
	pthread_mutex_lock(&readers_lock);
	if (readers[reader_index] == NULL) {
		readers[reader_index] = reader;
		reader = NULL;
	}
	pthread_mutex_unlock(&readers_lock);
	if (reader != NULL) {   /* lost a race for the index */
		reader_free(reader);
		return VCCID_EBUSY;
	}
	return VCCID_OK;
}

int vccid_reader_close(unsigned long lun)
{
	unsigned reader_index = VCCID_LUN_READER(lun);
	unsigned slot = VCCID_LUN_SLOT(lun);
	vccid_reader *reader = NULL;
	int rv = VCCID_ENOENT;

	if (reader_index >= VCCID_MAX_READERS || slot >= VCCID_MAX_SLOTS)
		return VCCID_ENOENT;
	pthread_mutex_lock(&readers_lock);
	reader = readers[reader_index];
	if (reader != NULL && (reader->open_slots & (1u << slot))) {
		rv = VCCID_OK;
		reader->open_slots &= ~(1u << slot);
		if (reader->open_slots == 0)
			readers[reader_index] = NULL;   /* the last channel frees the reader */
		else
			reader = NULL;
	} else {
		reader = NULL;
	}
	pthread_mutex_unlock(&readers_lock);
	if (reader != NULL)
		reader_free(reader);
	return rv;
}

vccid_slot *vccid_reader_slot(unsigned long lun)
{
	vccid_reader *reader;
	unsigned slot;

	return lun_resolve(lun, &reader, &slot) ? vccid_slotset_slot(reader->set, slot) : NULL;
}

unsigned vccid_reader_slot_count(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? vccid_slotset_count(reader->set) : 0;
}

unsigned vccid_reader_channel(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? reader->channel : 0;
}

size_t vccid_reader_max_apdu_data(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? vccid_slotset_max_apdu_data(reader->set) : 0;
}

size_t vccid_reader_max_command(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? vccid_slotset_max_command(reader->set) : 0;
}

const char *vccid_reader_name(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? vccid_slotset_name(reader->set) : NULL;
}

bool vccid_reader_poll_presence(unsigned long lun)
{
	struct vccid_slot_status status;
	vccid_reader *reader;
	unsigned slot;
	bool removed;

	if (!lun_resolve(lun, &reader, &slot))
		return false;
	vccid_slot_get_status(vccid_slotset_slot(reader->set, slot), &status);
	atomic_store(&reader->seen_changes[slot], status.changes);
	removed = atomic_exchange(&reader->seen_removals[slot], status.removals) != status.removals;
	return status.present && !removed;
}

int vccid_reader_wait_change(unsigned long lun, int timeout_ms)
{
	vccid_reader *reader;
	unsigned slot;

	if (!lun_resolve(lun, &reader, &slot))
		return VCCID_ENOENT;
	return vccid_slot_wait_change(vccid_slotset_slot(reader->set, slot),
				      atomic_load(&reader->seen_changes[slot]), timeout_ms);
}

int vccid_reader_describe(unsigned long lun, char *buf, size_t size)
{
	vccid_reader *reader;
	unsigned slot;

	if (!lun_resolve(lun, &reader, &slot))
		return VCCID_ENOENT;
	return vccid_slotset_describe(reader->set, slot, buf, size);
}

bool vccid_reader_remote(unsigned long lun, char *name, size_t name_size, char *peer,
			 size_t peer_size)
{
	vccid_reader *reader;
	unsigned slot;

	if (!lun_resolve(lun, &reader, &slot))
		return false;
	return vccid_slotset_remote(reader->set, slot, name, name_size, peer, peer_size);
}

int vccid_reader_insert(unsigned long lun, const char *card_name)
{
	vccid_reader *reader;
	unsigned slot;

	if (!lun_resolve(lun, &reader, &slot))
		return VCCID_ENOENT;
	return vccid_slotset_insert(reader->set, slot, card_name);
}

int vccid_reader_remove(unsigned long lun)
{
	vccid_reader *reader;
	unsigned slot;

	if (!lun_resolve(lun, &reader, &slot))
		return VCCID_ENOENT;
	return vccid_slotset_remove(reader->set, slot);
}
