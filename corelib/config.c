/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reads vccid.conf (GLib key file); every problem is logged with file, group and key, and skipped. */

#include "config.h"

#include <errno.h>
#include <glib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "error.h"
#include "file.h"
#include "log.h"

#define GROUP_MAIN "vccid"
#define GROUP_VSCARD "vscard"
#define GROUP_VPCD "vpcd"
#define PREFIX_READER "reader:"
#define PREFIX_CARD "card:"

/*
 * The largest configuration file read. Real ones are a few KiB (a card takes
 * five lines), so 1 MiB leaves room for thousands of cards while bounding what
 * pcscd reads, holds and parses at start when a wrong file is named.
 */
#define CONFIG_MAX_SIZE (1024 * 1024)

/*
 * A log line ends after about 1000 bytes (corelib/log.c), and names and values
 * come from the file at any length: a message shows at most SHOWN_MAX bytes of
 * each (SHOWN_PATH_MAX of the path, SHOWN_DETAIL_MAX of a GLib message that
 * quotes a line), with "..." in the middle, so the explanation is never cut.
 */
enum { SHOWN_MAX = 96, SHOWN_PATH_MAX = 256, SHOWN_DETAIL_MAX = 400 };

/* @p text whole, or its head and tail around "..." in caller-owned @p buf (max + 4 bytes). */
static const char *shown(char *buf, size_t max, const char *text)
{
	size_t len = strlen(text);
	size_t head = max / 2;
	size_t tail = max - head - 3;

	if (len <= max)
		return text;
	/* Cut on UTF-8 character boundaries. */
	while (head > 0 && ((unsigned char)text[head] & 0xC0) == 0x80)
		head--;
	while (tail > 0 && ((unsigned char)text[len - tail] & 0xC0) == 0x80)
		tail--;
	memcpy(buf, text, head);
	memcpy(buf + head, "...", 3);
	memcpy(buf + head + 3, text + len - tail, tail + 1);
	return buf;
}

/* A file's name or value as a message shows it; the buffer lives until the end of the block. */
#define SHOW(text) shown((char[SHOWN_MAX + 4]){ 0 }, SHOWN_MAX, (text))

struct parse_ctx {
	struct vccid_config *config;
	GKeyFile *file;
};

static void config_error(struct parse_ctx *ctx, const char *group, const char *key,
			 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void config_error(struct parse_ctx *ctx, const char *group, const char *key,
			 const char *fmt, ...)
{
	char problem[512];
	char path_buf[SHOWN_PATH_MAX + 4];
	const char *path;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	ctx->config->n_errors++;
	path = shown(path_buf, SHOWN_PATH_MAX, ctx->config->path);
	if (group && key)
		VCCID_LOG(VCCID_LOG_ERROR, "%s: [%s] %s: %s", path, SHOW(group), SHOW(key), problem);
	else if (group)
		VCCID_LOG(VCCID_LOG_ERROR, "%s: [%s]: %s", path, SHOW(group), problem);
	else
		VCCID_LOG(VCCID_LOG_ERROR, "%s: %s", path, problem);
}

int vccid_log_level_parse(const char *text)
{
	static const char *const names[] = { "critical", "error", "info", "debug", "apdu" };
	char *end;
	long n;
	size_t i;

	if (text == NULL)
		return -1;
	for (i = 0; i < G_N_ELEMENTS(names); i++)
		if (g_ascii_strcasecmp(text, names[i]) == 0)
			return (int)i;
	errno = 0;
	n = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || n < VCCID_LOG_CRITICAL || n > VCCID_LOG_APDU)
		return -1;
	return (int)n;
}

/* A string value, or NULL when absent (absence is not an error here). */
static char *get_string(struct parse_ctx *ctx, const char *group, const char *key)
{
	GError *err = NULL;
	char *value;

	if (!g_key_file_has_key(ctx->file, group, key, NULL))
		return NULL;
	value = g_key_file_get_string(ctx->file, group, key, &err);
	if (value == NULL) {
		config_error(ctx, group, key, "%s", err ? err->message : "unreadable value");
		g_clear_error(&err);
		return NULL;
	}
	g_strstrip(value);
	return value;
}

/* Parses an unsigned integer key into [min, max]; returns false (logged) when bad. */
static bool get_uint(struct parse_ctx *ctx, const char *group, const char *key,
		     unsigned min, unsigned max, unsigned *out)
{
	char *text = get_string(ctx, group, key);
	char *end;
	unsigned long n;
	bool ok = false;

	if (text == NULL)
		return false;
	errno = 0;
	n = strtoul(text, &end, 10);
	if (text[0] == '\0' || text[0] == '-' || errno != 0 || *end != '\0')
		config_error(ctx, group, key, "'%s' is not a number", SHOW(text));
	else if (n < min || n > max)
		config_error(ctx, group, key, "%lu is out of range (%u to %u)", n, min, max);
	else {
		*out = (unsigned)n;
		ok = true;
	}
	g_free(text);
	return ok;
}

static bool get_bool(struct parse_ctx *ctx, const char *group, const char *key, bool fallback)
{
	char *text = get_string(ctx, group, key);
	bool value = fallback;

	if (text == NULL)
		return fallback;
	if (g_ascii_strcasecmp(text, "true") == 0 || strcmp(text, "1") == 0 ||
	    g_ascii_strcasecmp(text, "yes") == 0)
		value = true;
	else if (g_ascii_strcasecmp(text, "false") == 0 || strcmp(text, "0") == 0 ||
		 g_ascii_strcasecmp(text, "no") == 0)
		value = false;
	else
		config_error(ctx, group, key, "'%s' is not true or false; using %s", SHOW(text),
			     fallback ? "true" : "false");
	g_free(text);
	return value;
}

/* Logs keys of @p group that are not in @p known: a typo must not pass silently. */
static void check_keys(struct parse_ctx *ctx, const char *group, const char *const *known)
{
	gchar **keys = g_key_file_get_keys(ctx->file, group, NULL, NULL);
	size_t i, j;

	for (i = 0; keys && keys[i]; i++) {
		bool found = false;

		for (j = 0; known[j]; j++)
			found = found || strcmp(keys[i], known[j]) == 0;
		if (!found)
			config_error(ctx, group, keys[i], "unknown key, ignored");
	}
	g_strfreev(keys);
}

static bool valid_name(const char *name)
{
	size_t len = strlen(name);
	size_t i;

	if (len == 0 || len > VCCID_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!g_ascii_isalnum(name[i]) && strchr("-_.@+", name[i]) == NULL)
			return false;
	return true;
}

static void parse_main(struct parse_ctx *ctx)
{
	static const char *const known[] = { "log-level", "nss-database", NULL };
	struct vccid_config *config = ctx->config;
	char *level;

	if (!g_key_file_has_group(ctx->file, GROUP_MAIN))
		return;
	check_keys(ctx, GROUP_MAIN, known);
	level = get_string(ctx, GROUP_MAIN, "log-level");
	if (level != NULL) {
		int n = vccid_log_level_parse(level);

		if (n < 0)
			config_error(ctx, GROUP_MAIN, "log-level",
				     "'%s' is not one of critical, error, info, debug, apdu or 0-4",
				     SHOW(level));
		else {
			config->log_level = (enum vccid_log_level)n;
			config->log_level_set = true;
		}
		g_free(level);
	}
	config->database = get_string(ctx, GROUP_MAIN, "nss-database");
	if (config->database != NULL && config->database[0] == '\0') {
		config_error(ctx, GROUP_MAIN, "nss-database", "empty value");
		g_clear_pointer(&config->database, g_free);
	}
}

static struct vccid_reader_config *find_reader(struct vccid_config *config, const char *name)
{
	size_t i;

	for (i = 0; i < config->n_readers; i++)
		if (strcmp(config->readers[i].name, name) == 0)
			return &config->readers[i];
	return NULL;
}

const struct vccid_reader_config *vccid_config_find_reader(const struct vccid_config *config,
							   const char *name)
{
	return find_reader((struct vccid_config *)config, name);
}

static void parse_reader(struct parse_ctx *ctx, const char *group)
{
	static const char *const known[] = { "slots", NULL };
	const char *name = group + strlen(PREFIX_READER);
	struct vccid_reader_config *reader;
	unsigned slots = VCCID_DEFAULT_SLOTS;

	if (!valid_name(name)) {
		config_error(ctx, group, NULL,
			     "reader names are 1-%d letters, digits or -_.@+; group ignored",
			     VCCID_NAME_MAX);
		return;
	}
	check_keys(ctx, group, known);
	if (g_key_file_has_key(ctx->file, group, "slots", NULL) &&
	    !get_uint(ctx, group, "slots", 1, VCCID_MAX_SLOTS, &slots))
		slots = VCCID_DEFAULT_SLOTS;
	reader = find_reader(ctx->config, name);
	if (reader == NULL) {
		ctx->config->readers = g_renew(struct vccid_reader_config, ctx->config->readers,
					       ctx->config->n_readers + 1);
		reader = &ctx->config->readers[ctx->config->n_readers++];
		reader->name = g_strdup(name);
	}
	reader->slots = slots;
	reader->declared = true;
}

static const struct vccid_card_config *card_in_slot(const struct vccid_config *config,
						    const char *reader, unsigned slot)
{
	size_t i;

	for (i = 0; i < config->n_cards; i++)
		if (config->cards[i].slot == slot && strcmp(config->cards[i].reader, reader) == 0)
			return &config->cards[i];
	return NULL;
}

static bool parse_certificates(struct parse_ctx *ctx, const char *group,
			       struct vccid_card_config *card)
{
	char *list = get_string(ctx, group, "certificates");
	gchar **parts;
	size_t n = 0;
	size_t i;
	bool ok = true;

	if (list == NULL) {
		config_error(ctx, group, "certificates",
			     "missing: give %d NSS nicknames (identity;signing;encryption)",
			     VCCID_CARD_CERTS);
		return false;
	}
	parts = g_strsplit(list, ";", -1);
	for (i = 0; parts[i]; i++) {
		g_strstrip(parts[i]);
		if (parts[i][0] == '\0' && parts[i + 1] == NULL && i > 0)
			break;   /* GLib lists may end with ';' */
		if (parts[i][0] == '\0' || strpbrk(parts[i], ",()") != NULL) {
			config_error(ctx, group, "certificates",
				     "nickname %zu is empty or contains one of ,()", i + 1);
			ok = false;
			break;
		}
		n++;
	}
	if (ok && n != VCCID_CARD_CERTS) {
		config_error(ctx, group, "certificates", "%zu nicknames given, %d needed",
			     n, VCCID_CARD_CERTS);
		ok = false;
	}
	for (i = 0; ok && i < VCCID_CARD_CERTS; i++)
		card->certs[i] = g_strdup(parts[i]);
	g_strfreev(parts);
	g_free(list);
	return ok;
}

static void card_config_clear(struct vccid_card_config *card)
{
	size_t i;

	g_free(card->name);
	g_free(card->reader);
	g_free(card->database);
	for (i = 0; i < VCCID_CARD_CERTS; i++)
		g_free(card->certs[i]);
	memset(card, 0, sizeof(*card));
}

static void parse_card(struct parse_ctx *ctx, const char *group)
{
	static const char *const known[] = { "reader", "slot", "certificates", "nss-database",
					     "inserted", NULL };
	struct vccid_config *config = ctx->config;
	const char *name = group + strlen(PREFIX_CARD);
	struct vccid_card_config card;
	const struct vccid_reader_config *reader;
	const struct vccid_card_config *other;
	bool ok = true;

	memset(&card, 0, sizeof(card));
	if (!valid_name(name)) {
		config_error(ctx, group, NULL,
			     "card names are 1-%d letters, digits or -_.@+; card ignored",
			     VCCID_NAME_MAX);
		return;
	}
	check_keys(ctx, group, known);
	card.name = g_strdup(name);
	card.reader = get_string(ctx, group, "reader");
	if (card.reader == NULL)
		card.reader = g_strdup(VCCID_DEFAULT_READER);
	reader = find_reader(config, card.reader);
	if (reader == NULL) {
		config_error(ctx, group, "reader", "no [reader:%s] group; card ignored",
			     SHOW(card.reader));
		ok = false;
	}
	if (!g_key_file_has_key(ctx->file, group, "slot", NULL)) {
		config_error(ctx, group, "slot", "missing; card ignored");
		ok = false;
	} else if (reader != NULL &&
		   !get_uint(ctx, group, "slot", 0, reader->slots - 1, &card.slot)) {
		ok = false;
	}
	if (ok && (other = card_in_slot(config, card.reader, card.slot)) != NULL) {
		config_error(ctx, group, "slot", "slot %u of reader %s already holds card %s",
			     card.slot, card.reader, other->name);
		ok = false;
	}
	if (!parse_certificates(ctx, group, &card))
		ok = false;
	card.database = get_string(ctx, group, "nss-database");
	if (card.database == NULL && config->database != NULL)
		card.database = g_strdup(config->database);
	if (card.database == NULL || card.database[0] == '\0') {
		config_error(ctx, group, "nss-database",
			     "missing here and in [vccid]; card ignored");
		ok = false;
	}
	card.inserted = get_bool(ctx, group, "inserted", true);
	if (!ok) {
		card_config_clear(&card);
		return;
	}
	config->cards = g_renew(struct vccid_card_config, config->cards, config->n_cards + 1);
	config->cards[config->n_cards++] = card;
}

/*
 * A TCP address (corelib/addr.h) with a port from 1024: the listener runs inside
 * pcscd, and vccid keeps it off the privileged ports. NULL or the reason.
 */
static const char *check_listen(const char *text)
{
	struct vccid_addr addr;
	const char *why = NULL;

	if (vccid_addr_parse(text, 0, &addr, &why) != VCCID_OK)
		return why;
	if (addr.kind == VCCID_ADDR_UNIX)
		return "a unix socket goes in unix-socket";
	if (addr.port < 1024)
		return "the port must be from 1024 to 65535";
	return NULL;
}

/* A list of ';'-separated items of @p key (spaces around each dropped); NULL when absent. */
static char **get_list(struct parse_ctx *ctx, const char *group, const char *key)
{
	char *text = get_string(ctx, group, key);
	gchar **items;
	size_t i, n = 0;

	if (text == NULL)
		return NULL;
	items = g_strsplit(text, ";", -1);
	for (i = 0; items[i]; i++) {
		g_strstrip(items[i]);
		if (items[i][0] == '\0')
			g_free(items[i]);
		else
			items[n++] = items[i];
	}
	items[n] = NULL;
	g_free(text);
	return items;
}

/* A "readers" key: reader names separated by ';', each checked; NULL when absent. */
static char **get_reader_list(struct parse_ctx *ctx, const char *group)
{
	char **names = get_list(ctx, group, "readers");
	size_t i;

	for (i = 0; names != NULL && names[i]; i++)
		if (find_reader(ctx->config, names[i]) == NULL)
			config_error(ctx, group, "readers", "no [reader:%s] group", SHOW(names[i]));
	return names;
}

/*
 * A [vscard] address key: "HOST:PORT" (checked), NULL for "none" or an empty value or a
 * bad address (logged: "no WHAT listener"), @p fallback (copied, may be NULL) when absent.
 */
static char *get_listen(struct parse_ctx *ctx, const char *key, const char *fallback,
			const char *what)
{
	char *text = get_string(ctx, GROUP_VSCARD, key);
	const char *why;

	if (text == NULL)
		return fallback != NULL ? g_strdup(fallback) : NULL;
	if (g_ascii_strcasecmp(text, "none") == 0 || text[0] == '\0') {
		g_free(text);
		return NULL;
	}
	if ((why = check_listen(text)) != NULL) {
		config_error(ctx, GROUP_VSCARD, key, "'%s' is not HOST:PORT with a port from 1024 "
			     "to 65535 (%s); no %s listener", SHOW(text), why, what);
		g_free(text);
		return NULL;
	}
	return text;
}

/* The TLS endpoint of [vscard]: an address, credentials, an allow-list of subjects. */
static void parse_vscard_tls(struct parse_ctx *ctx, struct vccid_vscard_config *vs)
{
	bool creds;

	vs->tls_dir = get_string(ctx, GROUP_VSCARD, "tls-dir");
	vs->tls_cert = get_string(ctx, GROUP_VSCARD, "tls-cert");
	vs->tls_key = get_string(ctx, GROUP_VSCARD, "tls-key");
	vs->tls_ca = get_string(ctx, GROUP_VSCARD, "tls-ca");
	vs->tls_subjects = get_list(ctx, GROUP_VSCARD, "tls-subjects");
	creds = vs->tls_dir != NULL || vs->tls_cert != NULL || vs->tls_key != NULL;
	/* Credentials alone open the TLS endpoint on its loopback default. */
	vs->tls_listen = get_listen(ctx, "tls-listen", creds ? VCCID_VSCARD_DEFAULT_TLS_LISTEN : NULL,
				    "TLS");
	if (vs->tls_listen != NULL && !creds) {
		config_error(ctx, GROUP_VSCARD, "tls-listen", "needs tls-dir, or tls-cert and "
			     "tls-key; no TLS listener");
		g_clear_pointer(&vs->tls_listen, g_free);
	}
}

static void parse_vscard(struct parse_ctx *ctx)
{
	static const char *const known[] = { "listen", "unix-socket", "unix-owner", "unix-mode",
					     "timeout-ms", "handshake-timeout-ms", "idle-timeout-ms",
					     "max-connections", "max-pending", "readers",
					     "tls-listen", "tls-dir", "tls-cert", "tls-key", "tls-ca",
					     "tls-subjects", NULL };
	struct vccid_vscard_config *vs = &ctx->config->vscard;
	char *text;
	unsigned value;

	vs->unix_mode = 0660;
	vs->timeout_ms = 5000;
	vs->handshake_timeout_ms = 5000;
	vs->idle_timeout_ms = 30000;
	vs->max_connections = 16;
	vs->max_pending = 4;
	if (!g_key_file_has_group(ctx->file, GROUP_VSCARD))
		return;
	vs->enabled = true;
	check_keys(ctx, GROUP_VSCARD, known);
	vs->unix_socket = get_string(ctx, GROUP_VSCARD, "unix-socket");
	if (vs->unix_socket != NULL && vs->unix_socket[0] != '/') {
		config_error(ctx, GROUP_VSCARD, "unix-socket", "'%s' is not an absolute path",
			     SHOW(vs->unix_socket));
		g_clear_pointer(&vs->unix_socket, g_free);
	}
	parse_vscard_tls(ctx, vs);
	/* The plaintext default only when nothing else is asked for. */
	vs->listen = get_listen(ctx, "listen", vs->unix_socket == NULL && vs->tls_listen == NULL
				? VCCID_VSCARD_DEFAULT_LISTEN : NULL, "TCP");
	vs->unix_owner = get_string(ctx, GROUP_VSCARD, "unix-owner");
	text = get_string(ctx, GROUP_VSCARD, "unix-mode");
	if (text != NULL) {
		char *end;
		unsigned long mode = strtoul(text, &end, 8);

		if (text[0] == '\0' || *end != '\0' || mode > 0777)
			config_error(ctx, GROUP_VSCARD, "unix-mode", "'%s' is not an octal mode",
				     SHOW(text));
		else
			vs->unix_mode = (unsigned)mode;
		g_free(text);
	}
	if (get_uint(ctx, GROUP_VSCARD, "timeout-ms", 100, 600000, &value))
		vs->timeout_ms = value;
	if (get_uint(ctx, GROUP_VSCARD, "handshake-timeout-ms", 100, 600000, &value))
		vs->handshake_timeout_ms = value;
	if (get_uint(ctx, GROUP_VSCARD, "idle-timeout-ms", 100, 3600000, &value))
		vs->idle_timeout_ms = value;
	if (get_uint(ctx, GROUP_VSCARD, "max-connections", 1, 1024, &value))
		vs->max_connections = value;
	if (get_uint(ctx, GROUP_VSCARD, "max-pending", 1, 1024, &value))
		vs->max_pending = value;
	vs->readers = get_reader_list(ctx, GROUP_VSCARD);
}

bool vccid_config_vscard_reader(const struct vccid_config *config, const char *name)
{
	size_t i;

	if (!config->vscard.enabled)
		return false;
	if (config->vscard.readers == NULL)
		return true;
	for (i = 0; config->vscard.readers[i]; i++)
		if (strcmp(config->vscard.readers[i], name) == 0)
			return true;
	return false;
}

/* A host to listen on, without a port (the ports come from "port"). NULL or the reason. */
static const char *check_vpcd_listen(const char *text)
{
	struct vccid_addr addr;
	const char *why = NULL;

	if (vccid_addr_parse(text, 0, &addr, NULL) == VCCID_OK)
		return addr.kind == VCCID_ADDR_UNIX ? "vpcd speaks TCP only"
						    : "a host only: the port goes in port";
	if (vccid_addr_parse(text, VCCID_VPCD_DEFAULT_PORT, &addr, &why) != VCCID_OK)
		return why;
	return addr.kind == VCCID_ADDR_UNIX ? "vpcd speaks TCP only" : NULL;
}

static void parse_vpcd(struct parse_ctx *ctx)
{
	static const char *const known[] = { "readers", "listen", "port", "timeout-ms",
					     "max-connections", NULL };
	struct vccid_vpcd_config *vp = &ctx->config->vpcd;
	const char *why;
	char *text;
	unsigned value;
	size_t i;

	vp->port = VCCID_VPCD_DEFAULT_PORT;
	vp->timeout_ms = 5000;
	vp->max_connections = 16;
	if (!g_key_file_has_group(ctx->file, GROUP_VPCD))
		return;
	vp->enabled = true;
	check_keys(ctx, GROUP_VPCD, known);
	text = get_string(ctx, GROUP_VPCD, "listen");
	if (text != NULL && (why = check_vpcd_listen(text)) != NULL) {
		config_error(ctx, GROUP_VPCD, "listen", "'%s' is not a host to listen on (%s); "
			     "using %s", SHOW(text), why, VCCID_VPCD_DEFAULT_HOST);
		g_clear_pointer(&text, g_free);
	}
	vp->listen = text != NULL ? text : g_strdup(VCCID_VPCD_DEFAULT_HOST);
	if (get_uint(ctx, GROUP_VPCD, "port", 1024, 65535, &value))
		vp->port = value;
	if (get_uint(ctx, GROUP_VPCD, "timeout-ms", 100, 600000, &value))
		vp->timeout_ms = value;
	if (get_uint(ctx, GROUP_VPCD, "max-connections", 1, 1024, &value))
		vp->max_connections = value;
	vp->readers = get_reader_list(ctx, GROUP_VPCD);
	for (i = 0; vp->readers != NULL && vp->readers[i]; i++)
		if (ctx->config->vscard.readers != NULL &&
		    vccid_config_vscard_reader(ctx->config, vp->readers[i]))
			config_error(ctx, GROUP_VPCD, "readers", "reader %s is in [vscard] readers "
				     "too; its slots stay with VSCard", SHOW(vp->readers[i]));
}

bool vccid_config_vpcd_reader(const struct vccid_config *config, const char *name)
{
	size_t i;

	if (!config->vpcd.enabled || vccid_config_vscard_reader(config, name))
		return false;
	if (config->vpcd.readers == NULL)
		return true;
	for (i = 0; config->vpcd.readers[i]; i++)
		if (strcmp(config->vpcd.readers[i], name) == 0)
			return true;
	return false;
}

/* The @p n th vpcd reader in port order (see config.h), or NULL. */
static const struct vccid_reader_config *vpcd_reader_at(const struct vccid_config *config,
							size_t n)
{
	const char *const *list = (const char *const *)config->vpcd.readers;
	size_t i, seen = 0;
	int pass;

	if (list != NULL) {
		for (i = 0; list[i] != NULL; i++)
			if (vccid_config_vpcd_reader(config, list[i]) &&
			    vccid_config_find_reader(config, list[i]) != NULL && seen++ == n)
				return vccid_config_find_reader(config, list[i]);
		return NULL;
	}
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < config->n_readers; i++)
			if (config->readers[i].declared == (pass == 0) &&
			    vccid_config_vpcd_reader(config, config->readers[i].name) &&
			    seen++ == n)
				return &config->readers[i];
	return NULL;
}

unsigned vccid_config_vpcd_port(const struct vccid_config *config, const char *name,
				unsigned slot)
{
	const struct vccid_reader_config *r;
	unsigned base = config->vpcd.port;
	size_t n;

	for (n = 0; (r = vpcd_reader_at(config, n)) != NULL; n++) {
		if (strcmp(r->name, name) == 0)
			return slot < r->slots && base + slot <= 65535 ? base + slot : 0;
		base += r->slots;
	}
	return 0;
}

static void add_default_reader(struct vccid_config *config)
{
	config->readers = g_new0(struct vccid_reader_config, 1);
	config->readers[0].name = g_strdup(VCCID_DEFAULT_READER);
	config->readers[0].slots = VCCID_DEFAULT_SLOTS;
	config->n_readers = 1;
}

static void parse_file(struct parse_ctx *ctx)
{
	gchar **groups = g_key_file_get_groups(ctx->file, NULL);
	size_t i;

	parse_main(ctx);
	/* Readers first, so cards can check their slot against them. */
	for (i = 0; groups[i]; i++)
		if (g_str_has_prefix(groups[i], PREFIX_READER))
			parse_reader(ctx, groups[i]);
	parse_vscard(ctx);
	parse_vpcd(ctx);
	for (i = 0; groups[i]; i++) {
		if (g_str_has_prefix(groups[i], PREFIX_CARD))
			parse_card(ctx, groups[i]);
		else if (strcmp(groups[i], GROUP_MAIN) != 0 && strcmp(groups[i], GROUP_VSCARD) != 0 &&
			 strcmp(groups[i], GROUP_VPCD) != 0 &&
			 !g_str_has_prefix(groups[i], PREFIX_READER))
			config_error(ctx, groups[i], NULL, "unknown group, ignored");
	}
	g_strfreev(groups);
}

static struct vccid_config *config_new(const char *name)
{
	struct vccid_config *config = g_new0(struct vccid_config, 1);

	config->path = g_strdup(name);
	config->log_level = VCCID_LOG_ERROR;
	add_default_reader(config);
	return config;
}

static struct vccid_config *config_load(struct vccid_config *config, GKeyFile *file,
					GError *err)
{
	struct parse_ctx ctx = { config, file };
	char detail[SHOWN_DETAIL_MAX + 4];

	if (err != NULL) {
		/* GLib quotes the offending line whole; its explanation follows it. */
		config_error(&ctx, NULL, NULL, "cannot be read: %s",
			     shown(detail, SHOWN_DETAIL_MAX, err->message));
		g_error_free(err);
	} else {
		parse_file(&ctx);
	}
	g_key_file_free(file);
	return config;
}

struct vccid_config *vccid_config_load(const char *path)
{
	struct vccid_config *config = config_new(path ? path : "(no file)");
	GKeyFile *file = g_key_file_new();
	GError *err = NULL;
	char why[VCCID_FILE_WHY_SIZE];
	char *data = NULL;
	size_t len = 0;
	int rv;

	if (path == NULL || path[0] == '\0') {
		g_set_error(&err, G_FILE_ERROR, G_FILE_ERROR_NOENT, "no configuration file given");
	} else {
		/* Not g_key_file_load_from_file(): its open() blocks on a FIFO, hanging pcscd. */
		rv = vccid_file_read_regular(path, CONFIG_MAX_SIZE, &data, &len, why, sizeof(why));
		if (rv != VCCID_OK)
			g_set_error(&err, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s",
				    why[0] != '\0' ? why : vccid_strerror(rv));
		else
			g_key_file_load_from_data(file, data, len, G_KEY_FILE_NONE, &err);
		free(data);
	}
	return config_load(config, file, err);
}

struct vccid_config *vccid_config_load_data(const char *data, size_t len, const char *name)
{
	struct vccid_config *config = config_new(name ? name : "(data)");
	GKeyFile *file = g_key_file_new();
	GError *err = NULL;

	g_key_file_load_from_data(file, data, len, G_KEY_FILE_NONE, &err);
	return config_load(config, file, err);
}

void vccid_config_free(struct vccid_config *config)
{
	size_t i;

	if (config == NULL)
		return;
	for (i = 0; i < config->n_readers; i++)
		g_free(config->readers[i].name);
	g_free(config->readers);
	for (i = 0; i < config->n_cards; i++)
		card_config_clear(&config->cards[i]);
	g_free(config->cards);
	g_free(config->vscard.listen);
	g_free(config->vscard.unix_socket);
	g_free(config->vscard.unix_owner);
	g_strfreev(config->vscard.readers);
	g_free(config->vscard.tls_listen);
	g_free(config->vscard.tls_dir);
	g_free(config->vscard.tls_cert);
	g_free(config->vscard.tls_key);
	g_free(config->vscard.tls_ca);
	g_strfreev(config->vscard.tls_subjects);
	g_free(config->vpcd.listen);
	g_strfreev(config->vpcd.readers);
	g_free(config->database);
	g_free(config->path);
	g_free(config);
}
