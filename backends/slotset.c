/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A reader from vccid.conf: slots, configured libcacard cards, and free slots offered to the VSCard listener. */
#include "slotset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cacard/cacard.h"
#include "backends/vscard/host.h"
#include "backends/vscard/listener.h"
#include "backends/vpcd/card.h"
#include "backends/vpcd/listener.h"
#include "corelib/error.h"
#include "corelib/log.h"

struct vccid_slotset {
	char *name;
	struct vccid_config *config;
	bool cacard_acquired;
	bool vscard_acquired;
	uint32_t offered;                      /* slots given to the VSCard listener */
	uint32_t vpcd;                         /* slots given to vpcd card emulators */
	unsigned n_slots;
	vccid_slot *slots[VCCID_MAX_SLOTS];
	char *home[VCCID_MAX_SLOTS];           /* the card configured for each slot */
};

int vccid_slotset_split_device(const char *device, char **path, char **reader_name)
{
	const char *colon = device ? strrchr(device, ':') : NULL;

	if (device == NULL)
		return VCCID_EINVAL;
	if (colon != NULL && colon[1] != '\0' && strchr(colon, '/') == NULL) {
		*path = strndup(device, (size_t)(colon - device));
		*reader_name = strdup(colon + 1);
	} else {
		*path = strdup(device);
		*reader_name = strdup(VCCID_DEFAULT_READER);
	}
	if (*path == NULL || *reader_name == NULL) {
		free(*path);
		free(*reader_name);
		return VCCID_ENOMEM;
	}
	return VCCID_OK;
}

void vccid_slotset_close(vccid_slotset *set)
{
	unsigned i;

	if (set == NULL)
		return;
	/* Remote readers first: they must not outlive the slots they sit in. */
	for (i = 0; i < set->n_slots; i++)
		if (set->offered & (1u << i))
			vccid_vscard_host_withdraw_slot(set->slots[i]);
	for (i = 0; i < set->n_slots; i++)
		if (set->vpcd & (1u << i))
			vccid_vpcd_withdraw_slot(set->slots[i]);
	if (set->vscard_acquired)
		vccid_vscard_release();
	for (i = 0; i < set->n_slots; i++) {
		vccid_slot_free(set->slots[i]);
		free(set->home[i]);
	}
	if (set->cacard_acquired)
		vccid_cacard_release();
	vccid_config_free(set->config);
	free(set->name);
	free(set);
}

/* VCCID_LOG_LEVEL in the environment overrides the file's log-level. */
static void apply_log_level(const struct vccid_config *config)
{
	const char *env = getenv("VCCID_LOG_LEVEL");
	int level = env ? vccid_log_level_parse(env) : -1;

	if (level >= 0)
		vccid_log_set_level((enum vccid_log_level)level);
	else if (config->log_level_set)
		vccid_log_set_level(config->log_level);
}

/* Opens a vpcd port for each free slot of a vpcd reader. */
static void slotset_offer_vpcd(vccid_slotset *set)
{
	const struct vccid_config *config = set->config;
	unsigned i;

	if (!vccid_config_vpcd_reader(config, set->name))
		return;
	for (i = 0; i < set->n_slots; i++) {
		struct vccid_vpcd_slot_opts opts = {
			.host = config->vpcd.listen,
			.port = (uint16_t)vccid_config_vpcd_port(config, set->name, i),
			.timeout_ms = config->vpcd.timeout_ms,
			.max_connections = config->vpcd.max_connections,
			.reader = set->name,
			.index = i,
		};

		if (set->home[i] != NULL || (set->offered & (1u << i)))
			continue;
		if (opts.port == 0) {
			VCCID_LOG(VCCID_LOG_ERROR, "%s: [vpcd]: reader %s slot %u would need a port "
				  "past 65535; no vpcd card there", config->path, set->name, i);
			continue;
		}
		if (vccid_vpcd_offer_slot(set->slots[i], &opts) == VCCID_OK)
			set->vpcd |= 1u << i;
	}
}

/* Puts the configured cards in and offers the other slots to remote readers. */
static void slotset_fill(vccid_slotset *set)
{
	const struct vccid_config *config = set->config;
	size_t i;

	if (config->n_cards > 0) {
		(void)vccid_cacard_acquire(config);   /* logs its own problems */
		set->cacard_acquired = true;
	}
	for (i = 0; i < config->n_cards; i++) {
		const struct vccid_card_config *card = &config->cards[i];
		int rv;

		if (strcmp(card->reader, set->name) != 0)
			continue;
		if (card->slot >= set->n_slots) {
			VCCID_LOG(VCCID_LOG_ERROR, "%s: [card:%s] slot: %u is beyond the %u slots "
				  "this reader can have here; card ignored", config->path, card->name,
				  card->slot, set->n_slots);
			continue;
		}
		set->home[card->slot] = strdup(card->name);
		if (!card->inserted)
			continue;
		rv = vccid_cacard_insert(card->name, set->slots[card->slot]);
		if (rv != VCCID_OK)
			VCCID_LOG(VCCID_LOG_ERROR, "%s: [card:%s]: not inserted: %s", config->path,
				  card->name, rv == VCCID_ENOENT ? "the card could not be made"
								 : vccid_strerror(rv));
	}
	if (vccid_config_vscard_reader(config, set->name) &&
	    vccid_vscard_acquire(config) == VCCID_OK) {
		set->vscard_acquired = true;
		for (i = 0; i < set->n_slots; i++) {
			if (set->home[i] != NULL)
				continue;
			vccid_vscard_host_offer_slot(set->slots[i], set->name, (unsigned)i);
			set->offered |= 1u << i;
		}
	}
	slotset_offer_vpcd(set);
}

/* Builds the reader from @p config (taken over, freed on failure). */
static vccid_slotset *slotset_open(struct vccid_config *config, const char *reader_name,
				   unsigned max_slots)
{
	vccid_slotset *set = calloc(1, sizeof(*set));
	const struct vccid_reader_config *rconf;
	unsigned i;

	if (set == NULL) {
		vccid_config_free(config);
		return NULL;
	}
	set->name = strdup(reader_name ? reader_name : VCCID_DEFAULT_READER);
	set->config = config;
	if (set->name == NULL || set->config == NULL) {
		vccid_slotset_close(set);
		return NULL;
	}
	apply_log_level(set->config);
	rconf = vccid_config_find_reader(set->config, set->name);
	if (rconf == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "%s: no [reader:%s] group; the reader has %d empty slots",
			  set->config->path, set->name, VCCID_DEFAULT_SLOTS);
		set->n_slots = VCCID_DEFAULT_SLOTS;
	} else {
		set->n_slots = rconf->slots;
	}
	if (max_slots > 0 && set->n_slots > max_slots) {
		VCCID_LOG(VCCID_LOG_ERROR, "%s: [reader:%s] slots: %u, but this reader has at most "
			  "%u; using %u", set->config->path, set->name, set->n_slots, max_slots,
			  max_slots);
		set->n_slots = max_slots;
	}
	for (i = 0; i < set->n_slots; i++) {
		set->slots[i] = vccid_slot_new();
		if (set->slots[i] == NULL) {
			vccid_slotset_close(set);
			return NULL;
		}
	}
	slotset_fill(set);
	VCCID_LOG(VCCID_LOG_INFO, "reader %s from %s: %u slots, %zu problems in the file",
		  set->name, set->config->path, set->n_slots, set->config->n_errors);
	return set;
}

vccid_slotset *vccid_slotset_open(const char *path, const char *reader_name, unsigned max_slots)
{
	struct vccid_config *config = vccid_config_load(path);

	return config ? slotset_open(config, reader_name, max_slots) : NULL;
}

int vccid_slotset_vpcd_device(const char *device, unsigned *port)
{
	static const char prefix[] = "/dev/null:";
	unsigned long value;
	char *end;

	if (device == NULL || strncmp(device, prefix, sizeof(prefix) - 1) != 0)
		return VCCID_ENOENT;
	device += sizeof(prefix) - 1;
	errno = 0;
	/* vsmartcard writes 0x8C7B; strtoul's base 0 would read a leading 0 as octal. */
	if (device[0] == '0' && (device[1] == 'x' || device[1] == 'X'))
		value = strtoul(device + 2, &end, 16);
	else
		value = strtoul(device, &end, 10);
	if (device[0] == '\0' || device[0] == '-' || *end != '\0' || errno != 0 ||
	    value < 1024 || value > 65534)
		return VCCID_EINVAL;
	*port = (unsigned)value;
	return VCCID_OK;
}

vccid_slotset *vccid_slotset_open_vpcd(unsigned port)
{
	char text[256];
	char name[32];
	struct vccid_config *config;
	int len;

	/* The reader vsmartcard's entry describes, as a configuration of our own. */
	snprintf(name, sizeof(name), "vpcd-%u", port);
	len = snprintf(text, sizeof(text), "[reader:%s]\nslots=%d\n", name, VCCID_VPCD_DROPIN_SLOTS);
	if (port != 0)
		len += snprintf(text + len, sizeof(text) - (size_t)len,
				"[vpcd]\nreaders=%s\nlisten=%s\nport=%u\n", name,
				VCCID_VPCD_DEFAULT_HOST, port);
	config = vccid_config_load_data(text, (size_t)len, "/dev/null (vsmartcard reader.conf)");
	return config ? slotset_open(config, name, VCCID_VPCD_DROPIN_SLOTS) : NULL;
}

size_t vccid_slotset_max_apdu_data(const vccid_slotset *set)
{
	return set->vpcd != 0 ? VCCID_VPCD_MAX_APDU_DATA : 65536;
}

size_t vccid_slotset_max_command(const vccid_slotset *set)
{
	return set->vpcd != 0 ? VCCID_VPCD_MAX_APDU_DATA + 9 : VCCID_MAX_COMMAND;
}

const struct vccid_config *vccid_slotset_config(const vccid_slotset *set)
{
	return set->config;
}

const char *vccid_slotset_name(const vccid_slotset *set)
{
	return set->name;
}

unsigned vccid_slotset_count(const vccid_slotset *set)
{
	return set->n_slots;
}

vccid_slot *vccid_slotset_slot(const vccid_slotset *set, unsigned index)
{
	return index < set->n_slots ? set->slots[index] : NULL;
}

vccid_slot *const *vccid_slotset_slots(const vccid_slotset *set)
{
	return set->slots;
}

bool vccid_slotset_remote(const vccid_slotset *set, unsigned index, char *name,
			  size_t name_size, char *peer, size_t peer_size)
{
	if (index >= set->n_slots)
		return false;
	if (set->vpcd & (1u << index)) {
		snprintf(name, name_size, "vpcd");
		return vccid_vpcd_slot_peer(set->slots[index], peer, peer_size);
	}
	return vccid_vscard_host_slot_remote(set->slots[index], name, name_size, peer, peer_size);
}

int vccid_slotset_describe(const vccid_slotset *set, unsigned index, char *buf, size_t size)
{
	struct vccid_slot_status status;
	char atr[VCCID_MAX_ATR * 2 + 1] = "-";
	char remote[VCCID_NAME_MAX + 1];
	char peer[VCCID_VSCARD_PEER_MAX];
	size_t i;
	int len;

	if (index >= set->n_slots)
		return VCCID_ENOENT;
	vccid_slot_get_status(set->slots[index], &status);
	for (i = 0; i < status.atr_len; i++)
		snprintf(atr + 2 * i, sizeof(atr) - 2 * i, "%02X", status.atr[i]);
	if (!vccid_slotset_remote(set, index, remote, sizeof(remote), peer, sizeof(peer))) {
		snprintf(remote, sizeof(remote), "-");
		snprintf(peer, sizeof(peer), "-");
	} else if (remote[0] == '\0') {
		snprintf(remote, sizeof(remote), "(unnamed)");
	}
	len = snprintf(buf, size,
		       "reader=%s slot=%u state=%s powered=%d card=%s home=%s backend=%s atr=%s "
		       "remote=%s peer=%s",
		       set->name, index, status.present ? "present" : "empty",
		       status.powered ? 1 : 0, status.present ? status.card_name : "-",
		       set->home[index] ? set->home[index] : "-",
		       status.present ? status.backend : "-", atr, remote, peer);
	if (len < 0 || (size_t)len >= size)
		return VCCID_ENOSPC;
	return len;
}

int vccid_slotset_insert(vccid_slotset *set, unsigned index, const char *card_name)
{
	int rv;

	if (index >= set->n_slots)
		return VCCID_ENOENT;
	if (card_name == NULL || card_name[0] == '\0')
		card_name = set->home[index];
	if (card_name == NULL)
		return VCCID_ENOENT;
	if (vccid_vscard_host_slot_bound(set->slots[index]) || (set->vpcd & (1u << index)))
		return VCCID_EBUSY;   /* the slot belongs to a remote reader */
	rv = vccid_cacard_insert(card_name, set->slots[index]);
	VCCID_LOG(rv == VCCID_OK ? VCCID_LOG_INFO : VCCID_LOG_ERROR,
		  "insert of card %s into reader %s slot %u: %s", card_name, set->name, index,
		  vccid_strerror(rv));
	return rv;
}

int vccid_slotset_remove(vccid_slotset *set, unsigned index)
{
	int rv;

	if (index >= set->n_slots)
		return VCCID_ENOENT;
	rv = vccid_slot_remove(set->slots[index]);
	VCCID_LOG(rv == VCCID_OK ? VCCID_LOG_INFO : VCCID_LOG_ERROR,
		  "remove from reader %s slot %u: %s", set->name, index, vccid_strerror(rv));
	return rv;
}
