/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcacard's process-wide setup, shared by the driver backend and vccid-share. */
#ifndef VCCID_CACARD_EMUL_H
#define VCCID_CACARD_EMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "card-id.h"

/* libcacard's event (eventt.h); named here so that users of this header need
 * not include libcacard.h, whose vscard_common.h clashes with our proto.h. */
struct VEventStruct;

/* Longest reader name or nickname put into libcacard's options string. */
#define VCCID_CACARD_EMUL_TOKEN_MAX 200

/** One soft card: a libcacard reader made of certificates of the NSS database. */
struct vccid_cacard_emul_card {
	const char *name;              /* libcacard reader name */
	const char *const *certs;      /* nicknames, the identity certificate first */
	size_t n_certs;
};

/** Everything vcard_emul_init gets, once per process. */
struct vccid_cacard_emul_setup {
	/* "sql:DIR", "dbm:DIR", a plain DIR, another NSS scheme (passed unchecked),
	 * or NULL for libcacard's default database (hardware tokens only). */
	const char *database;
	bool use_hw;                   /* share hardware tokens NSS sees (use_hw=yes) */
	/* Inside pcscd: refuse a database that makes NSS load PKCS#11 modules. */
	bool private_database;
	const struct vccid_cacard_emul_card *cards;
	size_t n_cards;
};

/**
 * Why @p token (a reader name or nickname) cannot go into libcacard's
 * options string, whose parser has no quoting: a static English phrase
 * ("must not contain ...") or NULL when it can.
 */
const char *vccid_cacard_emul_token_problem(const char *token);

/**
 * Builds libcacard's options string for @p setup into caller-owned @p buf of
 * @p size bytes. Returns 0, VCCID_EINVAL for a token or database path the
 * parser would misread (logged), or VCCID_ENOSPC when it does not fit.
 */
int vccid_cacard_emul_options(const struct vccid_cacard_emul_setup *setup, char *buf,
			      size_t size);

/**
 * Checks @p database before NSS opens it: no quote or newline, its directory
 * is a directory (by stat: opening a FIFO would block the caller), and with
 * @p private_only no pkcs11.txt that loads modules. Returns 0 or
 * VCCID_ECONFIG, with the refusal logged.
 */
int vccid_cacard_emul_check_database(const char *database, bool private_only);

/**
 * Initialises libcacard with @p setup (checks the database, builds the
 * options, calls vcard_emul_init) and routes GLib's messages to vccid's log.
 * libcacard can be initialised once per process: the first call decides,
 * whatever its result, unless the setup is refused before libcacard sees it.
 * Returns 0, VCCID_ECONFIG (refused, libcacard untouched), VCCID_EIO
 * (vcard_emul_init failed) or VCCID_EBUSY (already initialised).
 */
int vccid_cacard_emul_init(const struct vccid_cacard_emul_setup *setup);
/** True once vcard_emul_init was called in this process. */
bool vccid_cacard_emul_initialised(void);

/**
 * Checks that every nickname of @p card names a certificate of the NSS
 * database (libcacard drops a missing one silently), logging each missing
 * one, and derives the card's distinct identifier from the first. Returns 0
 * or VCCID_ENOENT; *has_id tells whether @p id was set.
 */
int vccid_cacard_emul_check_card(const struct vccid_cacard_emul_card *card,
				 const char *database, uint8_t id[VCCID_CARD_ID_BYTES],
				 bool *has_id);

/**
 * Called on the event thread for each libcacard event but VEVENT_LAST. The
 * event is deleted after the call: take references to keep its reader or card.
 */
typedef void (*vccid_cacard_emul_event_fn)(struct VEventStruct *event, void *arg);

/** Starts the thread that waits on libcacard's event queue. 0 or VCCID_EBUSY/VCCID_ENOMEM. */
int vccid_cacard_emul_events_start(vccid_cacard_emul_event_fn fn, void *arg);
/** Stops it (a VEVENT_LAST event) and joins it; nothing if not running. */
void vccid_cacard_emul_events_stop(void);

#endif
