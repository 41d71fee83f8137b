/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcacard's process-wide setup: options string, database checks, vcard_emul_init once, event thread. */
#include "emul.h"

#include <errno.h>
#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cert.h>
#include <libcacard.h>
#include <pk11pub.h>

#include "corelib/error.h"
#include "corelib/log.h"

/*
 * libcacard's event queue is locked with GMutex, which glib builds on bare futexes that
 * ThreadSanitizer cannot see: an event vccid allocates and queues would look raced with
 * the event thread reading it. These tell TSan about the hand-off; they cost nothing
 * in other builds.
 */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VCCID_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__) || defined(VCCID_TSAN)
#include <sanitizer/tsan_interface.h>
#define handoff_release(p) __tsan_release(p)
#define handoff_acquire(p) __tsan_acquire(p)
#else
#define handoff_release(p) ((void)(p))
#define handoff_acquire(p) ((void)(p))
#endif

static pthread_mutex_t emul_lock = PTHREAD_MUTEX_INITIALIZER;
static bool emul_initialised;          /* vcard_emul_init was called; guarded by emul_lock */

/*
 * A stop queues VEVENT_LAST and joins without events_lock (callbacks take the
 * caller's locks, and a caller may start the thread under them), so a new
 * thread may start while the old one still runs. Each thread has a
 * generation; VEVENT_LAST ends only threads of a generation being stopped,
 * a newer one passes it on.
 */
static pthread_mutex_t events_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t events_thread;        /* the rest guarded by events_lock */
static bool events_running;
static unsigned long events_generation;   /* of the running thread */
static unsigned long events_stopped;      /* generations up to this one must end */
static vccid_cacard_emul_event_fn events_fn;
static void *events_arg;

const char *vccid_cacard_emul_token_problem(const char *token)
{
	size_t len = strlen(token);
	size_t i;

	if (len == 0)
		return "must not be empty";
	if (len > VCCID_CACARD_EMUL_TOKEN_MAX)
		return "is longer than 200 characters";
	for (i = 0; i < len; i++)
		if ((unsigned char)token[i] < 0x20 || token[i] == 0x7F)
			return "contains control characters";
	/* libcacard splits soft=(...) at ',' and ')' and has no quoting. */
	if (strpbrk(token, ",()\"") != NULL)
		return "must not contain ',', '(', ')' or '\"'";
	/* It strips leading blanks: " a" would name another certificate. */
	if (token[0] == ' ' || token[len - 1] == ' ')
		return "must not begin or end with a space";
	return NULL;
}

/* The directory of @p database, or NULL for a scheme whose value is not one. */
static const char *database_dir(const char *database)
{
	static const char *const unchecked[] = { "extern:", "rdb:", "multiaccess:", NULL };
	size_t i;

	if (g_str_has_prefix(database, "sql:") || g_str_has_prefix(database, "dbm:"))
		return database + 4;
	for (i = 0; unchecked[i] != NULL; i++)
		if (g_str_has_prefix(database, unchecked[i]))
			return NULL;
	return database;
}

/*
 * A database that registers extra PKCS#11 modules (OpenSC, p11-kit) would make
 * NSS load them inside pcscd, where they call back into pcscd and deadlock.
 */
static bool database_is_private(const char *database, const char *dir)
{
	char *path = g_build_filename(dir, "pkcs11.txt", NULL);
	char *text = NULL;
	struct stat st;
	bool ok = true;

	/* Read only a regular file: a FIFO would block the reading thread. */
	if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
		VCCID_LOG(VCCID_LOG_ERROR, "NSS database %s: %s is not a regular file; refused",
			  database, path);
		ok = false;
	} else if (g_file_get_contents(path, &text, NULL, NULL)) {
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

int vccid_cacard_emul_check_database(const char *database, bool private_only)
{
	const char *dir;
	struct stat st;

	if (strpbrk(database, "\"\n") != NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "NSS database path %s contains a quote or newline",
			  database);
		return VCCID_ECONFIG;
	}
	dir = database_dir(database);
	if (dir == NULL)
		return VCCID_OK;
	/* stat, never open: a path whose open blocks must not hang the caller (pcscd). */
	if (stat(dir, &st) != 0) {
		VCCID_LOG(VCCID_LOG_ERROR, "NSS database %s: cannot read directory %s: %s; refused",
			  database, dir, strerror(errno));
		return VCCID_ECONFIG;
	}
	if (!S_ISDIR(st.st_mode)) {
		VCCID_LOG(VCCID_LOG_ERROR, "NSS database %s: %s is not a directory; refused",
			  database, dir);
		return VCCID_ECONFIG;
	}
	if (private_only && !database_is_private(database, dir))
		return VCCID_ECONFIG;
	return VCCID_OK;
}

static int append(GString *options, size_t size, const char *what, const char *token)
{
	const char *problem = vccid_cacard_emul_token_problem(token);

	if (problem != NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "%s '%s' %s", what, token, problem);
		return VCCID_EINVAL;
	}
	g_string_append(options, token);
	return options->len < size ? VCCID_OK : VCCID_ENOSPC;
}

static int build_options(GString *o, const struct vccid_cacard_emul_setup *setup, size_t size)
{
	size_t i, j;
	int rv = VCCID_OK;

	g_string_append(o, setup->use_hw ? "use_hw=yes" : "use_hw=no");
	for (i = 0; rv == VCCID_OK && i < setup->n_cards; i++) {
		const struct vccid_cacard_emul_card *card = &setup->cards[i];

		/* soft=(NSS slot,reader name,card type,type parameters,certificates...) */
		g_string_append(o, " soft=(,");
		rv = append(o, size, "card name", card->name);
		g_string_append(o, ",CAC,");
		for (j = 0; rv == VCCID_OK && j < card->n_certs; j++) {
			g_string_append_c(o, ',');
			rv = append(o, size, "certificate nickname", card->certs[j]);
		}
		g_string_append_c(o, ')');
	}
	if (rv == VCCID_OK && setup->database != NULL) {
		/* db="..." ends at the first quote or newline: no escaping exists. */
		if (strpbrk(setup->database, "\"\n") != NULL) {
			VCCID_LOG(VCCID_LOG_ERROR, "NSS database path %s contains a quote or newline",
				  setup->database);
			return VCCID_EINVAL;
		}
		g_string_append_printf(o, " db=\"%s\"", setup->database);
	}
	if (rv == VCCID_OK && o->len >= size)
		rv = VCCID_ENOSPC;
	return rv;
}

int vccid_cacard_emul_options(const struct vccid_cacard_emul_setup *setup, char *buf,
			      size_t size)
{
	GString *o = g_string_new(NULL);
	int rv = build_options(o, setup, size);

	if (rv == VCCID_ENOSPC)
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard options for %zu cards are longer than %zu bytes",
			  setup->n_cards, size);
	else if (rv == VCCID_OK)
		memcpy(buf, o->str, o->len + 1);
	g_string_free(o, TRUE);
	return rv;
}

static enum vccid_log_level glib_level(GLogLevelFlags flags)
{
	if (flags & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
		return VCCID_LOG_ERROR;
	if (flags & G_LOG_LEVEL_WARNING)
		return VCCID_LOG_INFO;
	return VCCID_LOG_APDU;   /* libcacard's debug output dumps certificates and APDUs */
}

/* libcacard logs through GLib; send it to vccid's sink (pcscd's log), never to stderr. */
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

/* GLib aborts when its writer is set twice. */
static void route_glib_log(void)
{
	g_log_set_writer_func(glib_writer, NULL, NULL);
}

/* Called with emul_lock held. */
static int init_locked(const struct vccid_cacard_emul_setup *setup)
{
	static pthread_once_t log_once = PTHREAD_ONCE_INIT;
	/* libcacard's parser copies what it keeps; 16 cards of 3 long nicknames fit. */
	char options[16384];
	VCardEmulOptions *parsed;
	int rv;

	if (emul_initialised)
		return VCCID_EBUSY;
	if (setup->database != NULL) {
		rv = vccid_cacard_emul_check_database(setup->database, setup->private_database);
		if (rv != VCCID_OK)
			return rv;
	}
	rv = vccid_cacard_emul_options(setup, options, sizeof(options));
	if (rv != VCCID_OK)
		return VCCID_ECONFIG;
	pthread_once(&log_once, route_glib_log);
	VCCID_LOG(VCCID_LOG_DEBUG, "libcacard options: %s", options);
	parsed = vcard_emul_options(options);
	if (parsed == NULL) {
		VCCID_LOG(VCCID_LOG_ERROR, "libcacard rejected the options %s", options);
		return VCCID_ECONFIG;
	}
	/* vcard_emul_init works once per process, whatever its result. */
	emul_initialised = true;
	if (vcard_emul_init(parsed) != VCARD_EMUL_OK)
		return VCCID_EIO;
	return VCCID_OK;
}

int vccid_cacard_emul_init(const struct vccid_cacard_emul_setup *setup)
{
	int rv;

	pthread_mutex_lock(&emul_lock);
	rv = init_locked(setup);
	pthread_mutex_unlock(&emul_lock);
	return rv;
}

bool vccid_cacard_emul_initialised(void)
{
	bool done;

	pthread_mutex_lock(&emul_lock);
	done = emul_initialised;
	pthread_mutex_unlock(&emul_lock);
	return done;
}

int vccid_cacard_emul_check_card(const struct vccid_cacard_emul_card *card,
				 const char *database, uint8_t id[VCCID_CARD_ID_BYTES],
				 bool *has_id)
{
	int rv = VCCID_OK;
	size_t i;

	*has_id = false;
	for (i = 0; i < card->n_certs; i++) {
		CERTCertificate *cert = PK11_FindCertFromNickname(card->certs[i], NULL);

		if (cert == NULL) {
			VCCID_LOG(VCCID_LOG_ERROR, "card %s: no certificate '%s' in NSS database %s",
				  card->name, card->certs[i],
				  database != NULL ? database : "(libcacard's default)");
			rv = VCCID_ENOENT;
			continue;
		}
		/* The identity certificate (the first) names the card. */
		if (i == 0)
			*has_id = vccid_card_id_derive(cert->derCert.data, cert->derCert.len, id);
		CERT_DestroyCertificate(cert);
	}
	return rv;
}

/* Queues VEVENT_LAST, which ends the event thread of a stopped generation. */
static void queue_last(void)
{
	VEvent *last = vevent_new(VEVENT_LAST, NULL, NULL);

	handoff_release(last);
	vevent_queue_vevent(last);
}

/* True when the thread of @p generation must end at VEVENT_LAST. */
static bool generation_stopped(unsigned long generation)
{
	bool stopped;

	pthread_mutex_lock(&events_lock);
	stopped = generation <= events_stopped;
	pthread_mutex_unlock(&events_lock);
	return stopped;
}

static void *event_loop(void *arg)
{
	unsigned long generation = (unsigned long)(uintptr_t)arg;
	vccid_cacard_emul_event_fn fn;
	void *fn_arg;

	pthread_mutex_lock(&events_lock);
	fn = events_fn;
	fn_arg = events_arg;
	pthread_mutex_unlock(&events_lock);
	for (;;) {
		VEvent *event = vevent_wait_next_vevent();
		VEventType type;

		if (event == NULL)
			continue;
		handoff_acquire(event);
		type = event->type;
		if (type != VEVENT_LAST)
			fn(event, fn_arg);
		vevent_delete(event);
		if (type != VEVENT_LAST)
			continue;
		if (generation_stopped(generation))
			break;
		/* Meant for an older thread still running: pass it on. */
		queue_last();
		sched_yield();
	}
	return NULL;
}

int vccid_cacard_emul_events_start(vccid_cacard_emul_event_fn fn, void *arg)
{
	int rv = VCCID_OK;

	pthread_mutex_lock(&events_lock);
	if (events_running) {
		rv = VCCID_EBUSY;
	} else {
		events_fn = fn;
		events_arg = arg;
		events_generation++;
		if (pthread_create(&events_thread, NULL, event_loop,
				   (void *)(uintptr_t)events_generation) == 0)
			events_running = true;
		else
			rv = VCCID_ENOMEM;
	}
	pthread_mutex_unlock(&events_lock);
	if (rv == VCCID_ENOMEM)
		VCCID_LOG(VCCID_LOG_ERROR, "cannot start the libcacard event thread");
	return rv;
}

void vccid_cacard_emul_events_stop(void)
{
	pthread_t thread;

	pthread_mutex_lock(&events_lock);
	if (!events_running) {
		pthread_mutex_unlock(&events_lock);
		return;
	}
	thread = events_thread;
	events_stopped = events_generation;
	events_running = false;
	pthread_mutex_unlock(&events_lock);
	/* The thread leaves at VEVENT_LAST, after the events queued before it. */
	queue_last();
	pthread_join(thread, NULL);
}
