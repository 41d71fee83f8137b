/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reader registry: configuration, slots and their cards for each reader pcscd opened. */
#include "registry.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cacard/cacard.h"
#include "backends/vscard/host.h"
#include "backends/vscard/vscard.h"
#include "ccid-core/config.h"
#include "ccid-core/error.h"
#include "ccid-core/log.h"

#ifndef VCCID_DEFAULT_CONFIG
#define VCCID_DEFAULT_CONFIG "/etc/vccid/vccid.conf"
#endif

struct vccid_reader {
	unsigned index;
	unsigned channel;
	char *name;
	struct vccid_config *config;
	bool cacard_acquired;
	bool vscard_acquired;
	uint32_t offered_slots;   /* slots given to the VSCard listener */
	unsigned n_slots;
	uint32_t open_slots;      /* pcscd opens and closes each slot's channel */
	vccid_slot *slots[VCCID_MAX_SLOTS];
	char *home[VCCID_MAX_SLOTS];                     /* configured card per slot */
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
	return *reader != NULL && *slot < (*reader)->n_slots;
}

/* Splits DEVICENAME "CONFIG[:READER]"; a suffix with a '/' belongs to the path. */
static void split_device(const char *device, char **path, char **reader_name)
{
	const char *colon;

	if (device == NULL || device[0] == '\0')
		device = getenv("VCCID_CONFIG");   /* pcscd's environment may name another file */
	if (device == NULL || device[0] == '\0')
		device = VCCID_DEFAULT_CONFIG;
	colon = strrchr(device, ':');
	if (colon != NULL && colon[1] != '\0' && strchr(colon, '/') == NULL) {
		*path = strndup(device, (size_t)(colon - device));
		*reader_name = strdup(colon + 1);
	} else {
		*path = strdup(device);
		*reader_name = strdup(VCCID_DEFAULT_READER);
	}
}

static void apply_log_level(const struct vccid_config *config)
{
	const char *env = getenv("VCCID_LOG_LEVEL");
	int level = env ? vccid_log_level_parse(env) : -1;

	if (level >= 0)
		vccid_log_set_level((enum vccid_log_level)level);
	else if (config->log_level_set)
		vccid_log_set_level(config->log_level);
}

static void reader_free(vccid_reader *reader)
{
	unsigned i;

	/* Remote readers first: they must not outlive the slots they sit in. */
	for (i = 0; i < reader->n_slots; i++)
		if (reader->offered_slots & (1u << i))
			vscard_host_withdraw_slot(reader->slots[i]);
	if (reader->vscard_acquired)
		vccid_vscard_release();
	for (i = 0; i < reader->n_slots; i++) {
		vccid_slot_free(reader->slots[i]);
		free(reader->home[i]);
	}
	if (reader->cacard_acquired)
		vccid_cacard_release();
	vccid_config_free(reader->config);
	free(reader->name);
	free(reader);
}

/* Creates the slots and puts in the configured cards. */
static int reader_fill(vccid_reader *reader)
{
	const struct vccid_config *config = reader->config;
	const struct vccid_reader_config *rconf = vccid_config_find_reader(config, reader->name);
	size_t i;

	if (rconf == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "%s: no [reader:%s] group; the reader has %d empty slots",
			  config->path, reader->name, VCCID_DEFAULT_SLOTS);
		reader->n_slots = VCCID_DEFAULT_SLOTS;
	} else {
		reader->n_slots = rconf->slots;
	}
	for (i = 0; i < reader->n_slots; i++) {
		reader->slots[i] = vccid_slot_new();
		if (reader->slots[i] == NULL)
			return VCCID_ENOMEM;
	}
	if (config->n_cards > 0) {
		(void)vccid_cacard_acquire(config);   /* logs its own problems */
		reader->cacard_acquired = true;
	}
	for (i = 0; i < config->n_cards; i++) {
		const struct vccid_card_config *card = &config->cards[i];
		int rv;

		if (strcmp(card->reader, reader->name) != 0)
			continue;
		reader->home[card->slot] = strdup(card->name);
		if (!card->inserted)
			continue;
		rv = vccid_cacard_insert(card->name, reader->slots[card->slot]);
		if (rv != VCCID_OK)
			VCCID_LOG(VCCID_LOG_ERROR, "%s: [card:%s]: not inserted: %s", config->path,
				  card->name, rv == VCCID_ENOENT ? "the card could not be made"
								 : vccid_strerror(rv));
	}
	if (vccid_config_vscard_reader(config, reader->name) &&
	    vccid_vscard_acquire(config) == VCCID_OK) {
		reader->vscard_acquired = true;
		/* Slots without a configured card take remote readers. */
		for (i = 0; i < reader->n_slots; i++) {
			if (reader->home[i] != NULL)
				continue;
			vscard_host_offer_slot(reader->slots[i], reader->name, (unsigned)i);
			reader->offered_slots |= 1u << i;
		}
	}
	return VCCID_OK;
}

/* pcscd opens a channel for every slot of a reader after the first. */
static int open_other_slot(unsigned reader_index, unsigned slot)
{
	int rv = VCCID_ENOENT;

	pthread_mutex_lock(&readers_lock);
	if (readers[reader_index] != NULL) {
		rv = VCCID_EBUSY;
		if (slot < readers[reader_index]->n_slots &&
		    !(readers[reader_index]->open_slots & (1u << slot))) {
			readers[reader_index]->open_slots |= 1u << slot;
			rv = VCCID_OK;
		}
	}
	pthread_mutex_unlock(&readers_lock);
	return rv;
}

int vccid_reader_open(unsigned long lun, const char *device, unsigned channel)
{
	unsigned reader_index = VCCID_LUN_READER(lun);
	vccid_reader *reader;
	char *path = NULL;
	int rv;

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
	split_device(device, &path, &reader->name);
	if (path == NULL || reader->name == NULL) {
		free(path);
		reader_free(reader);
		return VCCID_ENOMEM;
	}
	reader->config = vccid_config_load(path);
	free(path);
	if (reader->config == NULL) {
		reader_free(reader);
		return VCCID_ENOMEM;
	}
	apply_log_level(reader->config);
	rv = reader_fill(reader);
	if (rv != VCCID_OK) {
		reader_free(reader);
		return rv;
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
	VCCID_LOG(VCCID_LOG_INFO, "reader %s (index %u) from %s: %u slots, %zu problems in the file",
		  readers[reader_index]->name, reader_index, readers[reader_index]->config->path,
		  readers[reader_index]->n_slots, readers[reader_index]->config->n_errors);
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

	return lun_resolve(lun, &reader, &slot) ? reader->slots[slot] : NULL;
}

unsigned vccid_reader_slot_count(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? reader->n_slots : 0;
}

unsigned vccid_reader_channel(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? reader->channel : 0;
}

const char *vccid_reader_name(unsigned long lun)
{
	vccid_reader *reader = reader_get(VCCID_LUN_READER(lun));

	return reader ? reader->name : NULL;
}

bool vccid_reader_poll_presence(unsigned long lun)
{
	struct vccid_slot_status status;
	vccid_reader *reader;
	unsigned slot;
	bool removed;

	if (!lun_resolve(lun, &reader, &slot))
		return false;
	vccid_slot_get_status(reader->slots[slot], &status);
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
	return vccid_slot_wait_change(reader->slots[slot],
				      atomic_load(&reader->seen_changes[slot]), timeout_ms);
}

int vccid_reader_describe(unsigned long lun, char *buf, size_t size)
{
	struct vccid_slot_status status;
	char atr[VCCID_MAX_ATR * 2 + 1] = "-";
	char remote[VSCARD_NAME_MAX + 1];
	char peer[64];
	vccid_reader *reader;
	unsigned slot;
	size_t i;
	int len;

	if (!lun_resolve(lun, &reader, &slot))
		return VCCID_ENOENT;
	vccid_slot_get_status(reader->slots[slot], &status);
	for (i = 0; i < status.atr_len; i++)
		snprintf(atr + 2 * i, sizeof(atr) - 2 * i, "%02X", status.atr[i]);
	if (!vscard_host_slot_remote(reader->slots[slot], remote, sizeof(remote), peer,
				     sizeof(peer))) {
		snprintf(remote, sizeof(remote), "-");
		snprintf(peer, sizeof(peer), "-");
	} else if (remote[0] == '\0') {
		snprintf(remote, sizeof(remote), "(unnamed)");
	}
	len = snprintf(buf, size,
		       "reader=%s slot=%u state=%s powered=%d card=%s home=%s backend=%s atr=%s "
		       "remote=%s peer=%s",
		       reader->name, slot, status.present ? "present" : "empty",
		       status.powered ? 1 : 0, status.present ? status.card_name : "-",
		       reader->home[slot] ? reader->home[slot] : "-",
		       status.present ? status.backend : "-", atr, remote, peer);
	if (len < 0 || (size_t)len >= size)
		return VCCID_ENOSPC;
	return len;
}

bool vccid_reader_remote(unsigned long lun, char *name, size_t name_size, char *peer,
			 size_t peer_size)
{
	vccid_reader *reader;
	unsigned slot;

	if (!lun_resolve(lun, &reader, &slot))
		return false;
	return vscard_host_slot_remote(reader->slots[slot], name, name_size, peer, peer_size);
}

int vccid_reader_insert(unsigned long lun, const char *card_name)
{
	vccid_reader *reader;
	unsigned slot;
	int rv;

	if (!lun_resolve(lun, &reader, &slot))
		return VCCID_ENOENT;
	if (card_name == NULL || card_name[0] == '\0')
		card_name = reader->home[slot];
	if (card_name == NULL)
		return VCCID_ENOENT;
	if (vscard_host_slot_bound(reader->slots[slot]))
		return VCCID_EBUSY;   /* the slot belongs to a remote reader */
	rv = vccid_cacard_insert(card_name, reader->slots[slot]);
	VCCID_LOG(rv == VCCID_OK ? VCCID_LOG_INFO : VCCID_LOG_ERROR,
		  "insert of card %s into reader %s slot %u: %s", card_name, reader->name, slot,
		  vccid_strerror(rv));
	return rv;
}

int vccid_reader_remove(unsigned long lun)
{
	vccid_reader *reader;
	unsigned slot;
	int rv;

	if (!lun_resolve(lun, &reader, &slot))
		return VCCID_ENOENT;
	rv = vccid_slot_remove(reader->slots[slot]);
	VCCID_LOG(rv == VCCID_OK ? VCCID_LOG_INFO : VCCID_LOG_ERROR,
		  "remove from reader %s slot %u: %s", reader->name, slot, vccid_strerror(rv));
	return rv;
}
