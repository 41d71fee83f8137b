/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vccid's configuration file (GLib key file): readers, slots and the cards that sit in them. */
#ifndef VCCID_CONFIG_H
#define VCCID_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

#define VCCID_DEFAULT_READER "default"
#define VCCID_DEFAULT_SLOTS 4
#define VCCID_MAX_SLOTS 16
#define VCCID_CARD_CERTS 3           /* CAC: identity, signing, encryption */
#define VCCID_NAME_MAX 63            /* reader and card names */

struct vccid_reader_config {
	char *name;
	unsigned slots;
	bool declared;               /* a [reader:NAME] group; false for the implicit default */
};

struct vccid_card_config {
	char *name;                  /* from [card:NAME] */
	char *reader;                /* reader name, default "default" */
	unsigned slot;
	char *database;              /* NSS database, e.g. "sql:/var/lib/vccid/nssdb" */
	char *certs[VCCID_CARD_CERTS];
	bool inserted;               /* in the slot when the reader starts */
};

#define VCCID_VSCARD_DEFAULT_LISTEN "127.0.0.1:35964"

/* The VSCard listener ([vscard] group); enabled when the group exists. */
struct vccid_vscard_config {
	bool enabled;
	char *listen;                /* "HOST:PORT" or NULL for no TCP listener */
	char *unix_socket;           /* path or NULL */
	char *unix_owner;            /* "USER[:GROUP]" or NULL */
	unsigned unix_mode;          /* default 0660 */
	unsigned timeout_ms;         /* APDU answer timeout, default 5000 */
	unsigned handshake_timeout_ms;   /* default 5000 */
	unsigned idle_timeout_ms;    /* a connection with no reader is closed after it, 30000 */
	unsigned max_connections;    /* default 16 */
	unsigned max_pending;        /* connections still in their handshake, default 4 */
	char **readers;              /* NULL-terminated reader names, or NULL for all */
	/* The TLS endpoint (net/tls.h); on when tls_listen is set. */
	char *tls_listen;            /* "HOST:PORT" or NULL */
	char *tls_dir;               /* QEMU's x509 folder layout, or NULL */
	char *tls_cert, *tls_key, *tls_ca;   /* files named one by one (win over tls_dir) */
	char **tls_subjects;         /* NULL-terminated subject patterns, or NULL for any */
};

#define VCCID_VSCARD_DEFAULT_TLS_LISTEN "127.0.0.1:35965"

#define VCCID_VPCD_DEFAULT_HOST "127.0.0.1"
#define VCCID_VPCD_DEFAULT_PORT 35963   /* vsmartcard's VPCDPORT, 0x8C7B */

/* vpcd card emulators ([vpcd] group; enabled when the group exists): slot N of the
 * first vpcd reader on port + N, the next reader's slots after the first's, in the
 * order of [vpcd] readers, else of the [reader:...] groups (an undeclared default
 * reader last). */
struct vccid_vpcd_config {
	bool enabled;
	char *listen;                /* host without port, default 127.0.0.1 */
	unsigned port;               /* base port, default 35963 */
	unsigned timeout_ms;         /* first ATR and each exchange, default 5000 */
	unsigned max_connections;    /* default 16 */
	char **readers;              /* NULL-terminated reader names, or NULL for all */
};

struct vccid_config {
	char *path;
	enum vccid_log_level log_level;
	bool log_level_set;          /* log-level given in the file */
	char *database;              /* [vccid] nss-database, may be NULL */
	struct vccid_reader_config *readers;
	size_t n_readers;
	struct vccid_card_config *cards;
	size_t n_cards;
	struct vccid_vscard_config vscard;
	struct vccid_vpcd_config vpcd;
	size_t n_errors;             /* problems found; each was logged */
};

/**
 * Loads @p path. Never fails for a bad file: every problem is logged at
 * error level naming the file, group, key and problem, counted in
 * n_errors, and the offending item is left out. Returns NULL only when
 * memory runs out. Free with vccid_config_free().
 */
struct vccid_config *vccid_config_load(const char *path);
/** Same, from @p len bytes of @p data; @p name is used in messages. */
struct vccid_config *vccid_config_load_data(const char *data, size_t len, const char *name);
void vccid_config_free(struct vccid_config *config);

/** The reader called @p name, or NULL. */
const struct vccid_reader_config *vccid_config_find_reader(const struct vccid_config *config,
							   const char *name);
/** True when the VSCard listener may put remote readers into reader @p name. */
bool vccid_config_vscard_reader(const struct vccid_config *config, const char *name);
/** True when reader @p name takes vpcd cards ([vpcd] readers, never a VSCard reader). */
bool vccid_config_vpcd_reader(const struct vccid_config *config, const char *name);
/** The vpcd port of slot @p slot of reader @p name; 0 when it has none (or past 65535). */
unsigned vccid_config_vpcd_port(const struct vccid_config *config, const char *name,
				unsigned slot);
/** Parses a log level name or number ("error", "2", ...); -1 if unknown. */
int vccid_log_level_parse(const char *text);

#endif
