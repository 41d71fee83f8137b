/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcacard cards in vccid's slots: the cards of one configuration, one card_ops table for all. */
#include "cacard.h"
#include "card-id.h"
#include "emul.h"

#include <glib.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libcacard.h>

#include "corelib/error.h"
#include "corelib/log.h"

/* vreader_xfr_bytes silently truncates to the buffer it is given. */
#define CACARD_RESPONSE_MAX (65536 + 2)

struct cacard_card {
	char *name;
	uint8_t card_id[VCCID_CARD_ID_BYTES];   /* see card-id.h */
	bool has_card_id;
	VReader *reader;          /* referenced; NULL when libcacard did not create it */
	/* The card object, referenced, learnt from libcacard's insert event: with it
	 * an APDU skips vreader_xfr_bytes, whose three debug messages are formatted
	 * on every call even with logging off (GLib formats before filtering). */
	_Atomic(VCard *) vcard;
	uint8_t *scratch;         /* CACARD_RESPONSE_MAX bytes for callers with smaller buffers;
				   * used under the slot's exchange lock only */
	bool in_slot;             /* guarded by cacard_lock */
	struct cacard_card *next;
};

/* Lock order: cacard_lock, then emul.c's locks; the event thread takes
 * cacard_lock, so the event thread is stopped without it. */
static pthread_mutex_t cacard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cacard_card *cards;     /* every card set up, for the life of the process */
static bool libcacard_ready;
static char init_config[4096];        /* the configuration file that initialised libcacard */
static unsigned users;
static bool event_thread_running;

static struct cacard_card *find_card(const char *name)
{
	struct cacard_card *card;

	for (card = cards; card != NULL; card = card->next)
		if (strcmp(card->name, name) == 0)
			return card;
	return NULL;
}

/* Keeps a reference to the card libcacard put into @p reader (the same object
 * comes back after a forced remove and insert). */
static void remember_vcard(VReader *reader, VCard *vcard)
{
	struct cacard_card *card;

	pthread_mutex_lock(&cacard_lock);
	for (card = cards; card != NULL; card = card->next) {
		if (card->reader == reader && atomic_load(&card->vcard) != vcard) {
			VCard *old = atomic_exchange(&card->vcard, vcard_reference(vcard));

			/* Still referenced by libcacard's reader or saved card: no free here. */
			if (old != NULL)
				vcard_free(old);
		}
	}
	pthread_mutex_unlock(&cacard_lock);
}

/* Drains libcacard's event queue so it does not grow; slot state is driven
 * synchronously by vccid itself, so events are only traced, and an insert
 * tells which card object a reader holds. */
static void on_event(VEvent *event, void *arg)
{
	(void)arg;
	if (event->reader == NULL)
		return;
	VCCID_LOG(VCCID_LOG_DEBUG, "libcacard event %d on %s", (int)event->type,
		  vreader_get_name(event->reader));
	if (event->type == VEVENT_CARD_INSERT && event->card != NULL)
		remember_vcard(event->reader, event->card);
}

static void register_card(const char *name)
{
	struct cacard_card *card = g_new0(struct cacard_card, 1);

	card->name = g_strdup(name);
	card->scratch = g_try_malloc(CACARD_RESPONSE_MAX);
	card->reader = vreader_get_reader_by_name(name);   /* returns a reference */
	if (card->reader == NULL || vreader_card_is_present(card->reader) != VREADER_OK) {
		VCCID_LOG(VCCID_LOG_ERROR, "card %s: libcacard could not make the card "
			  "(none of its certificates or keys were usable)", name);
		if (card->reader != NULL) {
			vreader_free(card->reader);
			card->reader = NULL;
		}
	}
	card->next = cards;
	cards = card;
}

/* The identity certificate names the card: its own CAC identifier (card-id.h). */
static void check_certificates(const struct vccid_card_config *card)
{
	const struct vccid_cacard_emul_card emul = {
		.name = card->name,
		.certs = (const char *const *)card->certs,
		.n_certs = VCCID_CARD_CERTS,
	};
	struct cacard_card *registered = find_card(card->name);
	uint8_t id[VCCID_CARD_ID_BYTES];
	bool has_id;

	vccid_cacard_emul_check_card(&emul, card->database, id, &has_id);
	if (registered != NULL && has_id) {
		memcpy(registered->card_id, id, sizeof(id));
		registered->has_card_id = true;
	}
}

/*
 * The cards of @p config that libcacard can emulate: those of the first
 * card's NSS database (libcacard opens one per process). Fills @p emul and
 * returns how many, or 0; the rest are logged.
 */
static size_t usable_cards(const struct vccid_config *config, struct vccid_cacard_emul_card *emul)
{
	const char *database = NULL;
	size_t n = 0;
	size_t i;

	for (i = 0; i < config->n_cards; i++) {
		const struct vccid_card_config *card = &config->cards[i];

		if (database == NULL)
			database = card->database;
		if (strcmp(card->database, database) != 0) {
			VCCID_LOG(VCCID_LOG_ERROR, "%s: [card:%s] nss-database: %s differs from %s; "
				  "libcacard opens one NSS database per process, card ignored",
				  config->path, card->name, card->database, database);
			continue;
		}
		emul[n].name = card->name;
		emul[n].certs = (const char *const *)card->certs;
		emul[n].n_certs = VCCID_CARD_CERTS;
		n++;
	}
	return n;
}

/* Called with cacard_lock held, once per process. */
static int init_libcacard(const struct vccid_config *config)
{
	struct vccid_cacard_emul_card *emul = g_new0(struct vccid_cacard_emul_card,
						     config->n_cards);
	struct vccid_cacard_emul_setup setup = {
		.database = config->cards[0].database,
		.use_hw = false,
		.private_database = true,   /* NSS runs inside pcscd */
		.cards = emul,
	};
	size_t i;
	int rv;

	setup.n_cards = usable_cards(config, emul);
	rv = vccid_cacard_emul_init(&setup);
	g_free(emul);
	if (rv == VCCID_ECONFIG || rv == VCCID_EBUSY)
		return rv;   /* refused before libcacard saw it: stay uninitialised */
	if (rv == VCCID_EIO)
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard could not open NSS database %s or make "
			  "any card from it (does it exist, is it readable by pcscd's user?)",
			  setup.database);
	libcacard_ready = true;
	snprintf(init_config, sizeof(init_config), "%s", config->path);
	for (i = 0; i < config->n_cards; i++) {
		const struct vccid_card_config *card = &config->cards[i];

		if (strcmp(card->database, setup.database) != 0)
			continue;
		register_card(card->name);
		if (rv == VCCID_OK)
			check_certificates(card);
	}
	return rv;
}

/* Logs the cards of @p config that libcacard, already initialised, cannot have. */
static void report_late_cards(const struct vccid_config *config)
{
	size_t i;

	for (i = 0; i < config->n_cards; i++)
		if (find_card(config->cards[i].name) == NULL)
			VCCID_LOG(VCCID_LOG_ERROR,
				  "%s: [card:%s]: libcacard was already initialised from %s and "
				  "cannot add cards; configure every card in that file",
				  config->path, config->cards[i].name,
				  init_config);
}

int vccid_cacard_acquire(const struct vccid_config *config)
{
	int rv = VCCID_OK;

	pthread_mutex_lock(&cacard_lock);
	if (!libcacard_ready && config->n_cards > 0)
		rv = init_libcacard(config);
	else
		report_late_cards(config);
	if (libcacard_ready && !event_thread_running)
		event_thread_running = vccid_cacard_emul_events_start(on_event, NULL) == VCCID_OK;
	users++;
	pthread_mutex_unlock(&cacard_lock);
	return rv;
}

void vccid_cacard_release(void)
{
	bool stop = false;

	pthread_mutex_lock(&cacard_lock);
	if (users > 0 && --users == 0 && event_thread_running) {
		event_thread_running = false;
		stop = true;
	}
	pthread_mutex_unlock(&cacard_lock);
	if (stop)
		vccid_cacard_emul_events_stop();
}

bool vccid_cacard_known(const char *name)
{
	bool known;

	pthread_mutex_lock(&cacard_lock);
	known = find_card(name) != NULL;
	pthread_mutex_unlock(&cacard_lock);
	return known;
}

static int cacard_power(void *opaque, enum vccid_power_action action,
			uint8_t *atr, size_t *atr_len)
{
	struct cacard_card *card = opaque;
	int len;

	if (action == VCCID_POWER_DOWN) {
		vreader_power_off(card->reader);
		return VCCID_OK;
	}
	/* vreader_power_on resets the card (and logs it out) for UP and RESET alike. */
	len = *atr_len > VCCID_MAX_ATR ? VCCID_MAX_ATR : (int)*atr_len;
	if (vreader_power_on(card->reader, atr, &len) != VREADER_OK || len <= 0)
		return VCCID_EIO;
	*atr_len = (size_t)len;
	return VCCID_OK;
}

/*
 * One APDU through libcacard's card object when it is known (what
 * vreader_xfr_bytes does, without its per-call debug formatting), else
 * through the reader. Writes at most CACARD_RESPONSE_MAX bytes to @p buf.
 */
static int card_exchange(struct cacard_card *card, const uint8_t *cmd, size_t cmd_len,
			 uint8_t *buf, int *len)
{
	VCard *vcard = atomic_load(&card->vcard);
	VCardResponse *response = NULL;
	VCardAPDU *apdu = NULL;
	vcard_7816_status_t status;
	int rv = VCCID_EIO;

	/* libcacard's API is not const-correct; it does not write to the command. */
	if (vcard != NULL)
		apdu = vcard_apdu_new((unsigned char *)cmd, (int)cmd_len, &status);
	if (apdu == NULL) {
		/* Unknown card yet, or an APDU libcacard answers with an error status:
		 * the reader path builds that answer. */
		if (vreader_xfr_bytes(card->reader, (unsigned char *)cmd, (int)cmd_len, buf, len) ==
		    VREADER_OK && *len >= 2)
			rv = VCCID_OK;
		return rv;
	}
	if (vcard_process_apdu(vcard, apdu, &response) == VCARD_DONE && response != NULL &&
	    response->b_total_len >= 2 && response->b_total_len <= *len) {
		memcpy(buf, response->b_data, (size_t)response->b_total_len);
		*len = response->b_total_len;
		rv = VCCID_OK;
	}
	if (response != NULL)
		vcard_response_delete(response);
	vcard_apdu_delete(apdu);
	return rv;
}

static int cacard_transmit(void *opaque, const uint8_t *cmd, size_t cmd_len,
			   uint8_t *rsp, size_t *rsp_len)
{
	struct cacard_card *card = opaque;
	/* A caller's buffer smaller than libcacard's largest answer would truncate
	 * silently: answer into the card's scratch buffer and copy. */
	uint8_t *buf = *rsp_len < CACARD_RESPONSE_MAX ? card->scratch : rsp;
	int len = CACARD_RESPONSE_MAX;
	int rv = VCCID_OK;

	if (cmd_len > INT_MAX)
		return VCCID_EINVAL;
	if (buf == NULL)
		return VCCID_ENOMEM;
	rv = card_exchange(card, cmd, cmd_len, buf, &len);
	if (rv == VCCID_OK && (size_t)len > *rsp_len) {
		rv = VCCID_ENOSPC;
	} else if (rv == VCCID_OK) {
		if (buf != rsp)
			memcpy(rsp, buf, (size_t)len);
		*rsp_len = (size_t)len;
		if (card->has_card_id)
			vccid_card_id_apply(card->card_id, rsp, *rsp_len);
	}
	if (buf != rsp && len > 0)
		explicit_bzero(buf, (size_t)len);   /* may hold key material or a PIN answer */
	return rv;
}

static void cacard_release(void *opaque)
{
	struct cacard_card *card = opaque;

	vcard_emul_force_card_remove(card->reader);
	pthread_mutex_lock(&cacard_lock);
	card->in_slot = false;
	pthread_mutex_unlock(&cacard_lock);
}

static const struct vccid_card_ops cacard_ops = {
	.backend = "cacard",
	.power = cacard_power,
	.transmit = cacard_transmit,
	.release = cacard_release,
};

int vccid_cacard_insert(const char *name, vccid_slot *slot)
{
	struct cacard_card *card;
	int rv;

	pthread_mutex_lock(&cacard_lock);
	card = find_card(name);
	if (card == NULL || card->reader == NULL) {
		rv = VCCID_ENOENT;
	} else if (card->in_slot) {
		rv = VCCID_EBUSY;
	} else {
		if (vreader_card_is_present(card->reader) != VREADER_OK)
			vcard_emul_force_card_insert(card->reader);
		rv = vccid_slot_insert(slot, &cacard_ops, card, card->name);
		card->in_slot = rv == VCCID_OK;
	}
	pthread_mutex_unlock(&cacard_lock);
	return rv;
}
