/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of libcacard's shared setup: option tokens, the options string, NSS database checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/cacard/emul.h"
#include "corelib/error.h"

static void test_token_problems(void **state)
{
	static const struct { const char *token; const char *problem; } cases[] = {
		{ "alice-id", NULL },
		{ "a name with spaces", NULL },
		{ "", "must not be empty" },
		{ "a,b", "must not contain" },
		{ "a(b", "must not contain" },
		{ "a)b", "must not contain" },
		{ "a\"b", "must not contain" },
		{ "a\nb", "control characters" },
		{ "a\x7F", "control characters" },
		{ " a", "begin or end with a space" },
		{ "a ", "begin or end with a space" },
	};
	char longest[VCCID_CACARD_EMUL_TOKEN_MAX + 2];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *problem = vccid_cacard_emul_token_problem(cases[i].token);

		if (cases[i].problem == NULL) {
			assert_null(problem);
		} else {
			assert_non_null(problem);
			assert_non_null(strstr(problem, cases[i].problem));
		}
	}
	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	assert_non_null(vccid_cacard_emul_token_problem(longest));
	longest[sizeof(longest) - 2] = '\0';
	assert_null(vccid_cacard_emul_token_problem(longest));
}

static const char *const alice[] = { "alice-id", "alice-sign", "alice-enc" };
static const char *const bob[] = { "bob-id", "bob-sign", "bob-enc" };

static void test_options_string(void **state)
{
	const struct vccid_cacard_emul_card cards[] = {
		{ .name = "alice", .certs = alice, .n_certs = 3 },
		{ .name = "bob", .certs = bob, .n_certs = 3 },
	};
	struct vccid_cacard_emul_setup setup = {
		.database = "sql:/etc/vccid/nssdb", .cards = cards, .n_cards = 2,
	};
	char buf[512];

	(void)state;
	assert_int_equal(vccid_cacard_emul_options(&setup, buf, sizeof(buf)), VCCID_OK);
	assert_string_equal(buf, "use_hw=no soft=(,alice,CAC,,alice-id,alice-sign,alice-enc) "
			    "soft=(,bob,CAC,,bob-id,bob-sign,bob-enc) db=\"sql:/etc/vccid/nssdb\"");

	/* Exactly fitting, and one byte short. */
	assert_int_equal(vccid_cacard_emul_options(&setup, buf, strlen(buf) + 1), VCCID_OK);
	assert_int_equal(vccid_cacard_emul_options(&setup, buf, strlen(buf)), VCCID_ENOSPC);

	/* Hardware tokens of libcacard's default database. */
	setup = (struct vccid_cacard_emul_setup){ .use_hw = true };
	assert_int_equal(vccid_cacard_emul_options(&setup, buf, sizeof(buf)), VCCID_OK);
	assert_string_equal(buf, "use_hw=yes");
}

static void test_options_refused(void **state)
{
	static const char *const bad_certs[] = { "alice-id", "x,y", "alice-enc" };
	struct vccid_cacard_emul_card card = { .name = "alice", .certs = bad_certs, .n_certs = 3 };
	struct vccid_cacard_emul_setup setup = {
		.database = "sql:/etc/vccid/nssdb", .cards = &card, .n_cards = 1,
	};
	char buf[512];

	(void)state;
	assert_int_equal(vccid_cacard_emul_options(&setup, buf, sizeof(buf)), VCCID_EINVAL);
	card.certs = alice;
	card.name = "al)ice";
	assert_int_equal(vccid_cacard_emul_options(&setup, buf, sizeof(buf)), VCCID_EINVAL);
	card.name = "alice";
	setup.database = "sql:/etc/\"x";   /* db="..." has no escape */
	assert_int_equal(vccid_cacard_emul_options(&setup, buf, sizeof(buf)), VCCID_EINVAL);
}

/* A scratch directory with a plain file, a FIFO and a database directory. */
struct scratch {
	char dir[64];
	char path[128];
};

static int scratch_setup(void **state)
{
	struct scratch *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	snprintf(s->dir, sizeof(s->dir), "/tmp/test-cacard-emul.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	*state = s;
	return 0;
}

static int scratch_teardown(void **state)
{
	struct scratch *s = *state;
	static const char *const names[] = { "db/pkcs11.txt", "db", "file", "fifo" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(s->path, sizeof(s->path), "%s/%s", s->dir, names[i]);
		if (unlink(s->path) != 0)
			rmdir(s->path);
	}
	rmdir(s->dir);
	free(s);
	return 0;
}

static const char *in(struct scratch *s, const char *prefix, const char *name)
{
	snprintf(s->path, sizeof(s->path), "%s%s/%s", prefix, s->dir, name);
	return s->path;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_database_must_be_a_directory(void **state)
{
	struct scratch *s = *state;

	assert_int_equal(mkdir(in(s, "", "db"), 0700), 0);
	write_file(in(s, "", "file"), "x");
	assert_int_equal(mkfifo(in(s, "", "fifo"), 0600), 0);

	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "db"), true), VCCID_OK);
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "", "db"), true), VCCID_OK);
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "dbm:", "db"), true), VCCID_OK);
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "none"), true),
			 VCCID_ECONFIG);
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "file"), true),
			 VCCID_ECONFIG);
	/* Refused by stat: an open of a FIFO would block here. */
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "fifo"), false),
			 VCCID_ECONFIG);
	assert_int_equal(vccid_cacard_emul_check_database("sql:/a\"b", false), VCCID_ECONFIG);
	/* Schemes whose value is no directory are left to NSS. */
	assert_int_equal(vccid_cacard_emul_check_database("extern:/nowhere", false), VCCID_OK);
}

static void test_database_must_be_private(void **state)
{
	struct scratch *s = *state;

	assert_int_equal(mkdir(in(s, "", "db"), 0700), 0);
	write_file(in(s, "", "db/pkcs11.txt"), "library=\nname=NSS Internal PKCS #11 Module\n");
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "db"), true), VCCID_OK);
	write_file(in(s, "", "db/pkcs11.txt"), "library=/usr/lib/opensc-pkcs11.so\nname=OpenSC\n");
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "db"), true),
			 VCCID_ECONFIG);
	/* Outside pcscd (vccid-share --hardware) the modules are wanted. */
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "db"), false), VCCID_OK);
	/* A FIFO as pkcs11.txt is refused without reading it. */
	assert_int_equal(unlink(in(s, "", "db/pkcs11.txt")), 0);
	assert_int_equal(mkfifo(in(s, "", "db/pkcs11.txt"), 0600), 0);
	assert_int_equal(vccid_cacard_emul_check_database(in(s, "sql:", "db"), true),
			 VCCID_ECONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_problems),
		cmocka_unit_test(test_options_string),
		cmocka_unit_test(test_options_refused),
		cmocka_unit_test_setup_teardown(test_database_must_be_a_directory, scratch_setup,
						scratch_teardown),
		cmocka_unit_test_setup_teardown(test_database_must_be_private, scratch_setup,
						scratch_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
