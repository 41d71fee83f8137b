/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of the configuration loader: a full valid file, every error path and its message. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>

#include "corelib/config.h"
#include "corelib/log.h"
#include "tests/unit/table.h"

#define FILE_NAME "/etc/vccid/unit-test.conf"
#define MAX_MSGS 4

/* Every line the core logged since the last reset, one per '\n'. */
static GString *log_text;
static size_t log_lines;

static void capture_sink(enum vccid_log_level level, const char *line)
{
	(void)level;
	g_string_append(log_text, line);
	g_string_append_c(log_text, '\n');
	log_lines++;
}

static int setup(void **state)
{
	(void)state;
	g_string_truncate(log_text, 0);
	log_lines = 0;
	return 0;
}

/* Fails unless the captured log has a line with "FILE: MSG". */
static void assert_logged(const char *file, const char *msg)
{
	char *needle = g_strdup_printf("%s: %s", file, msg);
	bool found = strstr(log_text->str, needle) != NULL;

	if (!found)
		fail_msg("no log line contains \"%s\"; log:\n%s", needle, log_text->str);
	g_free(needle);
}

static struct vccid_config *load(const char *text)
{
	struct vccid_config *config = vccid_config_load_data(text, strlen(text), FILE_NAME);

	assert_non_null(config);
	return config;
}

#define MAIN "[vccid]\nnss-database = sql:/var/lib/vccid/nssdb\n"
#define CERTS "certificates = id;sign;enc\n"
#define CARD_A "[card:a]\nslot = 0\n" CERTS

struct config_case {
	const char *name;
	const char *text;
	size_t n_errors;
	size_t n_cards;
	/* What follows "FILE: " in each expected message: "[group] key:" or "[group]:". */
	const char *msgs[MAX_MSGS];
	const char *kept;   /* names of the cards kept, in order, space-separated */
};

static const struct config_case cases[] = {
	{ "empty file", "", 0, 0, { NULL }, NULL },
	{ "key-file syntax error", "this is not a key file\n", 1, 0, { "cannot be read" }, NULL },
	{ "key-file group syntax error", "[vccid\nlog-level = info\n", 1, 0,
	  { "cannot be read" }, NULL },
	{ "bad log-level", "[vccid]\nlog-level = verbose\n", 1, 0, { "[vccid] log-level:" }, NULL },
	{ "log-level 5", "[vccid]\nlog-level = 5\n", 1, 0, { "[vccid] log-level:" }, NULL },
	{ "empty nss-database", "[vccid]\nnss-database =\n", 1, 0,
	  { "[vccid] nss-database:" }, NULL },
	{ "unknown key in [vccid]", MAIN "colour = blue\n", 1, 0, { "[vccid] colour:" }, NULL },
	{ "reader name with a space", "[reader:bad name]\n", 1, 0, { "[reader:bad name]:" }, NULL },
	{ "reader name with a slash", "[reader:a/b]\nslots = 2\n", 1, 0,
	  { "[reader:a/b]:" }, NULL },
	{ "empty reader name", "[reader:]\n", 1, 0, { "[reader:]:" }, NULL },
	{ "reader name of 64 characters",
	  "[reader:0123456789012345678901234567890123456789012345678901234567890123]\n", 1, 0,
	  { "[reader:0123456789012345678901234567890123456789012345678901234567890123]:" }, NULL },
	{ "slots 0", "[reader:r]\nslots = 0\n", 1, 0, { "[reader:r] slots:" }, NULL },
	{ "slots 17", "[reader:r]\nslots = 17\n", 1, 0, { "[reader:r] slots:" }, NULL },
	{ "slots abc", "[reader:r]\nslots = abc\n", 1, 0, { "[reader:r] slots:" }, NULL },
	{ "slots -1", "[reader:r]\nslots = -1\n", 1, 0, { "[reader:r] slots:" }, NULL },
	{ "slots 2x", "[reader:r]\nslots = 2x\n", 1, 0, { "[reader:r] slots:" }, NULL },
	{ "slots empty", "[reader:r]\nslots =\n", 1, 0, { "[reader:r] slots:" }, NULL },
	{ "slots huge", "[reader:r]\nslots = 99999999999999999999999\n", 1, 0,
	  { "[reader:r] slots:" }, NULL },
	{ "unknown key in a reader", "[reader:r]\nslot = 2\n", 1, 0, { "[reader:r] slot:" }, NULL },
	{ "card without slot", MAIN "[card:a]\n" CERTS, 1, 0, { "[card:a] slot:" }, NULL },
	{ "card slot out of range", MAIN "[card:a]\nslot = 4\n" CERTS, 1, 0,
	  { "[card:a] slot:" }, NULL },
	{ "card slot abc", MAIN "[card:a]\nslot = abc\n" CERTS, 1, 0, { "[card:a] slot:" }, NULL },
	{ "card slot -1", MAIN "[card:a]\nslot = -1\n" CERTS, 1, 0, { "[card:a] slot:" }, NULL },
	{ "card slot beyond a 2-slot reader",
	  MAIN "[reader:default]\nslots = 2\n[card:a]\nslot = 2\n" CERTS, 1, 0,
	  { "[card:a] slot:" }, NULL },
	{ "card in an unknown reader", MAIN "[card:a]\nreader = nope\nslot = 0\n" CERTS, 1, 0,
	  { "[card:a] reader:" }, NULL },
	{ "card in a reader whose group was refused",
	  MAIN "[reader:bad name]\n[card:a]\nreader = bad name\nslot = 0\n" CERTS, 2, 0,
	  { "[reader:bad name]:", "[card:a] reader:" }, NULL },
	{ "two cards in one slot", MAIN CARD_A "[card:b]\nslot = 0\n" CERTS, 1, 1,
	  { "[card:b] slot:" }, "a" },
	{ "certificates missing", MAIN "[card:a]\nslot = 0\n", 1, 0,
	  { "[card:a] certificates:" }, NULL },
	{ "certificates empty", MAIN "[card:a]\nslot = 0\ncertificates =\n", 1, 0,
	  { "[card:a] certificates:" }, NULL },
	{ "2 nicknames", MAIN "[card:a]\nslot = 0\ncertificates = id;sign\n", 1, 0,
	  { "[card:a] certificates:" }, NULL },
	{ "4 nicknames", MAIN "[card:a]\nslot = 0\ncertificates = id;sign;enc;more\n", 1, 0,
	  { "[card:a] certificates:" }, NULL },
	{ "empty nickname", MAIN "[card:a]\nslot = 0\ncertificates = id;;enc\n", 1, 0,
	  { "[card:a] certificates:" }, NULL },
	{ "blank first nickname", MAIN "[card:a]\nslot = 0\ncertificates = ;sign;enc\n", 1, 0,
	  { "[card:a] certificates:" }, NULL },
	{ "nickname with a comma", MAIN "[card:a]\nslot = 0\ncertificates = id,x;sign;enc\n", 1,
	  0, { "[card:a] certificates:" }, NULL },
	{ "nickname with a parenthesis", MAIN "[card:a]\nslot = 0\ncertificates = id;si(gn;enc\n",
	  1, 0, { "[card:a] certificates:" }, NULL },
	{ "no nss-database anywhere", CARD_A, 1, 0, { "[card:a] nss-database:" }, NULL },
	{ "empty card nss-database", MAIN CARD_A "nss-database =\n", 1, 0,
	  { "[card:a] nss-database:" }, NULL },
	{ "inserted = maybe keeps the card, inserted", MAIN CARD_A "inserted = maybe\n", 1, 1,
	  { "[card:a] inserted:" }, "a" },
	{ "unknown key in a card keeps the card", MAIN CARD_A "sloth = 1\n", 1, 1,
	  { "[card:a] sloth:" }, "a" },
	{ "unknown group", MAIN "[readers]\nslots = 2\n", 1, 0, { "[readers]:" }, NULL },
	{ "card name invalid", MAIN "[card:a b]\nslot = 0\n" CERTS, 1, 0, { "[card:a b]:" }, NULL },
	{ "card with every problem",
	  "[card:a]\nreader = nope\nslot = 0\ncertificates = x\ninserted = perhaps\nfoo = 1\n", 5,
	  0, { "[card:a] reader:", "[card:a] certificates:", "[card:a] nss-database:",
	       "[card:a] inserted:" }, NULL },
	{ "vscard listen without port", "[vscard]\nlisten = 127.0.0.1\n", 1, 0,
	  { "[vscard] listen:" }, NULL },
	{ "vscard privileged port", "[vscard]\nlisten = 127.0.0.1:80\n", 1, 0,
	  { "[vscard] listen:" }, NULL },
	{ "vscard port 70000", "[vscard]\nlisten = 127.0.0.1:70000\n", 1, 0,
	  { "[vscard] listen:" }, NULL },
	{ "vscard relative unix-socket", "[vscard]\nunix-socket = run/s\n", 1, 0,
	  { "[vscard] unix-socket:" }, NULL },
	{ "vscard unix-mode 999", "[vscard]\nunix-mode = 999\n", 1, 0,
	  { "[vscard] unix-mode:" }, NULL },
	{ "vscard timeout-ms 10", "[vscard]\ntimeout-ms = 10\n", 1, 0,
	  { "[vscard] timeout-ms:" }, NULL },
	{ "vscard max-connections 0", "[vscard]\nmax-connections = 0\n", 1, 0,
	  { "[vscard] max-connections:" }, NULL },
	{ "vscard max-pending x", "[vscard]\nmax-pending = x\n", 1, 0,
	  { "[vscard] max-pending:" }, NULL },
	{ "vscard handshake-timeout-ms huge", "[vscard]\nhandshake-timeout-ms = 9999999\n", 1, 0,
	  { "[vscard] handshake-timeout-ms:" }, NULL },
	{ "vscard unknown reader", "[vscard]\nreaders = default;nope\n", 1, 0,
	  { "[vscard] readers:" }, NULL },
	{ "vscard unknown key", "[vscard]\nport = 1\n", 1, 0, { "[vscard] port:" }, NULL },
	{ "vpcd listen with a port", "[vpcd]\nlisten = 127.0.0.1:35963\n", 1, 0,
	  { "[vpcd] listen:" }, NULL },
	{ "vpcd listen on a unix socket", "[vpcd]\nlisten = unix:/run/x\n", 1, 0,
	  { "[vpcd] listen:" }, NULL },
	{ "vpcd listen garbage", "[vpcd]\nlisten = a b\n", 1, 0, { "[vpcd] listen:" }, NULL },
	{ "vpcd privileged port", "[vpcd]\nport = 80\n", 1, 0, { "[vpcd] port:" }, NULL },
	{ "vpcd port 65536", "[vpcd]\nport = 65536\n", 1, 0, { "[vpcd] port:" }, NULL },
	{ "vpcd port in hex", "[vpcd]\nport = 0x8C7B\n", 1, 0, { "[vpcd] port:" }, NULL },
	{ "vpcd timeout-ms 10", "[vpcd]\ntimeout-ms = 10\n", 1, 0, { "[vpcd] timeout-ms:" },
	  NULL },
	{ "vpcd max-connections 0", "[vpcd]\nmax-connections = 0\n", 1, 0,
	  { "[vpcd] max-connections:" }, NULL },
	{ "vpcd unknown reader", "[vpcd]\nreaders = default;nope\n", 1, 0,
	  { "[vpcd] readers:" }, NULL },
	{ "vpcd reader also in vscard", "[vscard]\nreaders = default\n[vpcd]\nreaders = default\n",
	  1, 0, { "[vpcd] readers:" }, NULL },
	{ "vpcd unknown key", "[vpcd]\nunix-socket = /x\n", 1, 0, { "[vpcd] unix-socket:" },
	  NULL },
	{ "bad card next to good ones",
	  MAIN CARD_A "[card:b]\nslot = 9\n" CERTS "[card:c]\nslot = 1\n" CERTS, 1, 2,
	  { "[card:b] slot:" }, "a c" },
};

static void test_row(void **state)
{
	const struct config_case *c = *state;
	struct vccid_config *config = load(c->text);
	size_t i;

	if (config->n_errors != c->n_errors || config->n_cards != c->n_cards)
		fail_msg("%s: %zu errors and %zu cards; expected %zu and %zu; log:\n%s", c->name,
			 config->n_errors, config->n_cards, c->n_errors, c->n_cards,
			 log_text->str);
	/* Each problem is logged exactly once. */
	assert_int_equal(log_lines, c->n_errors);
	for (i = 0; i < MAX_MSGS && c->msgs[i] != NULL; i++)
		assert_logged(FILE_NAME, c->msgs[i]);
	if (c->kept != NULL) {
		GString *names = g_string_new(NULL);

		for (i = 0; i < config->n_cards; i++)
			g_string_append_printf(names, "%s%s", i ? " " : "", config->cards[i].name);
		assert_string_equal(names->str, c->kept);
		g_string_free(names, TRUE);
	}
	/* A bad file never loses the implicit default reader. */
	assert_non_null(vccid_config_find_reader(config, VCCID_DEFAULT_READER));
	vccid_config_free(config);
}

static void test_valid_full(void **state)
{
	static const char text[] =
		"# A full configuration\n"
		"[vccid]\n"
		"log-level = debug\n"
		"nss-database = sql:/var/lib/vccid/nssdb\n"
		"\n"
		"[reader:second]\n"
		"slots = 2\n"
		"\n"
		"[reader:big]\n"
		"slots = 16\n"
		"\n"
		"[card:alice]\n"
		"slot = 0\n"
		"certificates = alice-id;alice-sign;alice-enc\n"
		"\n"
		"[card:bob]\n"
		"reader = second\n"
		"slot = 1\n"
		"certificates = bob id ; bob-sign ; bob.enc@x+y;\n"
		"nss-database = sql:/other\n"
		"inserted = false\n"
		"\n"
		"[card:carol]\n"
		"reader = big\n"
		"slot = 15\n"
		"certificates = c1;c2;c3\n"
		"inserted = yes\n";
	struct vccid_config *config;
	const struct vccid_reader_config *reader;
	const struct vccid_card_config *card;

	(void)state;
	config = load(text);
	if (config->n_errors != 0)
		fail_msg("%zu errors:\n%s", config->n_errors, log_text->str);
	assert_int_equal(log_lines, 0);
	assert_string_equal(config->path, FILE_NAME);
	assert_true(config->log_level_set);
	assert_int_equal(config->log_level, VCCID_LOG_DEBUG);
	assert_string_equal(config->database, "sql:/var/lib/vccid/nssdb");

	assert_int_equal(config->n_readers, 3);
	assert_string_equal(config->readers[0].name, VCCID_DEFAULT_READER);
	assert_int_equal(config->readers[0].slots, VCCID_DEFAULT_SLOTS);
	reader = vccid_config_find_reader(config, "second");
	assert_non_null(reader);
	assert_int_equal(reader->slots, 2);
	reader = vccid_config_find_reader(config, "big");
	assert_non_null(reader);
	assert_int_equal(reader->slots, 16);
	assert_null(vccid_config_find_reader(config, "nope"));

	assert_int_equal(config->n_cards, 3);
	card = &config->cards[0];
	assert_string_equal(card->name, "alice");
	assert_string_equal(card->reader, VCCID_DEFAULT_READER);
	assert_int_equal(card->slot, 0);
	assert_string_equal(card->database, "sql:/var/lib/vccid/nssdb");   /* inherited */
	assert_string_equal(card->certs[0], "alice-id");
	assert_string_equal(card->certs[1], "alice-sign");
	assert_string_equal(card->certs[2], "alice-enc");
	assert_true(card->inserted);   /* the default */

	card = &config->cards[1];
	assert_string_equal(card->name, "bob");
	assert_string_equal(card->reader, "second");
	assert_int_equal(card->slot, 1);
	assert_string_equal(card->database, "sql:/other");
	assert_string_equal(card->certs[0], "bob id");   /* blanks around ';' are stripped */
	assert_string_equal(card->certs[1], "bob-sign");
	assert_string_equal(card->certs[2], "bob.enc@x+y");
	assert_false(card->inserted);

	card = &config->cards[2];
	assert_string_equal(card->name, "carol");
	assert_string_equal(card->reader, "big");
	assert_int_equal(card->slot, 15);
	assert_true(card->inserted);
	vccid_config_free(config);
}

static void test_defaults(void **state)
{
	struct vccid_config *config = load("");

	(void)state;
	assert_int_equal(config->n_errors, 0);
	assert_false(config->log_level_set);
	assert_int_equal(config->log_level, VCCID_LOG_ERROR);
	assert_null(config->database);
	assert_int_equal(config->n_readers, 1);
	assert_string_equal(config->readers[0].name, VCCID_DEFAULT_READER);
	assert_int_equal(config->readers[0].slots, VCCID_DEFAULT_SLOTS);
	assert_int_equal(config->n_cards, 0);
	vccid_config_free(config);
}

/* A refused slots value leaves the reader with the default count, not 0. */
static void test_bad_slots_fall_back(void **state)
{
	struct vccid_config *config =
		load(MAIN "[reader:r]\nslots = 0\n[card:a]\nreader = r\nslot = 3\n" CERTS);
	const struct vccid_reader_config *reader;

	(void)state;
	assert_int_equal(config->n_errors, 1);
	reader = vccid_config_find_reader(config, "r");
	assert_non_null(reader);
	assert_int_equal(reader->slots, VCCID_DEFAULT_SLOTS);
	assert_int_equal(config->n_cards, 1);
	assert_int_equal(config->cards[0].slot, 3);
	vccid_config_free(config);
}

static void test_inserted_values(void **state)
{
	static const struct {
		const char *value;
		bool inserted;
		size_t n_errors;
	} values[] = {
		{ "true", true, 0 }, { "TRUE", true, 0 }, { "1", true, 0 }, { "yes", true, 0 },
		{ "false", false, 0 }, { "0", false, 0 }, { "No", false, 0 },
		{ "maybe", true, 1 }, { "2", true, 1 }, { "", true, 1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char *text = g_strdup_printf(MAIN CARD_A "inserted = %s\n", values[i].value);
		struct vccid_config *config = load(text);

		if (config->n_errors != values[i].n_errors || config->n_cards != 1 ||
		    config->cards[0].inserted != values[i].inserted)
			fail_msg("inserted = '%s': %zu errors, %zu cards", values[i].value,
				 config->n_errors, config->n_cards);
		if (values[i].n_errors > 0)
			assert_logged(FILE_NAME, "[card:a] inserted:");
		vccid_config_free(config);
		g_free(text);
	}
}

static void test_nonexistent_file(void **state)
{
	static const char path[] = "/nonexistent/vccid/vccid.conf";
	struct vccid_config *config = vccid_config_load(path);

	(void)state;
	assert_non_null(config);
	assert_int_equal(config->n_errors, 1);
	assert_int_equal(log_lines, 1);
	assert_logged(path, "cannot be read");
	assert_int_equal(config->n_readers, 1);
	assert_string_equal(config->readers[0].name, VCCID_DEFAULT_READER);
	assert_int_equal(config->readers[0].slots, VCCID_DEFAULT_SLOTS);
	assert_int_equal(config->n_cards, 0);
	vccid_config_free(config);
}

/* Root reads any mode-000 file, so a directory stands in for an unreadable file. */
static void test_unreadable_file(void **state)
{
	char dir[] = "/tmp/vccid-test-config-XXXXXX";
	struct vccid_config *config;

	(void)state;
	assert_non_null(mkdtemp(dir));
	config = vccid_config_load(dir);
	assert_non_null(config);
	assert_int_equal(config->n_errors, 1);
	assert_logged(dir, "cannot be read");
	assert_non_null(vccid_config_find_reader(config, VCCID_DEFAULT_READER));
	assert_int_equal(config->n_cards, 0);
	vccid_config_free(config);
	assert_int_equal(rmdir(dir), 0);
}

/* A load that blocks ends the test binary, with a line that says which. */
static void hang_guard(int sig)
{
	static const char msg[] = "test-config: a configuration load blocked for 5 s\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(2);
	_exit(1);
}

/* Loads @p path under a 5 s guard; expects one refusal that names the path and @p why. */
static void load_refused(const char *path, const char *why)
{
	struct sigaction sa;
	struct vccid_config *config;
	char *msg = g_strdup_printf("cannot be read: %s", why);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = hang_guard;
	assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
	alarm(5);
	config = vccid_config_load(path);
	alarm(0);
	assert_non_null(config);
	assert_int_equal(config->n_errors, 1);
	assert_int_equal(log_lines, 1);
	assert_logged(path, msg);
	/* The refused file leaves the defaults: the reader still comes up. */
	assert_non_null(vccid_config_find_reader(config, VCCID_DEFAULT_READER));
	assert_int_equal(config->n_cards, 0);
	vccid_config_free(config);
	g_free(msg);
}

/* A FIFO nobody writes to: open() without O_NONBLOCK waits for a writer for ever. */
static void test_fifo_refused(void **state)
{
	char dir[] = "/tmp/vccid-test-config-XXXXXX";
	char *path;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = g_build_filename(dir, "vccid.conf", NULL);
	assert_int_equal(mkfifo(path, 0600), 0);
	load_refused(path, "it is a FIFO, not a regular file");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
	g_free(path);
}

static void test_directory_refused(void **state)
{
	char dir[] = "/tmp/vccid-test-config-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(dir));
	load_refused(dir, "it is a directory, not a regular file");
	assert_int_equal(rmdir(dir), 0);
}

/* 1 MiB is read; one byte more is refused before reading (a sparse file: nothing is written). */
static void test_size_limit(void **state)
{
	char path[] = "/tmp/vccid-test-config-XXXXXX";
	int fd = mkstemp(path);
	struct vccid_config *config;
	char blank[1024];
	size_t i;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1024 * 1024 + 1), 0);
	load_refused(path, "it is larger than 1048576 bytes");
	/* At the limit the file is read and parsed: here, 1 MiB of blank lines. */
	assert_int_equal(ftruncate(fd, 0), 0);
	memset(blank, '\n', sizeof(blank));
	for (i = 0; i < 1024; i++)
		assert_int_equal(write(fd, blank, sizeof(blank)), (ssize_t)sizeof(blank));
	close(fd);
	setup(NULL);
	config = vccid_config_load(path);
	assert_non_null(config);
	assert_int_equal(config->n_errors, 0);
	vccid_config_free(config);
	unlink(path);
}

/*
 * A value, group, key or line of any length never pushes the explanation out
 * of the log line: the long part is shown as its head and tail around "...".
 */
static void test_long_names_and_values(void **state)
{
	static const struct {
		const char *before, *after;   /* the text around 4000 'x's */
		const char *explanation;
	} longs[] = {
		{ "[reader:r]\nslots = ", "\n", "' is not a number" },
		{ "[vscard]\nlisten = ", ":1\n", "' is not HOST:PORT with a port from 1024 to 65535" },
		{ "[vccid]\nlog-level = ", "\n", "' is not one of critical, error, info" },
		{ "[reader:", "]\n", "]: reader names are 1-63 letters" },
		{ "[vccid]\n", " = 1\n", ": unknown key, ignored" },
		{ "", "\n", "which is not a key-value pair, group, or comment" },
	};
	char *xs = g_strnfill(4000, 'x');
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
		char *text = g_strconcat(longs[i].before, xs, longs[i].after, NULL);
		struct vccid_config *config;

		setup(NULL);
		config = load(text);
		if (config->n_errors != 1 || strstr(log_text->str, longs[i].explanation) == NULL ||
		    strstr(log_text->str, "x...x") == NULL || strlen(log_text->str) > 1000)
			fail_msg("case %zu: %zu errors; the log line (%zu bytes) lacks \"%s\" or "
				 "the shortened value:\n%.1200s", i, config->n_errors,
				 strlen(log_text->str), longs[i].explanation, log_text->str);
		vccid_config_free(config);
		g_free(text);
	}
	g_free(xs);
}

static void test_no_path(void **state)
{
	struct vccid_config *config = vccid_config_load(NULL);

	(void)state;
	assert_non_null(config);
	assert_int_equal(config->n_errors, 1);
	assert_int_equal(config->n_readers, 1);
	vccid_config_free(config);

	config = vccid_config_load("");
	assert_non_null(config);
	assert_int_equal(config->n_errors, 1);
	vccid_config_free(config);
	vccid_config_free(NULL);
}

static void test_file_on_disk(void **state)
{
	static const char text[] = MAIN CARD_A "[card:b]\nslot = 7\n" CERTS;
	char path[] = "/tmp/vccid-test-config-XXXXXX";
	int fd = mkstemp(path);
	struct vccid_config *config;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
	close(fd);
	config = vccid_config_load(path);
	unlink(path);
	assert_non_null(config);
	assert_string_equal(config->path, path);
	assert_int_equal(config->n_errors, 1);
	assert_int_equal(config->n_cards, 1);
	assert_string_equal(config->cards[0].name, "a");
	assert_logged(path, "[card:b] slot:");
	vccid_config_free(config);
}

static void test_vscard_settings(void **state)
{
	struct vccid_config *config;

	(void)state;
	config = load("[vccid]\n");
	assert_false(config->vscard.enabled);
	assert_false(vccid_config_vscard_reader(config, "default"));
	vccid_config_free(config);

	/* The group alone: loopback on vccid's port, the documented defaults, every reader. */
	config = load("[vscard]\n");
	assert_int_equal(config->n_errors, 0);
	assert_true(config->vscard.enabled);
	assert_string_equal(config->vscard.listen, VCCID_VSCARD_DEFAULT_LISTEN);
	assert_null(config->vscard.unix_socket);
	assert_int_equal(config->vscard.unix_mode, 0660);
	assert_int_equal(config->vscard.timeout_ms, 5000);
	assert_int_equal(config->vscard.handshake_timeout_ms, 5000);
	assert_int_equal(config->vscard.max_connections, 16);
	assert_int_equal(config->vscard.max_pending, 4);
	assert_true(vccid_config_vscard_reader(config, "default"));
	assert_true(vccid_config_vscard_reader(config, "other"));
	vccid_config_free(config);

	/* A unix socket alone means no TCP listener; "none" turns TCP off too. */
	config = load("[vscard]\nunix-socket = /run/vccid/vscard.sock\nunix-owner = root:root\n"
		      "unix-mode = 0600\ntimeout-ms = 1500\nmax-connections = 3\n"
		      "max-pending = 2\nhandshake-timeout-ms = 700\n");
	assert_int_equal(config->n_errors, 0);
	assert_null(config->vscard.listen);
	assert_string_equal(config->vscard.unix_socket, "/run/vccid/vscard.sock");
	assert_string_equal(config->vscard.unix_owner, "root:root");
	assert_int_equal(config->vscard.unix_mode, 0600);
	assert_int_equal(config->vscard.timeout_ms, 1500);
	assert_int_equal(config->vscard.max_connections, 3);
	assert_int_equal(config->vscard.max_pending, 2);
	assert_int_equal(config->vscard.handshake_timeout_ms, 700);
	vccid_config_free(config);

	config = load("[reader:r2]\n[vscard]\nlisten = none\nreaders = r2\n");
	assert_int_equal(config->n_errors, 0);
	assert_null(config->vscard.listen);
	assert_true(vccid_config_vscard_reader(config, "r2"));
	assert_false(vccid_config_vscard_reader(config, "default"));
	vccid_config_free(config);

	config = load("[vscard]\nlisten = [::1]:40000\n");
	assert_int_equal(config->n_errors, 0);
	assert_string_equal(config->vscard.listen, "[::1]:40000");
	assert_null(config->vscard.tls_listen);
	vccid_config_free(config);
}

static void test_vscard_tls_settings(void **state)
{
	struct vccid_config *config;

	(void)state;
	/* Credentials alone: the TLS endpoint on its loopback default, and no plaintext one. */
	config = load("[vscard]\ntls-dir = /etc/pki/vccid\n");
	assert_int_equal(config->n_errors, 0);
	assert_string_equal(config->vscard.tls_listen, VCCID_VSCARD_DEFAULT_TLS_LISTEN);
	assert_string_equal(config->vscard.tls_dir, "/etc/pki/vccid");
	assert_null(config->vscard.listen);
	assert_null(config->vscard.tls_subjects);
	vccid_config_free(config);

	/* Both endpoints, named files, subjects split at ';' with spaces kept inside. */
	config = load("[vscard]\nlisten = 127.0.0.1:4000\ntls-listen = 0.0.0.0:4001\n"
		      "tls-cert = /c.pem\ntls-key = /k.pem\ntls-ca = /ca.pem\n"
		      "tls-subjects = alice ;CN=*,O=Example Lab; ;bob\n");
	assert_int_equal(config->n_errors, 0);
	assert_string_equal(config->vscard.listen, "127.0.0.1:4000");
	assert_string_equal(config->vscard.tls_listen, "0.0.0.0:4001");
	assert_string_equal(config->vscard.tls_cert, "/c.pem");
	assert_string_equal(config->vscard.tls_key, "/k.pem");
	assert_string_equal(config->vscard.tls_ca, "/ca.pem");
	assert_string_equal(config->vscard.tls_subjects[0], "alice");
	assert_string_equal(config->vscard.tls_subjects[1], "CN=*,O=Example Lab");
	assert_string_equal(config->vscard.tls_subjects[2], "bob");
	assert_null(config->vscard.tls_subjects[3]);
	vccid_config_free(config);

	/* A TLS endpoint without credentials, or with a bad address, is left out (logged). */
	config = load("[vscard]\ntls-listen = 127.0.0.1:4001\n");
	assert_int_equal(config->n_errors, 1);
	assert_logged(FILE_NAME, "[vscard] tls-listen: needs tls-dir, or tls-cert and tls-key");
	assert_null(config->vscard.tls_listen);
	vccid_config_free(config);
	config = load("[vscard]\ntls-listen = 127.0.0.1:80\ntls-dir = /d\n");
	assert_int_equal(config->n_errors, 1);
	assert_logged(FILE_NAME, "[vscard] tls-listen:");
	assert_null(config->vscard.tls_listen);
	assert_string_equal(config->vscard.listen, VCCID_VSCARD_DEFAULT_LISTEN);
	vccid_config_free(config);
	config = load("[vscard]\ntls-listen = none\ntls-dir = /d\n");
	assert_int_equal(config->n_errors, 0);
	assert_null(config->vscard.tls_listen);
	vccid_config_free(config);
}

static void test_vpcd_settings(void **state)
{
	struct vccid_config *config;

	(void)state;
	config = load("[reader:a]\nslots = 2\n");
	assert_false(config->vpcd.enabled);
	assert_false(vccid_config_vpcd_reader(config, "a"));
	assert_int_equal(vccid_config_vpcd_port(config, "a", 0), 0);
	vccid_config_free(config);

	/* Defaults; declared readers in file order, the implicit default reader last. */
	config = load("[reader:a]\nslots = 2\n[reader:b]\nslots = 3\n[vpcd]\n");
	assert_int_equal(config->n_errors, 0);
	assert_true(config->vpcd.enabled);
	assert_string_equal(config->vpcd.listen, "127.0.0.1");
	assert_int_equal(config->vpcd.port, 35963);
	assert_int_equal(config->vpcd.timeout_ms, 5000);
	assert_int_equal(config->vpcd.max_connections, 16);
	assert_int_equal(vccid_config_vpcd_port(config, "a", 0), 35963);
	assert_int_equal(vccid_config_vpcd_port(config, "a", 1), 35964);
	assert_int_equal(vccid_config_vpcd_port(config, "a", 2), 0);
	assert_int_equal(vccid_config_vpcd_port(config, "b", 0), 35965);
	assert_int_equal(vccid_config_vpcd_port(config, "b", 2), 35967);
	assert_int_equal(vccid_config_vpcd_port(config, VCCID_DEFAULT_READER, 0), 35968);
	assert_int_equal(vccid_config_vpcd_port(config, "nope", 0), 0);
	vccid_config_free(config);

	/* Explicit settings; the readers list gives the order; VSCard keeps its readers. */
	config = load("[reader:a]\nslots = 2\n[reader:b]\nslots = 1\n[reader:c]\n"
		      "[vscard]\nreaders = c\n"
		      "[vpcd]\nreaders = b;a\nlisten = [::]\nport = 65533\ntimeout-ms = 700\n"
		      "max-connections = 3\n");
	assert_int_equal(config->n_errors, 0);
	assert_string_equal(config->vpcd.listen, "[::]");
	assert_int_equal(config->vpcd.timeout_ms, 700);
	assert_int_equal(config->vpcd.max_connections, 3);
	assert_int_equal(vccid_config_vpcd_port(config, "b", 0), 65533);
	assert_int_equal(vccid_config_vpcd_port(config, "a", 0), 65534);
	assert_int_equal(vccid_config_vpcd_port(config, "a", 1), 65535);
	assert_false(vccid_config_vpcd_reader(config, "c"));
	assert_false(vccid_config_vpcd_reader(config, VCCID_DEFAULT_READER));
	vccid_config_free(config);

	/* Past 65535 there is no port. */
	config = load("[reader:a]\nslots = 4\n[vpcd]\nreaders = a\nport = 65534\n");
	assert_int_equal(vccid_config_vpcd_port(config, "a", 1), 65535);
	assert_int_equal(vccid_config_vpcd_port(config, "a", 2), 0);
	vccid_config_free(config);

	/* A host name is fine. */
	config = load("[vpcd]\nlisten = localhost\n");
	assert_int_equal(config->n_errors, 0);
	assert_string_equal(config->vpcd.listen, "localhost");
	vccid_config_free(config);
}

static void test_log_level_parse(void **state)
{
	static const struct {
		const char *text;
		int level;
	} levels[] = {
		{ "critical", VCCID_LOG_CRITICAL }, { "error", VCCID_LOG_ERROR },
		{ "info", VCCID_LOG_INFO }, { "debug", VCCID_LOG_DEBUG },
		{ "apdu", VCCID_LOG_APDU },
		{ "ERROR", VCCID_LOG_ERROR }, { "Debug", VCCID_LOG_DEBUG },
		{ "0", 0 }, { "1", 1 }, { "2", 2 }, { "3", 3 }, { "4", 4 },
		{ "5", -1 }, { "-1", -1 }, { "", -1 }, { "2x", -1 }, { "verbose", -1 },
		{ "info ", -1 }, { "99999999999999999999", -1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		int level = vccid_log_level_parse(levels[i].text);

		if (level != levels[i].level)
			fail_msg("'%s' parsed as %d, expected %d", levels[i].text, level,
				 levels[i].level);
	}
	assert_int_equal(vccid_log_level_parse(NULL), -1);
}

/* The level filter: below the set level nothing reaches the sink. */
static void test_log_filter(void **state)
{
	struct vccid_config *config;

	(void)state;
	vccid_log_set_level(VCCID_LOG_CRITICAL);
	config = load("[vccid]\nlog-level = verbose\n");
	assert_int_equal(config->n_errors, 1);
	assert_int_equal(log_lines, 0);   /* errors are not critical */
	vccid_config_free(config);
	vccid_log_set_level(VCCID_LOG_APDU);
	assert_int_equal(vccid_log_get_level(), VCCID_LOG_APDU);
}

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test_setup(test_valid_full, setup),
		cmocka_unit_test_setup(test_defaults, setup),
		cmocka_unit_test_setup(test_bad_slots_fall_back, setup),
		cmocka_unit_test_setup(test_inserted_values, setup),
		cmocka_unit_test_setup(test_nonexistent_file, setup),
		cmocka_unit_test_setup(test_unreadable_file, setup),
		cmocka_unit_test_setup(test_fifo_refused, setup),
		cmocka_unit_test_setup(test_directory_refused, setup),
		cmocka_unit_test_setup(test_size_limit, setup),
		cmocka_unit_test_setup(test_long_names_and_values, setup),
		cmocka_unit_test_setup(test_no_path, setup),
		cmocka_unit_test_setup(test_file_on_disk, setup),
		cmocka_unit_test_setup(test_vscard_settings, setup),
		cmocka_unit_test_setup(test_vscard_tls_settings, setup),
		cmocka_unit_test_setup(test_vpcd_settings, setup),
		cmocka_unit_test_setup(test_log_level_parse, setup),
		cmocka_unit_test_setup(test_log_filter, setup),
	};
	int failed;

	log_text = g_string_new(NULL);
	vccid_log_set_sink(capture_sink);
	vccid_log_set_level(VCCID_LOG_APDU);
	failed = TABLE_RUN("config", cases, test_row, setup, fixed);
	vccid_log_set_sink(NULL);
	g_string_free(log_text, TRUE);
	return failed;
}
