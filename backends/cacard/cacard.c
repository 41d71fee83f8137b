/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcacard glue: one initialisation per process, one event thread, one card_ops table for every card. */
#include "cacard.h"
#include "card-id.h"

#include <glib.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nss.h>
#include <cert.h>
#include <pk11pub.h>

#include <libcacard.h>

#include "core/error.h"
#include "core/log.h"

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

static pthread_mutex_t cacard_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cacard_card *cards;     /* every card set up, for the life of the process */
static bool libcacard_ready;
static char init_config[4096];        /* the configuration file that initialised libcacard */
static unsigned users;
static pthread_t event_thread;
static bool event_thread_running;

static struct cacard_card *find_card(const char *name)
{
	struct cacard_card *card;

	for (card = cards; card != NULL; card = card->next)
		if (strcmp(card->name, name) == 0)
			return card;
	return NULL;
}

static enum vccid_log_level glib_level(GLogLevelFlags flags)
{
	if (flags & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return VCCID_LOG_ERROR;
	if (flags & G_LOG_LEVEL_WARNING)
		return VCCID_LOG_INFO;
	return VCCID_LOG_APDU;   /* libcacard's debug output dumps certificates and APDUs */
}

/* libcacard logs through GLib; send it to pcscd's log, never to stderr. */
static GLogWriterOutput glib_writer(GLogLevelFlags flags, const GLogField *fields,
				    gsize n_fields, gpointer user_data)
{
	enum vccid_log_level level = glib_level(flags);
	const char *message = NULL;
	gsize i;

	(void)user_data;
	if (!vccid_log_enabled(level))
		return G_LOG_WRITER_HANDLED;
	for (i = 0; i < n_fields; i++)
		if (strcmp(fields[i].key, "MESSAGE") == 0)
			message = fields[i].value;
	if (message != NULL)
		VCCID_LOG(level, "libcacard: %s", message);
	return G_LOG_WRITER_HANDLED;
}

static void route_glib_log(void)
{
	g_log_set_writer_func(glib_writer, NULL, NULL);
}

/* Drains libcacard's event queue so it does not grow; slot state is driven
 * synchronously by vccid itself, so events are only traced. */
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

static void *event_loop(void *arg)
{
	(void)arg;
	for (;;) {
		VEvent *event = vevent_wait_next_vevent();
		VEventType type;

		if (event == NULL)
			continue;
		type = event->type;
		if (type != VEVENT_LAST && event->reader != NULL)
			VCCID_LOG(VCCID_LOG_DEBUG, "libcacard event %d on %s", (int)type,
				  vreader_get_name(event->reader));
		if (type == VEVENT_CARD_INSERT && event->reader != NULL && event->card != NULL)
			remember_vcard(event->reader, event->card);
		vevent_delete(event);
		if (type == VEVENT_LAST)
			break;
	}
	return NULL;
}

/*
 * A database that registers extra PKCS#11 modules (OpenSC, p11-kit) would make
 * NSS load them inside pcscd, where they call back into pcscd and deadlock.
 */
static bool database_is_private(const char *database)
{
	const char *dir = database;
	char *path;
	char *text = NULL;
	bool ok = true;

	if (g_str_has_prefix(database, "sql:"))
		dir = database + 4;
	else if (strchr(database, ':') != NULL)
		return true;   /* dbm: or other: its module list is binary, not checked */
	path = g_build_filename(dir, "pkcs11.txt", NULL);
	if (g_file_get_contents(path, &text, NULL, NULL)) {
		gchar **lines = g_strsplit(text, "\n", -1);
		size_t i;

		for (i = 0; lines[i]; i++) {
			const char *value;

			g_strstrip(lines[i]);
			if (!g_str_has_prefix(lines[i], "library="))
				continue;
			value = lines[i] + strlen("library=");
			if (value[0] != '\0') {
				VCCID_LOG(VCCID_LOG_ERROR,
					  "NSS database %s loads the PKCS#11 module %s, which would "
					  "call back into pcscd and deadlock; use a private database "
					  "(see vccid-mkdb)", database, value);
				ok = false;
			}
		}
		g_strfreev(lines);
		g_free(text);
	}
	g_free(path);
	return ok;
}

static void append_card_option(GString *options, const struct vccid_card_config *card)
{
	size_t i;

	g_string_append_printf(options, " soft=(,%s,CAC,", card->name);
	for (i = 0; i < VCCID_CARD_CERTS; i++)
		g_string_append_printf(options, ",%s", card->certs[i]);
	g_string_append_c(options, ')');
}

/* Each nickname must name a certificate of the database, or libcacard drops it silently. */
static void check_certificates(const struct vccid_card_config *card)
{
	size_t i;

	for (i = 0; i < VCCID_CARD_CERTS; i++) {
		CERTCertificate *cert = PK11_FindCertFromNickname(card->certs[i], NULL);

		if (cert == NULL)
			VCCID_LOG(VCCID_LOG_ERROR, "card %s: no certificate '%s' in NSS database %s",
				  card->name, card->certs[i], card->database);
		else {
			struct cacard_card *registered = find_card(card->name);

			/* The identity certificate (the first) names the card. */
			if (registered != NULL && i == 0)
				registered->has_card_id = vccid_card_id_derive(
					cert->derCert.data, cert->derCert.len, registered->card_id);
			CERT_DestroyCertificate(cert);
		}
	}
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

/* Called with cacard_lock held, once per process. */
static int init_libcacard(const struct vccid_config *config)
{
	static pthread_once_t log_once = PTHREAD_ONCE_INIT;
	GString *options = g_string_new("use_hw=no");
	const char *database = NULL;
	VCardEmulOptions *parsed;
	size_t n_used = 0;
	size_t i;
	int rv = VCCID_OK;

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
		append_card_option(options, card);
		n_used++;
	}
	if (n_used == 0) {
		g_string_free(options, TRUE);
		return VCCID_OK;   /* nothing to emulate: stay uninitialised */
	}
	if (strpbrk(database, "\"\n") != NULL || !database_is_private(database)) {
		if (strpbrk(database, "\"\n") != NULL)
			VCCID_LOG(VCCID_LOG_ERROR, "NSS database path %s contains a quote or newline",
				  database);
		g_string_free(options, TRUE);
		return VCCID_ECONFIG;
	}
	g_string_append_printf(options, " db=\"%s\"", database);
	pthread_once(&log_once, route_glib_log);
	VCCID_LOG(VCCID_LOG_DEBUG, "libcacard options: %s", options->str);

	parsed = vcard_emul_options(options->str);
	if (parsed == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard rejected the options %s", options->str);
		rv = VCCID_ECONFIG;
	} else if (vcard_emul_init(parsed) != VCARD_EMUL_OK) {
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard could not open NSS database %s or make "
			  "any card from it (does it exist, is it readable by pcscd's user?)",
			  database);
		rv = VCCID_EIO;
	}
	/* vcard_emul_init is once per process, whatever its result. */
	libcacard_ready = true;
	snprintf(init_config, sizeof(init_config), "%s", config->path);
	for (i = 0; i < config->n_cards; i++) {
		const struct vccid_card_config *card = &config->cards[i];

		if (strcmp(card->database, database) != 0)
			continue;
		register_card(card->name);
		if (rv == VCCID_OK)
			check_certificates(card);
	}
	g_string_free(options, TRUE);
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
	if (libcacard_ready && !event_thread_running) {
		if (pthread_create(&event_thread, NULL, event_loop, NULL) == 0)
			event_thread_running = true;
		else
			VCCID_LOG(VCCID_LOG_ERROR, "cannot start the libcacard event thread");
	}
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
	if (stop) {
		vevent_queue_vevent(vevent_new(VEVENT_LAST, NULL, NULL));
		pthread_join(event_thread, NULL);
	}
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
